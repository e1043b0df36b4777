"""A store from before feedback ids opens with its feedback kept, and new entries get ids."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.postgres.records import make_record
from tlm.store.migrations import Schema
from tlm.store.schema import MIGRATIONS
from tlm.store.sqlite import ExecutionStore
from tlm.store.sqlite_base import connect, migrate


def test_feedback_written_before_ids_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "tlm.db"
    store = ExecutionStore(path)
    store.write(make_record(1))
    store.close()
    conn = connect(path)  # back to version 6, the feedback table as it was then
    conn.execute("DROP INDEX feedback_client_id")
    conn.execute("ALTER TABLE feedback DROP COLUMN feedback_id")
    conn.execute("PRAGMA user_version = 6")
    conn.execute(
        "INSERT INTO feedback (execution_id, source, at, score, correct, note) "
        "VALUES ('e1', 'human', '2025-03-01T12:00:00Z', NULL, 1, 'old')"
    )
    assert migrate(conn, Schema("executions", MIGRATIONS[:6]), str(path)) == (6, 6)
    conn.close()
    store = ExecutionStore(path)
    store.add_feedback("e1", note="new")
    store.add_feedback("e1", note="new", feedback_id="f")
    store.add_feedback("e1", note="new", feedback_id="f")
    record = store.get("e1")
    store.close()
    assert record is not None
    assert [f.note for f in record.feedback] == ["old", "new", "new"]
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA user_version").fetchone() == (len(MIGRATIONS),)
        ids = [r[0] for r in raw.execute("SELECT feedback_id FROM feedback ORDER BY id")]
    assert ids[0] is None
    assert ids[2] == "f"
