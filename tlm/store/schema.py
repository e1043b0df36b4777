"""The store's schema, its migrations, and records as rows (and back).

Text that SQLite cannot take is made storable here, not dropped: a lone surrogate (valid in a
Python ``str``, not encodable as UTF-8) is written as its ``\\uXXXX`` escape. Inside the JSON
columns that escape is JSON's own, so the value reads back unchanged; in plain-text columns it
stays visible as the six characters ``\\ud800``.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from tlm.errors import StoreError
from tlm.telemetry.records import (
    ErrorInfo,
    ExecutionRecord,
    Feedback,
    Performance,
    VerificationResults,
)

__all__ = (
    "MIGRATIONS",
    "COLUMNS",
    "UPSERT",
    "SELECT",
    "connect",
    "migrate",
    "to_row",
    "escape_row",
    "escape_surrogates",
    "from_row",
    "feedback_from_row",
)

MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    # 1: executions and feedback
    (
        """CREATE TABLE executions (
            execution_id TEXT PRIMARY KEY,
            task_id TEXT NOT NULL,
            task_version TEXT NOT NULL,
            timestamp TEXT NOT NULL,
            status TEXT NOT NULL,
            input TEXT NOT NULL,
            output TEXT,
            models_used TEXT NOT NULL,
            verification_method TEXT,
            passed INTEGER,
            confidence REAL,
            verification_details TEXT,
            execution_time REAL NOT NULL,
            tokens_used INTEGER NOT NULL,
            cost REAL NOT NULL,
            prompt_variant TEXT,
            attempts INTEGER NOT NULL,
            error_type TEXT,
            error_message TEXT,
            cache_hit INTEGER NOT NULL,
            fallback TEXT,
            trace_id TEXT,
            prompt TEXT,
            system_prompt TEXT
        )""",
        "CREATE INDEX executions_task_time ON executions (task_id, timestamp)",
        "CREATE INDEX executions_time ON executions (timestamp)",
        """CREATE TABLE feedback (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            execution_id TEXT NOT NULL REFERENCES executions (execution_id) ON DELETE CASCADE,
            source TEXT NOT NULL CHECK (source IN ('human', 'system')),
            at TEXT NOT NULL,
            score REAL,
            correct INTEGER,
            note TEXT
        )""",
        "CREATE INDEX feedback_execution ON feedback (execution_id)",
    ),
)
"""Schema migrations: step ``i`` (0-based) takes ``user_version`` from ``i`` to ``i + 1``."""

COLUMNS: Final = (
    "execution_id",
    "task_id",
    "task_version",
    "timestamp",
    "status",
    "input",
    "output",
    "models_used",
    "verification_method",
    "passed",
    "confidence",
    "verification_details",
    "execution_time",
    "tokens_used",
    "cost",
    "prompt_variant",
    "attempts",
    "error_type",
    "error_message",
    "cache_hit",
    "fallback",
    "trace_id",
    "prompt",
    "system_prompt",
)
UPSERT: Final = (
    f"INSERT INTO executions ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))}) "
    f"ON CONFLICT (execution_id) DO UPDATE SET "
    + ", ".join(f"{col} = excluded.{col}" for col in COLUMNS[1:])
)
SELECT: Final = f"SELECT {', '.join(COLUMNS)} FROM executions"
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str).encode
_SURROGATE = re.compile("[\ud800-\udfff]")


def connect(path: Path, *, busy_timeout_s: float = 30.0) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), WAL, foreign keys on."""
    conn = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, timeout=busy_timeout_s
    )
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def migrate(conn: sqlite3.Connection, source: str) -> None:
    """Bring the schema to the newest version (refuses a newer one)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > len(MIGRATIONS):
            raise StoreError(
                f"{source}: schema version {version} is newer than this TLM knows "
                f"({len(MIGRATIONS)}); upgrade TLM"
            )
        for step in range(version, len(MIGRATIONS)):
            for statement in MIGRATIONS[step]:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {step + 1}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def escape_surrogates(text: str) -> str:
    """``text`` with each lone surrogate replaced by its ``\\uXXXX`` escape."""
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _json(value: Any) -> str:
    try:
        return _dumps(value)
    except (ValueError, TypeError, RecursionError) as exc:  # circular, too deep, bad keys
        return _dumps(f"[unencodable: {type(exc).__name__}: {exc}]")


def to_row(record: ExecutionRecord) -> tuple[Any, ...]:
    """The record as a row of :data:`COLUMNS` (a value JSON cannot hold becomes a marker)."""
    v = record.verification_results
    p = record.performance
    e = record.error
    return (
        record.execution_id,
        record.task_id,
        record.task_version,
        record.timestamp,
        record.status,
        _json(record.input),
        None if record.output is None else _json(record.output),
        _json(record.models_used),
        None if v is None else v.method_used,
        None if v is None or v.passed is None else int(v.passed),
        None if v is None else v.confidence,
        None if v is None or not v.details else _json(v.details),
        p.execution_time,
        p.tokens_used,
        p.cost,
        record.prompt_variant,
        record.attempts,
        None if e is None else e.type,
        None if e is None else e.message,
        int(record.cache_hit),
        record.fallback,
        record.trace_id,
        record.prompt,
        record.system_prompt,
    )


def escape_row(row: Sequence[Any]) -> tuple[Any, ...]:
    """``row`` with lone surrogates escaped in every text value (see the module docstring)."""
    return tuple(escape_surrogates(v) if isinstance(v, str) else v for v in row)


def _load(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def from_row(row: Sequence[Any], feedback: tuple[Feedback, ...]) -> ExecutionRecord:
    """The record stored as ``row``, with its ``feedback``."""
    (
        execution_id,
        task_id,
        task_version,
        timestamp,
        status,
        input_json,
        output_json,
        models_json,
        method,
        passed,
        confidence,
        details_json,
        execution_time,
        tokens_used,
        cost,
        prompt_variant,
        attempts,
        error_type,
        error_message,
        cache_hit,
        fallback,
        trace_id,
        prompt,
        system_prompt,
    ) = row
    verification = (
        None
        if method is None
        else VerificationResults(
            method_used=method,
            passed=None if passed is None else bool(passed),
            confidence=confidence,
            details=_load(details_json) if details_json else {},
        )
    )
    return ExecutionRecord(
        execution_id=execution_id,
        task_id=task_id,
        task_version=task_version,
        input=_load(input_json),
        output=None if output_json is None else _load(output_json),
        models_used=tuple(_load(models_json)),
        verification_results=verification,
        performance=Performance(execution_time, tokens_used, cost),
        timestamp=timestamp,
        feedback=feedback,
        prompt_variant=prompt_variant,
        attempts=attempts,
        error=None if error_type is None else ErrorInfo(error_type, error_message or ""),
        status=status,
        cache_hit=bool(cache_hit),
        fallback=fallback,
        trace_id=trace_id,
        prompt=prompt,
        system_prompt=system_prompt,
    )


def feedback_from_row(row: Sequence[Any]) -> Feedback:
    """One feedback entry from ``(source, at, score, correct, note)``."""
    source, at, score, correct, note = row
    return Feedback(
        source=source,
        at=at,
        score=score,
        correct=None if correct is None else bool(correct),
        note=note,
    )
