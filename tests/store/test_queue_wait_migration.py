"""Migration 2: ``queue_wait_ms`` joins the records; a store written before it still opens."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import attrs

from tlm.store import ExecutionStore
from tlm.store.sqlite import MIGRATIONS
from tlm.telemetry.records import ExecutionRecord, Performance

RECORD = ExecutionRecord(
    execution_id="e1",
    task_id="extract",
    task_version="1.0.0",
    input={"text": "in"},
    output={"title": "out"},
    models_used=("m",),
    verification_results=None,
    performance=Performance(0.5, 30, 0.002),
    timestamp="2026-01-01T00:00:00.000000Z",
    attempts=1,
)


def test_a_version_1_store_is_migrated_and_keeps_its_records(tmp_path: Path) -> None:
    path = tmp_path / "tlm.db"
    conn = sqlite3.connect(path)
    for statement in MIGRATIONS[0]:  # the store as TLM wrote it before migration 2
        conn.execute(statement)
    conn.execute("PRAGMA user_version = 1")
    conn.execute(
        "INSERT INTO executions (execution_id, task_id, task_version, timestamp, status, input, "
        "models_used, execution_time, tokens_used, cost, attempts, cache_hit) "
        "VALUES ('old', 't', '1.0.0', '2025-01-01T00:00:00.000000Z', 'ok', '{}', '[]', 1.0, 3, "
        "0.0, 1, 0)"
    )
    conn.commit()
    conn.close()
    with ExecutionStore(path) as store:
        old = store.get("old")
        assert old is not None
        assert old.queue_wait_ms == 0.0
        store.write(attrs.evolve(RECORD, queue_wait_ms=412.5))
    with ExecutionStore(path) as store:
        written = store.get("e1")
    assert written is not None
    assert written.queue_wait_ms == 412.5
    assert written == attrs.evolve(RECORD, queue_wait_ms=412.5)
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
