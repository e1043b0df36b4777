"""Files TLM ships inside its package, read with :mod:`importlib.resources`.

- ``schema/task-definition-v1.json``: the task-definition JSON Schema.
- ``schema/models-v1.json``: the model catalog's JSON Schema.
- ``models.json``: the packaged model catalog (hosted models and the embedded local models'
  cards with their provenance); a project's catalog extends or overrides it.
"""

from __future__ import annotations

import json
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import Any

from tlm.errors import ConfigurationError

__all__ = ("resource", "read_json")


def resource(name: str) -> Traversable:
    """The packaged file ``name`` (a ``/``-separated path inside ``tlm/data``)."""
    return files(__name__).joinpath(*name.split("/"))


def read_json(name: str) -> Any:
    """Parse the packaged JSON file ``name``.

    Raises:
        ConfigurationError: the file is missing from the installed package.
    """
    try:
        return json.loads(resource(name).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigurationError(
            f"{resource(name)}: cannot read TLM's packaged {name}: {exc.strerror or exc}"
        ) from None
