"""The console's read queries on the execution store's file: filtered keyset pages and summaries.

:class:`ExecutionQueries` opens its own read-only-by-habit connection (``query_only``) beside the
store's, adds the indexes these queries need (``IF NOT EXISTS``: additive, idempotent, harmless to
the store's own migrations) and never reads more rows than a page shows. Pages are keyset pages:
newest first by ``(timestamp, execution_id)``, the next page starting after the last row shown,
so page 1,000 costs what page 1 costs.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final, Literal

import attrs

from tlm.errors import StoreError
from tlm.learn.analysis import Analysis
from tlm.ui.daycache import DAY_CACHE_FILE, DayCache
from tlm.ui.figures import (
    ANALYSIS_INDEX,
    FAILURES_INDEX,
    SKIPPED_INDEX,
    compute_analysis,
)

__all__ = ("INDEXES", "ExecutionFilter", "ExecutionRow", "Page", "TaskSummary", "ExecutionQueries")

INDEXES: Final = (
    "CREATE INDEX IF NOT EXISTS executions_time_id ON executions (timestamp, execution_id)",
    ANALYSIS_INDEX,
    SKIPPED_INDEX,
    FAILURES_INDEX,
)
"""Indexes for the console's filters (created on open when missing)."""
FIGURES_KEPT: Final = 64
"""Analyses kept for an unchanged file (task, period start, version)."""
SEARCH_WINDOW: Final = 10_000
"""Executions a text search reads per page at most (the next page goes on from there)."""

Verdict = Literal["", "pass", "fail", "pending", "none"]
FeedbackFilter = Literal["", "any", "none", "correct", "incorrect"]

_ROW_COLUMNS: Final = (
    "execution_id, task_id, task_version, timestamp, status, models_used, verification_method,"
    " passed, execution_time, cost, prompt_variant, error_type"
)


@attrs.frozen
class ExecutionFilter:
    """What the executions list shows; empty strings mean "any"."""

    task: str = ""
    version: str = ""
    model: str = ""
    status: str = ""
    verdict: Verdict = ""
    feedback: FeedbackFilter = ""
    since: str = ""
    """ISO 8601 UTC lower bound (inclusive), as stored."""
    until: str = ""
    """ISO 8601 UTC upper bound (exclusive)."""
    text: str = ""
    """Substring of the input, output, prompt or error message."""

    def where(self) -> tuple[list[str], list[Any]]:
        """The SQL conditions and their arguments."""
        clauses: list[str] = []
        args: list[Any] = []
        if self.task:
            clauses.append("task_id = ?")
            args.append(self.task)
        if self.version:
            clauses.append("task_version = ?")
            args.append(self.version)
        if self.model:
            clauses.append("instr(models_used, ?) > 0")
            args.append(json.dumps(self.model))
        if self.status:
            clauses.append("status = ?")
            args.append(self.status)
        if self.verdict == "pass":
            clauses.append("passed = 1")
        elif self.verdict == "fail":
            clauses.append("passed = 0")
        elif self.verdict == "pending":
            clauses.append("passed IS NULL AND verification_method IS NOT NULL")
        elif self.verdict == "none":
            clauses.append("verification_method IS NULL")
        if self.feedback:
            exists = "EXISTS (SELECT 1 FROM feedback f WHERE f.execution_id = e.execution_id{})"
            if self.feedback == "any":
                clauses.append(exists.format(""))
            elif self.feedback == "none":
                clauses.append("NOT " + exists.format(""))
            else:
                clauses.append(exists.format(" AND f.correct = ?"))
                args.append(1 if self.feedback == "correct" else 0)
        if self.since:
            clauses.append("timestamp >= ?")
            args.append(self.since)
        if self.until:
            clauses.append("timestamp < ?")
            args.append(self.until)
        if self.text:
            clauses.append(
                "(instr(input, ?) > 0 OR instr(coalesce(output, ''), ?) > 0"
                " OR instr(coalesce(error_message, ''), ?) > 0"
                " OR instr(e.execution_id, ?) > 0)"
            )
            args += [self.text] * 4
        return clauses, args


@attrs.frozen
class ExecutionRow:
    """One line of the executions list (no input, output or prompt)."""

    execution_id: str
    task_id: str
    task_version: str
    timestamp: str
    status: str
    models: tuple[str, ...]
    method: str | None
    passed: bool | None
    latency_s: float
    cost_usd: float
    prompt_variant: str | None
    error_type: str | None
    feedback: tuple[tuple[bool | None, float | None], ...] = ()
    """``(correct, score)`` of each feedback given."""

    @property
    def verdict(self) -> str:
        """``pass``, ``fail``, ``pending`` or ``-``."""
        if self.method is None:
            return "-"
        return "pending" if self.passed is None else ("pass" if self.passed else "fail")


@attrs.frozen
class Page:
    """One keyset page of executions, newest first."""

    rows: tuple[ExecutionRow, ...]
    older: str | None
    """The cursor of the next (older) page, or ``None`` at the end."""
    newer: str | None
    """The cursor of the previous (newer) page, or ``None`` at the start."""
    searched_to: str | None = None
    """When a text search stopped at its window before filling the page: the time it reached."""


@attrs.frozen
class TaskSummary:
    """A task's executions since some time: count, verdicts, cost."""

    executions: int
    verified: int
    passed: int
    errors: int
    cost_usd: float

    @property
    def pass_rate(self) -> float | None:
        """Passed over decided verdicts."""
        return self.passed / self.verified if self.verified else None


def encode_cursor(timestamp: str, execution_id: str) -> str:
    """A page boundary as text for a URL."""
    return f"{timestamp}~{execution_id}"


def decode_cursor(cursor: str) -> tuple[str, str] | None:
    """The inverse of :func:`encode_cursor` (``None`` when malformed)."""
    timestamp, sep, execution_id = cursor.partition("~")
    return (timestamp, execution_id) if sep and timestamp and execution_id else None


class ExecutionQueries:
    """Read queries on ``tlm.db``; thread-safe (one connection behind a lock).

    Raises:
        StoreError: the file cannot be opened or read.
    """

    warms_up = True
    """Whether :meth:`warm_up` can fill a day cache (the SQLite file's)."""

    def __init__(self, path: str | Path, *, keep_days: bool = True) -> None:
        self.path = Path(path)
        try:
            conn = sqlite3.connect(self.path, check_same_thread=False, timeout=30.0)
            for statement in INDEXES:
                conn.execute(statement)
            conn.commit()
            conn.execute("PRAGMA query_only=ON")
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot open for reading: {exc}") from exc
        self._conn = conn
        self._lock = threading.Lock()
        self._days = DayCache(self.path.parent / DAY_CACHE_FILE if keep_days else None)
        self._warming: subprocess.Popen[bytes] | None = None
        self._figures: dict[tuple[str, str | None, str | None], tuple[int, Analysis]] = {}

    @contextmanager
    def _cursor(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                yield self._conn
            except sqlite3.Error as exc:
                raise StoreError(f"{self.path}: read failed: {exc}") from exc

    @property
    def warming(self) -> subprocess.Popen[bytes] | None:
        """The warm-up process started by :meth:`warm_up` (``None`` if none was)."""
        return self._warming

    def rows_estimate(self) -> int:
        """About how many executions the file holds (the greatest rowid: no scan)."""
        with self._cursor() as conn:
            return int(conn.execute("SELECT coalesce(max(rowid), 0) FROM executions").fetchone()[0])

    def warm_up(self, task_ids: Sequence[str]) -> subprocess.Popen[bytes]:
        """Start summing every day of each task into the day cache file in a low-priority child
        process (:mod:`tlm.ui.warmup`), so that a first analysis page reads the past days
        instead of summing them; :meth:`close` stops it."""
        from tlm.ui import warmup

        self._warming = warmup.start(self.path, task_ids)
        return self._warming

    def close(self) -> None:
        """Stop the warm-up and close the connections."""
        if self._warming is not None:
            if self._warming.poll() is None:
                self._warming.terminate()
            self._warming.wait()
        with self._lock:
            self._conn.close()
            self._days.close()

    def page(
        self,
        flt: ExecutionFilter,
        *,
        size: int = 50,
        after: str | None = None,
        before: str | None = None,
        search_window: int = SEARCH_WINDOW,
    ) -> Page:
        """Up to ``size`` rows matching ``flt``, older than ``after`` or newer than ``before``.

        A text search reads at most ``search_window`` executions (those matching the other
        filters) per page; when it finds fewer than ``size`` in them, the page says how far it
        searched and its older (newer) cursor continues from there.
        """
        clauses, args = flt.where()
        boundary = decode_cursor(after or before or "")
        forward = before is None or boundary is None
        order = "DESC" if forward else "ASC"
        with self._cursor() as conn:
            window = None
            if flt.text:
                window = self._window(conn, flt, boundary, forward, search_window)
            if boundary is not None:
                clauses.append(
                    "(timestamp, e.execution_id) " + ("< (?, ?)" if forward else "> (?, ?)")
                )
                args += list(boundary)
            if window is not None:
                clauses.append(
                    "(timestamp, e.execution_id) " + (">= (?, ?)" if forward else "<= (?, ?)")
                )
                args += list(window)
            sql = (
                f"SELECT {_ROW_COLUMNS} FROM executions e"
                + (f" WHERE {' AND '.join(clauses)}" if clauses else "")
                + f" ORDER BY timestamp {order}, e.execution_id {order} LIMIT ?"
            )
            raw = conn.execute(sql, [*args, size + 1]).fetchall()
            more = len(raw) > size
            raw = raw[:size]
            if not forward:
                raw.reverse()
            feedback = self._feedback([r[0] for r in raw], conn)
        rows = tuple(_row(r, feedback.get(r[0], ())) for r in raw)
        # a text search whose window ended the page (not the data): go on from the window's end
        cut = window if window is not None and not more else None
        resume = encode_cursor(*cut) if cut is not None else None
        if not rows:
            if resume is None or cut is None:
                return Page((), None, None)
            return Page((), resume if forward else None, None if forward else resume, cut[0])
        first, last = rows[0], rows[-1]
        older: str | None = encode_cursor(last.timestamp, last.execution_id)
        newer: str | None = encode_cursor(first.timestamp, first.execution_id)
        if forward and not more:
            older = None
        if (boundary is None) if forward else not more:
            newer = None
        if resume is not None:
            older, newer = (resume, newer) if forward else (older, resume)
        return Page(rows, older, newer, cut[0] if cut is not None else None)

    def _window(
        self,
        conn: sqlite3.Connection,
        flt: ExecutionFilter,
        boundary: tuple[str, str] | None,
        forward: bool,
        limit: int,
    ) -> tuple[str, str] | None:
        """The last of the next ``limit`` executions matching ``flt`` but its text (``None``:
        fewer remain)."""
        clauses, args = attrs.evolve(flt, text="").where()
        if boundary is not None:
            clauses.append("(timestamp, e.execution_id) " + ("< (?, ?)" if forward else "> (?, ?)"))
            args += list(boundary)
        order = "DESC" if forward else "ASC"
        row = conn.execute(
            "SELECT timestamp, e.execution_id FROM executions e"
            + (f" WHERE {' AND '.join(clauses)}" if clauses else "")
            + f" ORDER BY timestamp {order}, e.execution_id {order} LIMIT 1 OFFSET ?",
            [*args, limit - 1],
        ).fetchone()
        return None if row is None else (row[0], row[1])

    def _feedback(
        self, ids: Sequence[str], conn: sqlite3.Connection
    ) -> dict[str, tuple[tuple[bool | None, float | None], ...]]:
        if not ids:
            return {}
        found: dict[str, list[tuple[bool | None, float | None]]] = {}
        marks = ", ".join("?" * len(ids))
        for execution_id, correct, score in conn.execute(
            f"SELECT execution_id, correct, score FROM feedback WHERE execution_id IN ({marks})"
            " ORDER BY id",
            list(ids),
        ):
            found.setdefault(execution_id, []).append(
                (None if correct is None else bool(correct), score)
            )
        return {k: tuple(v) for k, v in found.items()}

    def task_summary(self, task_id: str, since: str) -> TaskSummary:
        """Executions of ``task_id`` since ``since`` (ISO UTC): counts and cost (covering index)."""
        with self._cursor() as conn:
            row = conn.execute(
                "SELECT count(*), count(passed), coalesce(sum(passed), 0),"
                " coalesce(sum(status = 'error'), 0), coalesce(sum(cost), 0.0)"
                " FROM executions INDEXED BY executions_analysis"
                " WHERE task_id = ? AND timestamp >= ?",
                (task_id, since),
            ).fetchone()
        return TaskSummary(int(row[0]), int(row[1]), int(row[2]), int(row[3]), float(row[4]))

    def distinct_models(self, limit: int = 50) -> tuple[str, ...]:
        """Models seen in the newest executions (for the filter's choices)."""
        with self._cursor() as conn:
            rows = conn.execute(
                "SELECT models_used FROM executions ORDER BY timestamp DESC LIMIT 2000"
            ).fetchall()
        seen: dict[str, None] = {}
        for (models,) in rows:
            for model in json.loads(models):
                seen.setdefault(str(model), None)
        return tuple(sorted(seen))[:limit]

    def analysis(self, task_id: str, *, since: str | None, version: str | None = None) -> Analysis:
        """``tlm analyze``'s figures for ``task_id`` since ``since`` (see :mod:`tlm.ui.figures`).

        The figures are kept while the file is unchanged (``PRAGMA data_version``: any commit
        by another connection, a record or feedback, changes it); otherwise the days come from
        the day cache while their rows are unchanged.
        """
        key = (task_id, since, version)
        with self._cursor() as conn:
            state = conn.execute("PRAGMA data_version").fetchone()[0]
            kept = self._figures.get(key)
            if kept is not None and kept[0] == state:
                return kept[1]
            figures = compute_analysis(
                conn, task_id, since=since, version=version, cache=self._days
            )
            self._figures[key] = (state, figures)
            while len(self._figures) > FIGURES_KEPT:
                self._figures.pop(next(iter(self._figures)))
            return figures


def _row(
    raw: Sequence[Any], feedback: tuple[tuple[bool | None, float | None], ...]
) -> ExecutionRow:
    (eid, task, version, ts, status, models, method, passed, latency, cost, variant, err) = raw
    return ExecutionRow(
        execution_id=eid,
        task_id=task,
        task_version=version,
        timestamp=ts,
        status=status,
        models=tuple(json.loads(models)),
        method=method,
        passed=None if passed is None else bool(passed),
        latency_s=latency,
        cost_usd=cost,
        prompt_variant=variant,
        error_type=err,
        feedback=feedback,
    )
