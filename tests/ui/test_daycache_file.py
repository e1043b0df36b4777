"""The console's day cache file is opened and versioned by the shared SQLite base.

A new file gets the project's pragmas and its schema version; a file from before the cache was
versioned keeps its days; a newer, damaged or unreadable file leaves a working memory cache and
is not touched.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tlm.ui.daycache import DAY_CACHE_FILE, DAY_CACHE_SQLITE, DayCache

KEY = ("2026-11-20", "2026-11-21")
SIGN = (3, 42, 1.5)
ROWS = [("model-a", "standard", "1.0.0", 3, 2, [0.1, 0.2, 0.3])]


def _pragmas(path: Path) -> tuple[int, str]:
    with sqlite3.connect(path) as conn:
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        journal = str(conn.execute("PRAGMA journal_mode").fetchone()[0])
    return version, journal


def test_a_new_file_is_versioned_and_keeps_days_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "data" / DAY_CACHE_FILE  # its directory is made too
    cache = DayCache(path)
    cache.put_many([(KEY, SIGN, ROWS), (("2026-11-21", None), SIGN, ROWS)])
    cache.close()
    assert _pragmas(path) == (DAY_CACHE_SQLITE.version, "wal")
    restarted = DayCache(path)
    assert restarted.get(KEY, SIGN) == [tuple(r) for r in ROWS]
    assert restarted.get(KEY, (4, 42, 1.5)) is None  # another signature: summed again
    assert restarted.get(("2026-11-21", None), SIGN) is None  # an open day stays in memory
    restarted.close()


def test_a_file_from_before_versioning_keeps_its_days(tmp_path: Path) -> None:
    path = tmp_path / DAY_CACHE_FILE
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE days (key TEXT PRIMARY KEY, signature TEXT NOT NULL, rows TEXT NOT NULL)"
        )
        conn.execute(
            "INSERT INTO days VALUES (?, ?, ?)",
            ('["2026-11-20","2026-11-21"]', "[3,42,1.5]", '[["model-a","standard",1,[0.5]]]'),
        )
    conn.close()
    cache = DayCache(path)
    assert cache.get(KEY, SIGN) == [("model-a", "standard", 1, [0.5])]
    cache.close()
    assert _pragmas(path)[0] == DAY_CACHE_SQLITE.version


def test_a_newer_or_damaged_file_leaves_the_memory_cache_working(tmp_path: Path) -> None:
    newer = tmp_path / "newer" / DAY_CACHE_FILE
    newer.parent.mkdir()
    with sqlite3.connect(newer) as conn:
        conn.execute(f"PRAGMA user_version = {DAY_CACHE_SQLITE.version + 1}")
    conn.close()
    damaged = tmp_path / "damaged" / DAY_CACHE_FILE
    damaged.parent.mkdir()
    damaged.write_bytes(b"not a database at all " * 300)
    before = damaged.read_bytes()
    for path in (newer, damaged):
        cache = DayCache(path)
        cache.put_many([(KEY, SIGN, ROWS)])
        assert cache.get(KEY, SIGN) == ROWS  # from memory
        cache.close()
    assert damaged.read_bytes() == before
    assert _pragmas(newer)[0] == DAY_CACHE_SQLITE.version + 1
    with sqlite3.connect(newer) as conn:  # not migrated down nor written to
        tables = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    conn.close()
    assert tables == []
