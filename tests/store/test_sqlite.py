"""The embedded store: schema and migrations, upserts, queries, feedback, durability."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tlm.errors import StoreError
from tlm.store import ExecutionStore, record_feedback
from tlm.store.sqlite import MIGRATIONS
from tlm.telemetry.records import (
    ErrorInfo,
    ExecutionRecord,
    Performance,
    VerificationResults,
    format_timestamp,
)

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def make_record(i: int, *, task_id: str = "extract", when: datetime = T0) -> ExecutionRecord:
    return ExecutionRecord(
        execution_id=f"e{i}",
        task_id=task_id,
        task_version="1.0.0" if i % 2 else "1.1.0",
        input={"text": f"in {i}"},
        output={"value": i},
        models_used=("m1", "m2"),
        verification_results=VerificationResults("consensus", True, 0.75, {"votes": 2}),
        performance=Performance(0.5, 30, 0.002),
        timestamp=format_timestamp(when + timedelta(minutes=i)),
        prompt_variant="default",
        attempts=1,
        trace_id="0" * 32,
        prompt="Extract: in",
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ExecutionStore]:
    s = ExecutionStore(tmp_path / "data" / "tlm.db")
    yield s
    s.close()


def test_schema_is_versioned_and_in_wal_mode(store: ExecutionStore) -> None:
    conn = sqlite3.connect(store.path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "tlm.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    conn.close()
    with pytest.raises(StoreError, match=r"tlm\.db: schema version .* is newer"):
        ExecutionStore(path)


def test_reopening_keeps_records_and_does_not_migrate_twice(tmp_path: Path) -> None:
    with ExecutionStore(tmp_path / "tlm.db") as s:
        s.write(make_record(1))
    with ExecutionStore(tmp_path / "tlm.db") as s:
        assert s.get("e1") == make_record(1)


def test_records_round_trip_and_upsert_keeps_feedback(store: ExecutionStore) -> None:
    record = make_record(3)
    store.write(record)
    assert store.get("e3") == record
    store.add_feedback("e3", score=0.5, note="ok", source="system", at=T0)
    failed = ExecutionRecord(
        execution_id="e3",
        task_id="extract",
        task_version="1.0.0",
        input={},
        output=None,
        models_used=(),
        verification_results=None,
        performance=Performance(1.0, 0, 0.0),
        timestamp=record.timestamp,
        error=ErrorInfo("ProviderTimeout", "timed out"),
        status="error",
    )
    store.write(failed)
    got = store.get("e3")
    assert got is not None
    assert got.status == "error"
    assert got.error == ErrorInfo("ProviderTimeout", "timed out")
    assert [f.note for f in got.feedback] == ["ok"]
    assert store.count() == 1
    assert store.get("missing") is None


def test_query_filters_by_task_version_and_time(store: ExecutionStore) -> None:
    for i in range(6):
        store.write(make_record(i, task_id="a" if i < 4 else "b"))
    assert [r.execution_id for r in store.query(task_id="a")] == ["e0", "e1", "e2", "e3"]
    assert [r.execution_id for r in store.query(task_id="a", version="1.0.0")] == ["e1", "e3"]
    since, until = T0 + timedelta(minutes=2), T0 + timedelta(minutes=5)
    assert [r.execution_id for r in store.query(since=since, until=until)] == ["e2", "e3", "e4"]
    assert [r.execution_id for r in store.query(limit=2, newest_first=True)] == ["e5", "e4"]


async def test_feedback_is_linked_with_source_and_time(store: ExecutionStore) -> None:
    store.write(make_record(1))
    given = await record_feedback(store, "e1", score=0.9, correct=True, note="good")
    assert given.source == "human"
    assert given.at.endswith("Z")
    await record_feedback(store, "e1", correct=False, source="system", at=T0)
    record = store.get("e1")
    assert record is not None
    assert [(f.source, f.correct, f.score) for f in record.feedback] == [
        ("human", True, 0.9),
        ("system", False, None),
    ]
    assert record.feedback[1].at == "2025-03-01T12:00:00.000000Z"
    (listed,) = store.query(task_id="extract")
    assert len(listed.feedback) == 2


async def test_feedback_errors(store: ExecutionStore) -> None:
    with pytest.raises(StoreError, match="no execution with id 'nope'"):
        await record_feedback(store, "nope", score=1.0)
    store.write(make_record(1))
    with pytest.raises(ValueError, match="source"):
        store.add_feedback("e1", score=1.0, source="robot")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs a score"):
        store.add_feedback("e1")


def test_writing_after_close_is_an_error(tmp_path: Path) -> None:
    s = ExecutionStore(tmp_path / "tlm.db")
    s.close()
    s.close()  # idempotent
    with pytest.raises(StoreError, match="closed"):
        s.write(make_record(1))


CHILD = textwrap.dedent(
    """
    import sys, time
    from opentelemetry.sdk.trace import TracerProvider
    from tlm.store import ExecutionStore
    from tlm.telemetry import get_tracer
    from tlm.telemetry.processor import ExecutionRecordProcessor
    sys.path.insert(0, sys.argv[2])
    from telemetry.fakes import run_execution

    store = ExecutionStore(sys.argv[1], batch_size=64)
    provider = TracerProvider()
    provider.add_span_processor(ExecutionRecordProcessor(store))
    tracer = get_tracer(provider)
    for i in range(500):
        run_execution(tracer, i)
    store.flush()
    print("flushed", flush=True)
    i = 500
    while True:  # keep writing until killed
        run_execution(tracer, i)
        i += 1
    """
)


def test_a_killed_process_loses_no_committed_record(tmp_path: Path) -> None:
    db = tmp_path / "tlm.db"
    tests_dir = Path(__file__).resolve().parents[1]
    with subprocess.Popen(
        [sys.executable, "-c", CHILD, str(db), str(tests_dir)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path.cwd())},
    ) as child:
        try:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "flushed"
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()
    assert child.returncode == -signal.SIGKILL
    with ExecutionStore(db) as store:
        ids = {r.execution_id for r in store.iter_query()}
        assert {f"ex-extract-{i:06d}" for i in range(500)} <= ids
        record = store.get("ex-extract-000499")
        assert record is not None
        assert record.output == {"value": 499}
