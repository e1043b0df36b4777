"""What other packages open once per engine and keep while it is open.

A workflow writes each run to the workflow runs store; opening that store per run meant one
database connection (and one migration check) per run on PostgreSQL. :class:`EngineResources`
keeps one per engine instead: opened on first use, from any thread, and closed with the engine
(:meth:`tlm.Engine.aclose`). The engine itself does not know what is kept (the workflow package
sits above it).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Protocol, TypeVar

__all__ = ("EngineResources",)

_log = logging.getLogger("tlm.engine")


class Closable(Protocol):
    def close(self) -> None: ...


T = TypeVar("T", bound=Closable)


class EngineResources:
    """Resources kept by name for one engine's lifetime (see the module doc); thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._kept: dict[str, Closable] = {}
        self._closed = False

    def get(self, name: str, open_resource: Callable[[], T]) -> T | None:
        """The resource kept as ``name``, opened by ``open_resource()`` on first use (an error
        opening it propagates and nothing is kept); ``None`` once the engine is closed."""
        with self._lock:
            if self._closed:
                return None
            kept = self._kept.get(name)
            if kept is None:
                kept = self._kept[name] = open_resource()
            return kept  # type: ignore[return-value]  # kept under this name by this call's kind

    def close(self) -> None:
        """Close every resource kept (a failure is logged, the others still closed)."""
        with self._lock:
            self._closed = True
            kept, self._kept = self._kept, {}
        for name, resource in kept.items():
            try:
                resource.close()
            except Exception:
                _log.exception("closing the engine's %s failed", name)
