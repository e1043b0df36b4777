"""Per-day analysis sums, kept in memory and in a console-owned file in the data directory.

A day's sums (one row per model list, prompt variant and task version, with the latencies) are
stored with a *signature* of the day's rows: count, greatest rowid and sums of every column the
figures read (see :data:`tlm.ui.figures.SIGNATURE`). They are reused only while the day's rows
still have that signature, so a late record or a rewritten one makes the day be summed again.
Feedback is not part of the sums (it is joined on every load), so feedback given to an old
execution is never served from here. The file (:data:`DAY_CACHE_FILE`, opened and versioned by
:mod:`tlm.store.sqlite_base` with :data:`DAY_CACHE_SQLITE`) is only a cache: deleting it is
harmless, and a file that cannot be opened, migrated or written leaves the memory cache working.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final

from tlm.errors import StoreError
from tlm.store import sqlite_base
from tlm.store.migrations import Schema

__all__ = ("DAY_CACHE_FILE", "DAY_CACHE_SQLITE", "DayCache", "DayRow")

DAY_CACHE_FILE: Final = "console-figures.db"
"""The file in the data directory that keeps the per-day sums across console restarts."""
DayRow = tuple[Any, ...]
"""Sums of one (day, models, variant, version) group, its sorted latencies as a list at the end."""
DAY_CACHE_SQLITE: Final = Schema(
    "console figures",
    (  # v1 adopts a file written before the cache was versioned (same table)
        (
            "CREATE TABLE IF NOT EXISTS days (key TEXT PRIMARY KEY, signature TEXT NOT NULL,"
            " rows TEXT NOT NULL)",
        ),
    ),
)
"""The cache file's schema (version in ``PRAGMA user_version``)."""


class DayCache:
    """Per-day group sums looked up by ``(key, signature)``: memory first, then ``path``.

    Thread-safe; the memory part is bounded (least recently used days are dropped).

    Args:
        path: The cache file (``None``: memory only).
        size: Days kept in memory at most.
    """

    def __init__(self, path: Path | None = None, size: int = 8192) -> None:
        self._items: OrderedDict[str, tuple[str, list[DayRow]]] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()
        self._file: sqlite3.Connection | None = None
        if path is not None:
            try:
                conn = sqlite_base.open_database(
                    path, DAY_CACHE_SQLITE, what="the console's figures cache", busy_timeout_s=1.0
                )
            except StoreError:
                return  # unusable, damaged or newer file: memory only
            with contextlib.suppress(sqlite3.Error):  # a lost write only costs a recompute
                conn.execute("PRAGMA synchronous=OFF")
            self._file = conn

    @staticmethod
    def _text(value: Iterable[Any]) -> str:
        return json.dumps(list(value), separators=(",", ":"))

    def get(self, key: tuple[Any, ...], signature: tuple[Any, ...]) -> list[DayRow] | None:
        """The day's rows stored under ``key`` if stored with ``signature``, else ``None``."""
        name, sign = self._text(key), self._text(signature)
        with self._lock:
            found = self._items.get(name)
            if found is not None and found[0] == sign:
                self._items.move_to_end(name)
                return found[1]
            if self._file is None:
                return None
            try:
                row = self._file.execute(
                    "SELECT rows FROM days WHERE key = ? AND signature = ?", (name, sign)
                ).fetchone()
            except sqlite3.Error:
                return None
            if row is None:
                return None
            rows: list[DayRow] = [tuple(r) for r in json.loads(row[0])]
            self._remember(name, sign, rows)
            return rows

    def put_many(
        self, days: Iterable[tuple[tuple[Any, ...], tuple[Any, ...], list[DayRow]]]
    ) -> None:
        """Store each ``(key, signature, rows)``; days with an open end stay in memory only."""
        stored = []
        with self._lock:
            for key, signature, rows in days:
                name, sign = self._text(key), self._text(signature)
                self._remember(name, sign, rows)
                if key[-1] is not None and self._file is not None:
                    stored.append((name, sign, json.dumps(rows, separators=(",", ":"))))
            if self._file is None or not stored:
                return
            conn = self._file
            try:
                conn.execute("BEGIN")
                conn.executemany(
                    "INSERT OR REPLACE INTO days (key, signature, rows) VALUES (?, ?, ?)", stored
                )
                conn.execute("COMMIT")
            except sqlite3.Error:  # busy or read-only: the memory cache still holds the days
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")

    def _remember(self, name: str, sign: str, rows: list[DayRow]) -> None:
        self._items[name] = (sign, rows)
        self._items.move_to_end(name)
        while len(self._items) > self._size:
            self._items.popitem(last=False)

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
