"""What the console works on: the configuration, the stores and the task definitions.

One :class:`Console` per application. It opens the execution store (feedback is written through
it, as ``tlm feedback`` does), the console's read queries, the review queue (decisions recorded
as human feedback, as ``tlm review`` does) and the workflow store: in the configured PostgreSQL
database (every replica's state) when one is set, else the SQLite files of the data directory;
definitions are re-read when a file in the definitions directory changes. The
playground's :class:`~tlm.engine.Engine` is opened on first use and closed with the console.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
from aiohttp import web

from tlm.definition.registry import DefinitionRegistry, default_definitions_dir, tasks_dir
from tlm.engine.config import EngineConfig
from tlm.learn.rankings_store import open_rankings
from tlm.store.backend import open_store
from tlm.store.sqlite import ExecutionStore
from tlm.telemetry.redact import redact
from tlm.ui.queries import ExecutionQueries
from tlm.verify.review_queue import feedback_hook, open_review_queue
from tlm.workflow.store import open_workflow_store

if TYPE_CHECKING:
    from tlm.engine.engine import Engine

__all__ = ("Console", "CONSOLE", "console_of")


class Console:
    """The stores and definitions behind the console; close it with :meth:`aclose`.

    Args:
        config: The engine configuration (data directory, definitions, models, redaction).
        engine_kwargs: Extra arguments for the playground's engine (tests give providers).
    """

    def __init__(self, config: EngineConfig, **engine_kwargs: Any) -> None:
        self.config = config
        self.data_dir = Path(config.data_dir)
        self.definitions_dir = default_definitions_dir(config.definitions_dir)
        self.tasks_root = tasks_dir(self.definitions_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.store = open_store(self.data_dir, config.database)
        self.queries = self._queries()
        self.reviews = open_review_queue(
            self.data_dir, config.database, on_decision=feedback_hook(self.store)
        )
        self.workflows = open_workflow_store(self.data_dir, config.database)
        self.rankings = open_rankings(self.data_dir, config.database)
        self._engine_kwargs = engine_kwargs
        self._engine: Engine | None = None
        self._engine_lock = anyio.Lock()
        self._registry: DefinitionRegistry | None = None
        self._registry_key: tuple[tuple[str, int, int], ...] = ()

    def _queries(self) -> ExecutionQueries:
        if isinstance(self.store, ExecutionStore):
            return ExecutionQueries(self.store.path)
        from tlm.ui.queries_pg import PostgresExecutionQueries

        assert self.config.database is not None
        return PostgresExecutionQueries(self.config.database, self.store)

    # --- definitions ---------------------------------------------------------------------------

    def _definitions_key(self) -> tuple[tuple[str, int, int], ...]:
        root = self.tasks_root
        if not root.is_dir():
            return ()
        found = []
        for entry in os.scandir(root):
            if entry.is_dir():
                for file in os.scandir(entry.path):
                    if file.name.endswith(".json"):
                        stat = file.stat()
                        found.append((file.path, stat.st_mtime_ns, stat.st_size))
        return tuple(sorted(found))

    @property
    def registry(self) -> DefinitionRegistry:
        """Every definition that loads (problems in :attr:`DefinitionRegistry.problems`)."""
        key = self._definitions_key()
        if self._registry is None or key != self._registry_key:
            self._registry = DefinitionRegistry.from_directory(self.tasks_root, strict=False)
            self._registry_key = key
        return self._registry

    # --- content -------------------------------------------------------------------------------

    def redacted(self, value: Any) -> Any:
        """``value`` with the configured fields masked (the store already did; this is a guard)."""
        return redact(value, self.config.redact)

    # --- the playground's engine ---------------------------------------------------------------

    async def engine(self) -> Engine:
        """The playground's engine, opened on first use."""
        async with self._engine_lock:
            if self._engine is None:
                from tlm.engine.engine import Engine

                engine = Engine(self.config, **self._engine_kwargs)
                await engine.open()
                self._engine = engine
            return self._engine

    async def aclose(self) -> None:
        """Close the engine, the queries and the store."""
        try:
            if self._engine is not None:
                await self._engine.aclose()
        finally:
            self.queries.close()
            self.store.close()
            self.workflows.close()
            self.rankings.close()


CONSOLE = web.AppKey("tlm_ui_console", Console)
"""Where the application keeps its :class:`Console`."""


def console_of(request: web.Request) -> Console:
    """The console behind ``request``'s application."""
    return request.app[CONSOLE]
