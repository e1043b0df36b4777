"""A damaged database is found when the store opens, before any model call is paid for.

A file whose header is intact but whose pages are damaged (bit flips, a torn copy) opens without
complaint; SQLite notices only when a statement touches a damaged page, typically at the first
commit. :func:`check_integrity` runs ``PRAGMA quick_check`` (b-tree structure and page format of
every table and index; linear in the file size, about 150 MB/s) under a time budget: a file it
can read whole within the budget (a few hundred MB, see ``docs/durability.md``) is checked
entirely; a larger one is checked as far as the budget goes, and damage found later at commit
time is handled like a full disk (records saved to the fallback file, callers told). A file not
written since its last whole check is not checked again.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import time
from pathlib import Path

from tlm.errors import StoreCorrupted
from tlm.store.failures import describe, is_corruption

__all__ = ("DEFAULT_CHECK_BUDGET_S", "check_integrity", "corrupted")

DEFAULT_CHECK_BUDGET_S = 2.0
"""Seconds ``quick_check`` may take when a store opens."""

_log = logging.getLogger("tlm.store")


def corrupted(path: Path, detail: str, what: str = "the execution store") -> StoreCorrupted:
    """The error for a damaged ``what`` at ``path``: what was found and what to do (one line)."""
    lines = [line.strip() for line in detail.splitlines() if line.strip() and "***" not in line]
    found = lines[0] if lines else "damaged"
    if len(found) > 120:
        found = found[:119] + "…"
    return StoreCorrupted(
        f"{path}: {what} is corrupted ({found}); found on opening it, before any other "
        f"work. Move it aside (mv {path} {path}.corrupt) to start a new one; sqlite3's "
        f".recover command can salvage its records"
    )


def _fingerprint(path: Path) -> list[int] | None:
    """Size and modification time of a closed store (``None`` while its WAL holds frames)."""
    try:
        stat = path.stat()
        wal = path.with_name(path.name + "-wal")
        if wal.exists() and wal.stat().st_size > 0:
            return None
    except OSError:
        return None
    return [stat.st_size, stat.st_mtime_ns]


def _marker(path: Path) -> Path:
    return path.with_name(path.name + "-checked")


def _unchanged_since_checked(path: Path) -> bool:
    try:
        recorded = json.loads(_marker(path).read_text())
    except (OSError, ValueError):
        return False
    current = _fingerprint(path)
    return current is not None and recorded == current


def _remember_checked(path: Path) -> None:
    current = _fingerprint(path)
    if current is None:
        return
    with contextlib.suppress(OSError):
        _marker(path).write_text(json.dumps(current))


def check_integrity(
    conn: sqlite3.Connection, path: Path, budget_s: float, what: str = "the execution store"
) -> None:
    """Raise :class:`StoreCorrupted` if ``quick_check`` finds damage within ``budget_s``.

    ``budget_s <= 0`` skips the check. A file not written since it last passed a whole check (its
    WAL empty, its size and modification time those remembered in ``<name>-checked``) is not
    checked again: commands opening a large store one after the other do not pay each time.
    """
    if budget_s <= 0 or _unchanged_since_checked(path):
        return
    deadline = time.monotonic() + budget_s

    def over_budget() -> int:
        return 1 if time.monotonic() > deadline else 0

    conn.set_progress_handler(over_budget, 20_000)
    try:
        rows = conn.execute("PRAGMA quick_check(3)").fetchall()
    except sqlite3.OperationalError as exc:
        if "interrupt" in str(exc):
            _log.info("%s: integrity check stopped after its %.1f s budget", path, budget_s)
            return
        raise
    except sqlite3.DatabaseError as exc:
        if is_corruption(exc):
            raise corrupted(path, describe(exc), what) from exc
        raise
    finally:
        conn.set_progress_handler(None, 0)
    problems = [str(row[0]) for row in rows if row and row[0] != "ok"]
    if problems:
        raise corrupted(path, "quick_check: " + problems[0], what)
    _remember_checked(path)
