"""A user's TLM project: the directory holding ``tlm.toml`` or ``definitions/``.

TLM finds the project the way git, ruff and pytest find theirs: from the working directory
upward, the nearest directory that holds a ``tlm.toml`` file or a ``definitions/`` directory is
the project root (``tlm.toml`` wins when a directory has both). ``TLM_CONFIG`` names a
``tlm.toml`` directly and makes its directory the root. Relative paths in ``tlm.toml`` are
relative to the file's directory, so a command works the same from any subdirectory.

A project's layout (what ``tlm init`` writes)::

    tlm.toml                          # settings, see tlm/engine/config.py
    definitions/tasks/<id>/<version>.json
    definitions/models.json           # optional: extends/overrides the packaged model catalog
    .tlm/                             # state: execution store, cache, reviews (git-ignored)
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from tlm.errors import ConfigurationError

__all__ = (
    "CONFIG_FILE",
    "CONFIG_ENV",
    "DEFINITIONS_DIR",
    "DATA_DIR",
    "CATALOG_FILE",
    "Project",
    "ProjectNotFound",
    "find_project",
    "require_project",
    "read_settings",
)

CONFIG_FILE = "tlm.toml"
CONFIG_ENV = "TLM_CONFIG"
"""Environment variable naming a ``tlm.toml`` (its directory is then the project root)."""
DEFINITIONS_DIR = "definitions"
DATA_DIR = ".tlm"
CATALOG_FILE = "models.json"
"""The project's catalog overlay, looked for in the definitions directory."""


def read_settings(path: Path) -> Mapping[str, Any]:
    """The ``[tlm]`` table of ``path`` (``{}`` when the file has none).

    Raises:
        ConfigurationError: the file cannot be read, is not TOML, or ``[tlm]`` is not a table.
    """
    try:
        with path.open("rb") as handle:
            document = tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"{path}: {exc}") from None
    except OSError as exc:
        raise ConfigurationError(f"{path}: cannot read: {exc.strerror or exc}") from None
    table = document.get("tlm", {})
    if not isinstance(table, dict):
        raise ConfigurationError(f"{path}: [tlm] must be a table")
    return table


@attrs.frozen
class Project:
    """A project root, its ``tlm.toml`` (if any) and the ``[tlm]`` settings read from it."""

    root: Path
    config_file: Path | None = None
    settings: Mapping[str, Any] = attrs.field(factory=dict, repr=False)

    @classmethod
    def at(cls, root: Path, config_file: Path | None = None) -> Project:
        """The project rooted at ``root``; reads ``config_file`` if given."""
        settings = read_settings(config_file) if config_file is not None else {}
        return cls(root, config_file, settings)

    def path_setting(self, key: str) -> Path | None:
        """The setting ``key`` as a path, relative ones taken from the project root."""
        value = self.settings.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or not value:
            raise ConfigurationError(f"{self.config_file}: {key} must be a non-empty path string")
        return self.root / value

    @property
    def definitions_dir(self) -> Path:
        """``definitions`` from ``tlm.toml``, else ``<root>/definitions``."""
        return self.path_setting("definitions") or self.root / DEFINITIONS_DIR

    @property
    def data_dir(self) -> Path:
        """``data_dir`` from ``tlm.toml``, else ``<root>/.tlm``."""
        return self.path_setting("data_dir") or self.root / DATA_DIR

    @property
    def catalog_path(self) -> Path | None:
        """``catalog`` from ``tlm.toml``, else ``models.json`` in the definitions directory if it
        exists, else ``None`` (the packaged catalog alone)."""
        named = self.path_setting("catalog")
        if named is not None:
            return named
        beside = self.definitions_dir / CATALOG_FILE
        return beside if beside.is_file() else None


class ProjectNotFound(ConfigurationError):
    """No project around the working directory; says where TLM looked and what to do."""

    def __init__(self, start: Path) -> None:
        self.start = start
        super().__init__(
            f"no TLM project in {start} or any directory above it (looked for {CONFIG_FILE} "
            f"or a {DEFINITIONS_DIR}/ directory); run `tlm init` to create one here, "
            "or set TLM_DEFINITIONS or TLM_CONFIG"
        )


def find_project(
    start: str | os.PathLike[str] | None = None, *, env: Mapping[str, str] | None = None
) -> Project | None:
    """The project around ``start`` (default: the working directory), or ``None``.

    ``TLM_CONFIG`` in ``env`` (default ``os.environ``) names the ``tlm.toml`` directly; its
    directory is the root even when the file does not exist (then no settings are read).

    Raises:
        ConfigurationError: a ``tlm.toml`` is not valid TOML or its ``[tlm]`` is not a table.
    """
    environ = os.environ if env is None else env
    named = environ.get(CONFIG_ENV)
    if named:
        file = Path(named).absolute()
        return Project.at(file.parent, file if file.is_file() else None)
    here = Path(start if start is not None else os.getcwd()).absolute()
    for directory in (here, *here.parents):
        config = directory / CONFIG_FILE
        if config.is_file():
            return Project.at(directory, config)
        if (directory / DEFINITIONS_DIR).is_dir():
            return Project(directory)
    return None


def require_project(
    start: str | os.PathLike[str] | None = None, *, env: Mapping[str, str] | None = None
) -> Project:
    """:func:`find_project`, or :class:`ProjectNotFound` when there is none."""
    project = find_project(start, env=env)
    if project is None:
        raise ProjectNotFound(Path(start if start is not None else os.getcwd()).absolute())
    return project
