"""``await tlm.execute(...)`` with no set-up call, and ``tlm.run(...)`` for scripts.

The first call in an event loop opens a default :class:`Engine` from ``tlm.toml`` and the
environment and keeps it for that loop; it is closed when the loop shuts down (``asyncio.run``
finalises it) or by ``await tlm.aclose()``. Long-lived services that want explicit control use
``async with tlm.Engine() as engine:`` instead.
"""

from __future__ import annotations

import weakref
from collections.abc import AsyncIterator, Mapping
from typing import Any, Literal

import anyio

from tlm.engine.config import EngineConfig
from tlm.engine.engine import Engine
from tlm.engine.result import ExecuteOptions, ExecutionResult

__all__ = ("execute", "feedback", "aclose", "run", "default_engine")

_engines: weakref.WeakKeyDictionary[object, tuple[Engine, AsyncIterator[None]]] = (
    weakref.WeakKeyDictionary()
)


def _loop_key() -> object:
    import asyncio

    return asyncio.get_running_loop()


async def _closer(engine: Engine) -> AsyncIterator[None]:
    """An async generator whose finalisation (at loop shutdown) closes ``engine``."""
    try:
        yield
    finally:
        await engine.aclose()


async def default_engine() -> Engine:
    """The current event loop's default engine, opened on first use."""
    key = _loop_key()
    found = _engines.get(key)
    if found is not None:
        return found[0]
    engine = Engine()
    await engine.open()
    raced = _engines.get(key)
    if raced is not None:  # another task opened one meanwhile: keep that one
        await engine.aclose()
        return raced[0]
    closer = _closer(engine)
    await closer.__anext__()
    _engines[key] = (engine, closer)
    return engine


async def execute(
    task_id: str,
    input: Any,
    *,
    version: str | None = None,
    options: ExecuteOptions | Mapping[str, Any] | None = None,
) -> ExecutionResult:
    """Execute a task with the default engine; see :meth:`Engine.execute`."""
    engine = await default_engine()
    return await engine.execute(task_id, input, version=version, options=options)


async def feedback(
    execution_id: str,
    *,
    score: float | None = None,
    correct: bool | None = None,
    note: str | None = None,
    source: Literal["human", "system"] = "human",
) -> None:
    """Record feedback on an execution with the default engine; see :meth:`Engine.feedback`."""
    engine = await default_engine()
    await engine.feedback(execution_id, score=score, correct=correct, note=note, source=source)


async def aclose() -> None:
    """Close the current event loop's default engine, if one was opened."""
    found = _engines.pop(_loop_key(), None)
    if found is not None:
        engine, closer = found
        await engine.aclose()
        await closer.aclose()  # type: ignore[attr-defined]


def run(
    task_id: str,
    input: Any,
    *,
    version: str | None = None,
    options: ExecuteOptions | Mapping[str, Any] | None = None,
    config: EngineConfig | None = None,
) -> ExecutionResult:
    """Synchronous helper for scripts: open an engine, execute once, close it."""

    async def main() -> ExecutionResult:
        async with Engine(config) as engine:
            return await engine.execute(task_id, input, version=version, options=options)

    return anyio.run(main)
