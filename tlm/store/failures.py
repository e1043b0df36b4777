"""What went wrong with a write, and where a record goes when the database cannot take it.

SQLite's errors are sorted into *transient* ones (the file is locked or busy: wait and try
again) and the rest (disk full, corruption, I/O errors: the records of that batch cannot be
kept in the database). A record the database cannot keep is appended, as one JSON line, to a
fallback file beside the database (``unrecorded.jsonl``) so it can be re-imported later.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Final

from tlm.telemetry.records import ExecutionRecord

__all__ = (
    "UNRECORDED_NAME",
    "error_code",
    "is_transient",
    "is_corruption",
    "describe",
    "rescue",
)

UNRECORDED_NAME: Final = "unrecorded.jsonl"
"""The fallback file's name, beside the database."""

_BUSY, _LOCKED, _CORRUPT, _FULL, _NOTADB = 5, 6, 11, 13, 26
_NAMES: Final = {
    5: "SQLITE_BUSY",
    6: "SQLITE_LOCKED",
    8: "SQLITE_READONLY",
    10: "SQLITE_IOERR",
    11: "SQLITE_CORRUPT",
    13: "SQLITE_FULL",
    14: "SQLITE_CANTOPEN",
    26: "SQLITE_NOTADB",
}


def error_code(exc: BaseException) -> int | None:
    """SQLite's primary result code of ``exc`` (``None`` when it is not a SQLite error)."""
    code = getattr(exc, "sqlite_errorcode", None)
    return None if code is None else int(code) & 0xFF


def is_transient(exc: BaseException) -> bool:
    """Whether waiting may help: the database is locked or busy (another connection writes)."""
    if not isinstance(exc, sqlite3.OperationalError):
        return False
    code = error_code(exc)
    if code is not None:
        return code in (_BUSY, _LOCKED)
    text = str(exc)
    return "locked" in text or "busy" in text


def is_corruption(exc: BaseException) -> bool:
    """Whether ``exc`` says the file is damaged or not a database at all."""
    code = error_code(exc)
    if code is not None:
        return code in (_CORRUPT, _NOTADB)
    text = str(exc)
    return "malformed" in text or "not a database" in text


def describe(exc: BaseException) -> str:
    """``exc`` for people: its message and SQLite's code name, e.g. ``... (SQLITE_FULL)``."""
    code = error_code(exc)
    name = getattr(exc, "sqlite_errorname", None) or (_NAMES.get(code) if code else None)
    text = str(exc) or type(exc).__name__
    return f"{text} ({name})" if name else f"{text} ({type(exc).__name__})"


def rescue(path: Path, records: Iterable[ExecutionRecord]) -> dict[str, str]:
    """Append ``records`` to ``path``, one JSON line each; why each one that could not be, by id.

    Lines are ASCII (``\\uXXXX`` escapes), so text the database could not take fits here. A line
    that cannot be written whole (the disk is full here too) is cut off again, so the file only
    ever holds complete lines.
    """
    failed: dict[str, str] = {}
    records = list(records)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    except OSError as exc:
        return {r.execution_id: f"{type(exc).__name__}: {exc}" for r in records}
    try:
        for record in records:
            start = os.fstat(fd).st_size
            try:
                line = json.dumps(
                    record.to_dict(), ensure_ascii=True, separators=(",", ":"), default=str
                )
                data = line.encode("ascii") + b"\n"
                if os.write(fd, data) != len(data):
                    raise OSError(errno.ENOSPC, "no space left for the whole line")
            except (OSError, ValueError, TypeError, RecursionError) as exc:
                failed[record.execution_id] = f"{type(exc).__name__}: {exc}"
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, start)
    finally:
        os.close(fd)
    return failed
