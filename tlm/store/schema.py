"""The store's schema, its migrations, and records as rows (and back).

Text that SQLite cannot take is made storable here, not dropped: a lone surrogate (valid in a
Python ``str``, not encodable as UTF-8) is written as its ``\\uXXXX`` escape. Inside the JSON
columns that escape is JSON's own, so the value reads back unchanged; in plain-text columns it
stays visible as the six characters ``\\ud800``.
"""

from __future__ import annotations

import functools
import json
import re
import sqlite3
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import orjson as _orjson

from tlm.json_codec import compact_text
from tlm.store import sqlite_base
from tlm.store.migrations import Schema
from tlm.telemetry.records import (
    ErrorInfo,
    ExecutionRecord,
    Feedback,
    Performance,
    VerificationResults,
    format_timestamp,
)

__all__ = (
    "MIGRATIONS",
    "EXECUTIONS",
    "COLUMNS",
    "UPSERT",
    "upsert_rows",
    "row_chunks",
    "SELECT",
    "connect",
    "migrate",
    "to_row",
    "escape_row",
    "escape_surrogates",
    "from_row",
    "feedback_from_row",
    "query_sql",
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
    # 2: time spent waiting for provider limits
    ("ALTER TABLE executions ADD COLUMN queue_wait_ms REAL NOT NULL DEFAULT 0",),
    # 3: the provider batch that answered an execution (tlm batch --provider-batch)
    (
        "ALTER TABLE executions ADD COLUMN batch_id TEXT",
        "ALTER TABLE executions ADD COLUMN batch_custom_id TEXT",
    ),
    # 4: who and what an execution was for (ExecuteOptions.session_id, user_id, tags, metadata)
    (
        "ALTER TABLE executions ADD COLUMN session_id TEXT",
        "ALTER TABLE executions ADD COLUMN user_id TEXT",
        "ALTER TABLE executions ADD COLUMN tags TEXT",
        "ALTER TABLE executions ADD COLUMN metadata TEXT",
    ),
    # 5: why the models were ordered as they were (the input-aware selector's explanation)
    ("ALTER TABLE executions ADD COLUMN selection TEXT",),
    # 6: the span tree of each execution (JSON), for the console's waterfall
    ("ALTER TABLE executions ADD COLUMN spans TEXT",),
    # 7: a client-made id per feedback entry: a retried insert writes it once
    (
        "ALTER TABLE feedback ADD COLUMN feedback_id TEXT",
        "CREATE UNIQUE INDEX feedback_client_id ON feedback (feedback_id)",
    ),
)
"""Schema migrations: step ``i`` (0-based) takes ``user_version`` from ``i`` to ``i + 1``."""
EXECUTIONS: Final = Schema("executions", MIGRATIONS)
"""The execution log's schema on SQLite (``tlm.db``)."""

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
    "queue_wait_ms",
    "batch_id",
    "batch_custom_id",
    "session_id",
    "user_id",
    "tags",
    "metadata",
    "selection",
    "spans",
)
UPSERT: Final = (
    f"INSERT INTO executions ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))}) "
    f"ON CONFLICT (execution_id) DO UPDATE SET "
    + ", ".join(f"{col} = excluded.{col}" for col in COLUMNS[1:])
)
SELECT: Final = f"SELECT {', '.join(COLUMNS)} FROM executions"
_ROW_VALUES = f"({', '.join('?' * len(COLUMNS))})"
_UPSERT_TAIL = UPSERT[UPSERT.index(" ON CONFLICT") :]
_CHUNK_ROWS: Final = 64
"""Most rows one statement inserts (64 x 33 columns stay far below SQLite's variable limit)."""


@functools.cache
def upsert_rows(count: int) -> str:
    """:data:`UPSERT` for ``count`` rows in one statement (their parameters one after another).

    One statement is one step of SQLite's VM for the whole group: the writer thread gives the
    GIL up and takes it back once, not once per row. Rows are applied in order, so a repeated
    ``execution_id`` ends as the last row says, as with one statement per row.
    """
    head = UPSERT[: UPSERT.index(" VALUES ")]
    return f"{head} VALUES {', '.join([_ROW_VALUES] * count)}{_UPSERT_TAIL}"


def row_chunks(rows: Sequence[Sequence[Any]]) -> Iterator[tuple[str, list[Any]]]:
    """``rows`` as ``(statement, parameters)`` pairs of :func:`upsert_rows`: chunks of
    :data:`_CHUNK_ROWS`, then the rest in powers of two (few distinct statements to cache)."""
    start, total = 0, len(rows)
    while start < total:
        left = total - start
        size = _CHUNK_ROWS if left >= _CHUNK_ROWS else 1 << (left.bit_length() - 1)
        params = [value for row in rows[start : start + size] for value in row]
        yield upsert_rows(size), params
        start += size


_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str).encode
_orjson_dumps = _orjson.dumps
_SURROGATE = re.compile("[\ud800-\udfff]")
_NONE_KEY = (type(None), sqlite3.PrepareProtocol)
_NO_ADAPTERS: dict[object, None] = {}
if _NONE_KEY not in sqlite3.adapters:
    # sqlite3 binds None as NULL only after looking for an adapter, and on Python 3.11 that
    # search fails through a formatted AttributeError: about 3,000 instructions per NULL, and
    # a row has ten of them. A registered adapter for None that returns None (NULL, as before)
    # is found at once. Process-wide, but it changes no value bound; one already registered
    # (by the application) is left as it is.
    sqlite3.register_adapter(type(None), _NO_ADAPTERS.get)


def connect(path: Path, *, busy_timeout_s: float = 30.0) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), WAL, foreign keys on."""
    return sqlite_base.connect(path, busy_timeout_s=busy_timeout_s, what="the execution store")


def migrate(conn: sqlite3.Connection, source: str) -> None:
    """Bring the schema to the newest version (refuses a newer one)."""
    sqlite_base.migrate(conn, EXECUTIONS, source)


def escape_surrogates(text: str) -> str:
    """``text`` with each lone surrogate replaced by its ``\\uXXXX`` escape."""
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _json(value: Any) -> str:
    try:
        return compact_text(value)
    except (ValueError, TypeError, RecursionError) as exc:  # circular, too deep, bad keys
        return _dumps(f"[unencodable: {type(exc).__name__}: {exc}]")


def _tree_json(spans: Sequence[Any]) -> str:
    """The span tree's JSON: orjson where it writes what :func:`_json` would (plain scalars,
    finite floats: :func:`~tlm.telemetry.processor.span_tree` keeps only those), ``_json`` else."""
    try:
        return _orjson_dumps(spans).decode()
    except _orjson.JSONEncodeError:  # a lone surrogate, a big integer: the standard library
        return _json(spans)


def to_row(record: ExecutionRecord) -> tuple[Any, ...]:
    """The record as a row of :data:`COLUMNS` (a value JSON cannot hold becomes a marker)."""
    v = record.verification_results
    p = record.performance
    e = record.error
    output = record.output
    selection = record.selection
    # in the order of COLUMNS (test_schema checks it against a row built by name)
    return (
        record.execution_id,
        record.task_id,
        record.task_version,
        record.timestamp,
        record.status,
        _json(record.input),
        None if output is None else _json(output),
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
        record.queue_wait_ms,
        record.batch_id,
        record.batch_custom_id,
        record.session_id,
        record.user_id,
        _json(record.tags) if record.tags else None,
        _json(dict(record.metadata)) if record.metadata else None,
        None if selection is None else _json(selection),
        _tree_json(record.spans) if record.spans else None,
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
    """The record stored as ``row`` (a row of :data:`COLUMNS`), with its ``feedback``."""
    r = dict(zip(COLUMNS, row, strict=True))
    method = r["verification_method"]
    verification = (
        None
        if method is None
        else VerificationResults(
            method_used=method,
            passed=None if r["passed"] is None else bool(r["passed"]),
            confidence=r["confidence"],
            details=_load(r["verification_details"]) if r["verification_details"] else {},
        )
    )
    output = r["output"]
    return ExecutionRecord(
        execution_id=r["execution_id"],
        task_id=r["task_id"],
        task_version=r["task_version"],
        input=_load(r["input"]),
        output=None if output is None else _load(output),
        models_used=tuple(_load(r["models_used"])),
        verification_results=verification,
        performance=Performance(r["execution_time"], r["tokens_used"], r["cost"]),
        timestamp=r["timestamp"],
        feedback=feedback,
        prompt_variant=r["prompt_variant"],
        attempts=r["attempts"],
        error=(
            None
            if r["error_type"] is None
            else ErrorInfo(r["error_type"], r["error_message"] or "")
        ),
        status=r["status"],
        cache_hit=bool(r["cache_hit"]),
        fallback=r["fallback"],
        trace_id=r["trace_id"],
        prompt=r["prompt"],
        system_prompt=r["system_prompt"],
        queue_wait_ms=r["queue_wait_ms"],
        batch_id=r["batch_id"],
        batch_custom_id=r["batch_custom_id"],
        session_id=r["session_id"],
        user_id=r["user_id"],
        tags=tuple(_load(r["tags"])) if r["tags"] else (),
        metadata=_load(r["metadata"]) if r["metadata"] else {},
        selection=_load(r["selection"]) if r["selection"] else None,
        spans=tuple(_load(r["spans"])) if r["spans"] else (),
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


def query_sql(
    select: str,
    placeholder: str,
    *,
    task_id: str | None,
    since: datetime | None,
    until: datetime | None,
    version: str | None,
    limit: int | None,
    newest_first: bool,
) -> tuple[str, list[Any]]:
    """The statement and arguments of an execution-log query, for either backend's
    ``placeholder`` (``?`` or ``%s``): every given filter, by timestamp; ``until`` exclusive."""
    where: list[str] = []
    args: list[Any] = []
    for clause, value in (
        ("task_id = {}", task_id),
        ("task_version = {}", version),
        ("timestamp >= {}", None if since is None else format_timestamp(since)),
        ("timestamp < {}", None if until is None else format_timestamp(until)),
    ):
        if value is not None:
            where.append(clause.format(placeholder))
            args.append(value)
    sql = select + (f" WHERE {' AND '.join(where)}" if where else "")
    sql += " ORDER BY timestamp DESC" if newest_first else " ORDER BY timestamp"
    if limit is not None:
        sql += f" LIMIT {placeholder}"
        args.append(limit)
    return sql, args
