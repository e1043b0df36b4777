"""The console's read queries on the shared PostgreSQL database: every replica's executions.

:class:`PostgresExecutionQueries` answers what :class:`~tlm.ui.queries.ExecutionQueries` answers
on ``tlm.db`` — keyset pages with the same filters (the same statements, rewritten for
PostgreSQL by :class:`~tlm.store.pg_repo.PgStatements`), task summaries, the models seen, and
``tlm analyze``'s figures — from the database every replica records into. The figures are
:func:`tlm.learn.analysis.analyze` of the period's records, kept while a cheap signature of the
period (count, summed latency and verdicts of its rows; count and newest id of the feedback) is
unchanged. The indexes the pages need are a versioned schema of their own
(:data:`PG_CONSOLE_SCHEMA`, migrated on open and by ``tlm db upgrade``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final

import psycopg

from tlm.errors import StoreError
from tlm.learn.analysis import Analysis, analyze
from tlm.store import pg_base
from tlm.store.backend import redact_url
from tlm.store.base import ExecutionLog
from tlm.store.pg_repo import PgStatements
from tlm.store.pg_schema import PG_EXECUTIONS
from tlm.store.shared_schemas import PG_CONSOLE_SCHEMA
from tlm.telemetry.records import parse_timestamp
from tlm.ui.queries import FIGURES_KEPT, ExecutionQueries, TaskSummary

__all__ = ("PG_CONSOLE_SCHEMA", "PostgresExecutionQueries")

_RENAMES: Final = {"instr": "strpos"}


class PostgresExecutionQueries(ExecutionQueries):
    """Read queries on PostgreSQL; thread-safe (one connection behind a lock).

    Args:
        url: The database (``postgresql://...``; the password is never shown).
        store: The execution log on the same database (records for the analysis figures).

    Raises:
        StoreError: The database cannot be reached or migrated.
    """

    warms_up = False

    def __init__(self, url: str, store: ExecutionLog) -> None:
        self.url = url
        self.path = None  # type: ignore[assignment]
        self._store = store
        try:
            conn = psycopg.connect(url, autocommit=True, connect_timeout=10)
            try:
                pg_base.migrate(conn, (PG_EXECUTIONS, PG_CONSOLE_SCHEMA), self.where)
            except BaseException:
                conn.close()
                raise
        except psycopg.Error as exc:
            raise StoreError(f"{self.where}: cannot open for reading: {exc}") from exc
        self._pg = conn
        self._lock = threading.Lock()
        self._warming = None
        self._figures_pg: dict[tuple[str, str | None, str | None], tuple[Any, Analysis]] = {}

    @property
    def where(self) -> str:
        """The database, password masked."""
        return redact_url(self.url)

    @contextmanager
    def _cursor(self) -> Iterator[Any]:
        with self._lock:
            try:
                if self._pg.closed or self._pg.broken:
                    self._pg = psycopg.connect(self.url, autocommit=True, connect_timeout=10)
                yield PgStatements(self._pg, _RENAMES)
            except psycopg.Error as exc:
                raise StoreError(f"{self.where}: read failed: {exc}") from exc

    def rows_estimate(self) -> int:
        """About how many executions the database holds (the planner's estimate: no scan)."""
        with self._cursor() as conn:
            row = conn.execute(
                "SELECT reltuples FROM pg_class WHERE oid = to_regclass('executions')"
            ).fetchone()
        return max(int(row[0]), 0) if row is not None and row[0] is not None else 0

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._pg.close()

    def task_summary(self, task_id: str, since: str) -> TaskSummary:
        """Executions of ``task_id`` since ``since`` (ISO UTC): counts and cost."""
        with self._cursor() as conn:
            row = conn.execute(
                "SELECT count(*), count(passed), coalesce(sum(passed), 0),"
                " count(*) FILTER (WHERE status = 'error'), coalesce(sum(cost), 0.0)"
                " FROM executions WHERE task_id = ? AND timestamp >= ?",
                (task_id, since),
            ).fetchone()
        return TaskSummary(int(row[0]), int(row[1]), int(row[2]), int(row[3]), float(row[4]))

    def analysis(self, task_id: str, *, since: str | None, version: str | None = None) -> Analysis:
        """``tlm analyze``'s figures for ``task_id`` since ``since`` (every replica's records),
        kept while the period's signature is unchanged."""
        where, args = "task_id = ?", [task_id]
        if since:
            where, args = where + " AND timestamp >= ?", [*args, since]
        if version:
            where, args = where + " AND task_version = ?", [*args, version]
        with self._cursor() as conn:
            signature = conn.execute(
                "SELECT count(*), max(timestamp), sum(execution_time), count(passed),"
                " sum(passed), (SELECT count(*) FROM feedback), (SELECT max(id) FROM feedback)"
                f" FROM executions WHERE {where}",
                args,
            ).fetchone()
        key = (task_id, since, version)
        kept = self._figures_pg.get(key)
        if kept is not None and kept[0] == signature:
            return kept[1]
        after = None if since is None else parse_timestamp(since)
        records = self._store.iter_query(task_id=task_id, since=after, version=version)
        figures = analyze(records, task_id=task_id, since=after, version=version)
        self._figures_pg[key] = (signature, figures)
        while len(self._figures_pg) > FIGURES_KEPT:
            self._figures_pg.pop(next(iter(self._figures_pg)))
        return figures
