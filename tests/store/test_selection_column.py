"""The selection explanation column: added to older stores by migration, round-tripped."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import attrs

from tests.learn.records import record
from tlm.store.sqlite import MIGRATIONS, ExecutionStore


def test_an_older_store_is_migrated_and_keeps_its_records(tmp_path: Path) -> None:
    path = tmp_path / "tlm.db"
    old = record(execution_id="old")
    with ExecutionStore(path) as store:
        store.write(old)
        store.flush()
    # make it look like a store from before the selection column (and the migrations after it)
    step = next(i for i, m in enumerate(MIGRATIONS) if any("selection" in sql for sql in m))
    conn = sqlite3.connect(path)
    for statements in reversed(MIGRATIONS[step:]):  # each undone, newest first
        for sql in reversed(statements):
            words = sql.split()
            if "ADD COLUMN" in sql:  # ALTER TABLE <table> ADD COLUMN <column> ...
                conn.execute(f"ALTER TABLE {words[2]} DROP COLUMN {words[5]}")
            else:  # CREATE [UNIQUE] INDEX <name> ...
                conn.execute(f"DROP INDEX {words[words.index('INDEX') + 1]}")
    conn.execute(f"PRAGMA user_version = {step}")
    conn.commit()
    conn.close()
    explanation = {"chosen": "model-a", "considered": [{"model": "model-a", "quality": 0.9}]}
    with ExecutionStore(path) as store:
        assert store.get("old") is not None
        assert store.get("old").selection is None  # type: ignore[union-attr]
        store.write(attrs.evolve(record(execution_id="new"), selection=explanation))
        store.flush()
        got = store.get("new")
    assert got is not None
    assert got.selection == explanation
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    conn.close()
