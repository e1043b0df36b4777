"""Parts the Ray batch tests ship to Ray workers (imported there by module name)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import ray

from tests.batch.support import make_engine


@ray.remote(num_cpus=0)
class Handles:
    """Collects the handles of the engine actors as they start (to kill one with ray.kill)."""

    def __init__(self) -> None:
        self.handles: list[Any] = []

    def add(self, wrapped: list[Any]) -> None:
        self.handles.extend(wrapped)

    def all(self) -> list[Any]:
        return self.handles


def reporting_engine(registry: str | None, data_dir: Path, catalog: Mapping[str, Any]) -> Any:
    """The batch tests' engine; the actor building it reports its handle to ``registry``."""
    if registry is not None:
        me = ray.get_runtime_context().current_actor
        ray.get(ray.get_actor(registry).add.remote([me]))
    return make_engine(data_dir, catalog)
