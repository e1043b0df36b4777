"""A cached output always names an execution on record: the cache is written after the commit.

Were the output cached before its record was committed, a process killed in between would leave
a cache entry for an execution the store never knew, and a resumed batch would answer that
input from the cache instead of running it (``tests/batch/test_resume.py``). Here the record is
refused deterministically (a trigger on the executions table) instead of by a kill.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.engine.conftest import ScriptedModels, reply
from tlm.engine import Engine
from tlm.errors import RecordNotCommitted

EngineFactory = Callable[..., Engine]
TASK = "title_extraction"
POSTING = {"posting": "Chef wanted"}


def _refuse_records(db: Path, refuse: bool) -> None:
    """Make every commit of an execution record fail (as a full or damaged disk would)."""
    with sqlite3.connect(db, isolation_level=None) as conn:
        if refuse:
            conn.execute(
                "CREATE TRIGGER refuse BEFORE INSERT ON executions "
                "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
            )
        else:
            conn.execute("DROP TRIGGER refuse")
    conn.close()


def _cached_execution_ids(data: Path) -> list[str]:
    conn = sqlite3.connect(data / "cache.db")
    try:
        return [
            json.loads(row[0])["execution_id"] for row in conn.execute("SELECT meta FROM results")
        ]
    finally:
        conn.close()


def _committed(data: Path) -> set[str]:
    conn = sqlite3.connect(data / "tlm.db")
    try:
        return {row[0] for row in conn.execute("SELECT execution_id FROM executions")}
    finally:
        conn.close()


@pytest.mark.parametrize("mode", ["execute", "map"])
async def test_an_output_whose_record_was_not_committed_is_not_cached(
    engine_factory: EngineFactory, models: ScriptedModels, tmp_path: Path, mode: str
) -> None:
    data = tmp_path / "data"
    models.handlers["*"] = reply({"title": "Chef"})

    async def run(engine: Engine) -> tuple[str, bool, BaseException | None]:
        if mode == "map":
            [result] = [r async for r in engine.map(TASK, [POSTING])]
            return result.execution_id, result.cache_hit, result.error
        try:
            result = await engine.execute(TASK, POSTING)
        except RecordNotCommitted as exc:  # it carries the result
            return exc.result.execution_id, exc.result.cache_hit, exc
        return result.execution_id, result.cache_hit, None

    async with engine_factory() as engine:
        _refuse_records(data / "tlm.db", True)
        lost_id, hit, error = await run(engine)
        assert isinstance(error, RecordNotCommitted)  # verified, but its record is not kept
        assert not hit
        engine.flush()  # whatever was cached is written now
        assert _cached_execution_ids(data) == []
        _refuse_records(data / "tlm.db", False)
        again_id, hit, error = await run(engine)
        assert error is None
        assert not hit  # ran again: the lost execution left nothing to answer from
        assert models.calls() == 2
        engine.flush()
        assert _cached_execution_ids(data) == [again_id]
        third_id, hit, error = await run(engine)
        assert (hit, error) == (True, None)  # a committed execution's output is cached as before
        assert models.calls() == 2
    assert lost_id not in _committed(data)
    assert {again_id, third_id} <= _committed(data)
