"""The analysis figures from the day cache file: a restarted console (memory empty, file kept),
the start-up warm-up and no cache at all all give ``tlm analyze``'s figures, also after old
executions get feedback, a late record or a rewrite."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

import attrs
import pytest

from tests.ui.test_queries import NOW, _assert_same_figures, store_and_queries
from tlm.learn.analysis import analyze
from tlm.store.sqlite import ExecutionStore
from tlm.telemetry.records import ExecutionRecord, VerificationResults, format_timestamp
from tlm.ui.daycache import DAY_CACHE_FILE
from tlm.ui.queries import ExecutionQueries

__all__ = ("store_and_queries",)  # the fixture, shared with test_queries

TASK = "job_detail_extraction"


def _cached_days(data_dir: Path) -> int:
    with sqlite3.connect(data_dir / DAY_CACHE_FILE) as conn:
        return int(conn.execute("SELECT count(*) FROM days").fetchone()[0])


def test_a_restarted_console_reads_the_file_and_stays_right(
    store_and_queries: tuple[list[ExecutionRecord], ExecutionQueries], tmp_path: Path
) -> None:
    records, queries = store_and_queries
    since = format_timestamp(NOW - timedelta(days=8))
    first = queries.analysis(TASK, since=since)
    queries.close()
    assert _cached_days(tmp_path) >= 7  # the closed days went to the file
    chosen = [r for r in records if r.timestamp >= since]
    expected = analyze(chosen, task_id=TASK, since=NOW - timedelta(days=8))
    _assert_same_figures(first, expected)

    # the store changes while no console runs: feedback on an old execution, a late record,
    # a rewritten one (same id, same rowid: only its sums tell)
    old = next(r for r in chosen if r.task_id == TASK and r.timestamp < format_timestamp(
        NOW - timedelta(days=4)))  # fmt: skip
    late = attrs.evolve(
        old,
        execution_id="late0000000000000000000000000002",
        feedback=(),
        timestamp=format_timestamp(NOW - timedelta(days=6, hours=2)),
    )
    rewritten = next(r for r in chosen if r.task_id == TASK and r.passed is True and r is not old)
    rewritten = attrs.evolve(
        rewritten,
        verification_results=VerificationResults("consensus", False, 0.2, {"issues": ["no"]}),
    )
    with ExecutionStore(tmp_path / "tlm.db") as store:
        store.write(late)
        store.write(rewritten)
        store.flush()
        store.add_feedback(old.execution_id, correct=False, score=0.0, note="late review")
        changed = [store.get(r.execution_id) for r in [*chosen, late]]
    restarted = ExecutionQueries(tmp_path / "tlm.db")
    second = restarted.analysis(TASK, since=since)
    now_records = [r for r in changed if r is not None]
    _assert_same_figures(second, analyze(now_records, task_id=TASK, since=NOW - timedelta(days=8)))
    assert second.overall.executions == first.overall.executions + 1
    assert second.overall.feedback_count == first.overall.feedback_count + 1
    assert second.overall.passed == first.overall.passed - 1 + (late.passed is True)
    assert restarted.analysis(TASK, since=since) is second  # the file did not change
    with ExecutionStore(tmp_path / "tlm.db") as store:  # feedback on an old one, while it runs
        store.add_feedback(rewritten.execution_id, correct=True, score=1.0, note="again")
    third = restarted.analysis(TASK, since=since)
    assert third.overall.feedback_count == second.overall.feedback_count + 1
    assert attrs.evolve(third, overall=second.overall, groups=second.groups) == second
    second = third
    # and without any cache, the same figures
    bare = ExecutionQueries(tmp_path / "tlm.db", keep_days=False)
    assert bare.analysis(TASK, since=since) == second
    bare.close()
    restarted.close()


def test_the_warm_up_fills_the_file_before_any_page(
    store_and_queries: tuple[list[ExecutionRecord], ExecutionQueries], tmp_path: Path
) -> None:
    records, queries = store_and_queries
    assert queries.warm_up([TASK, "skill_decomposition", "no_such_task"]).wait() == 0
    days = {r.timestamp[:10] for r in records if r.task_id == TASK}
    # every closed day of both tasks (the newest day of each stays open, in memory only)
    assert _cached_days(tmp_path) == 2 * (len(days) - 1)
    queries.close()
    restarted = ExecutionQueries(tmp_path / "tlm.db")
    for version in (None, "1.1.0"):
        got = restarted.analysis(TASK, since=None, version=version)
        _assert_same_figures(got, analyze(records, task_id=TASK, version=version))
    restarted.close()


def test_an_unusable_cache_file_leaves_the_figures_right(
    store_and_queries: tuple[list[ExecutionRecord], ExecutionQueries], tmp_path: Path
) -> None:
    records, queries = store_and_queries
    queries.close()
    (tmp_path / DAY_CACHE_FILE).unlink()
    (tmp_path / DAY_CACHE_FILE).write_bytes(b"not a database at all" * 100)
    broken = ExecutionQueries(tmp_path / "tlm.db")
    _assert_same_figures(broken.analysis(TASK, since=None), analyze(records, task_id=TASK))
    broken.close()


def test_the_warm_up_command_reports_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tlm.ui.warmup import main

    assert main([]) == 2
    assert "usage: python -m tlm.ui.warmup DB TASK..." in capsys.readouterr().err
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    assert main([str(empty), TASK]) == 1
    assert f"{empty}: warm-up failed: no such table: executions" in capsys.readouterr().err


async def test_a_starting_console_warms_up_a_big_enough_store(
    seeded: tuple[Path, Path, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    import anyio.to_thread
    from aiohttp.test_utils import TestClient, TestServer

    from tests.ui.conftest import make_console
    from tlm.ui import app as ui_app
    from tlm.ui.security import Guard

    data_dir, definitions, _ = seeded
    cache_file = data_dir / DAY_CACHE_FILE
    monkeypatch.setattr(ui_app, "WARM_UP_FROM", 10**9)  # a small store: no warm-up
    console = make_console(data_dir, definitions)
    async with TestClient(TestServer(ui_app.create_app(console, Guard()))):
        assert console.queries.rows_estimate() > 0
        assert console.queries.warming is None
    assert not _cached_days(data_dir)  # the file exists (the console opened it) but is empty
    monkeypatch.setattr(ui_app, "WARM_UP_FROM", 1)
    console = make_console(data_dir, definitions)
    async with TestClient(TestServer(ui_app.create_app(console, Guard()))):
        process = console.queries.warming
        assert process is not None
        assert await anyio.to_thread.run_sync(lambda: process.wait(timeout=120)) == 0
    assert cache_file.exists()
    assert _cached_days(data_dir) > 0
