"""The batch state's file opens through the shared SQLite base: versioned, damage named."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tlm.batch.state import DB_NAME, MIGRATIONS, BatchState
from tlm.errors import StoreCorrupted, StoreError


def test_a_new_file_is_migrated_and_a_newer_one_refused(tmp_path: Path) -> None:
    path = tmp_path / DB_NAME
    BatchState(path).close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (len(MIGRATIONS),)
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        conn.execute("PRAGMA user_version = 42")
    with pytest.raises(StoreError, match=r"batches\.db: schema version 42 is newer"):
        BatchState(path)


def test_a_damaged_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / DB_NAME
    path.write_bytes(b"\x00 not a batch state " * 500)
    with pytest.raises(StoreCorrupted, match=r"batches\.db: the batch state is corrupted"):
        BatchState(path)
