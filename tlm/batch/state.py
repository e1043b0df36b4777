"""Where a provider batch stands, in SQLite, so a crash or a reboot loses nothing.

``<data_dir>/batches.db`` holds one row per run (task, files, budget, progress in the output
file), one per input line (its execution id, which provider batch and custom id it is in, its
result once downloaded) and one per provider batch submitted. Every change is one short
transaction, so the file is always a consistent picture: ``tlm batch --resume`` starts from it.
The file is opened and migrated by :mod:`tlm.store.sqlite_base` like every TLM file (schema:
:data:`tlm.store.batch_schema.BATCH_SQLITE`).

An input line moves ``pending`` → ``submitted`` → ``answered`` → ``done``; a line that needs no
provider batch (invalid input, a cache hit) is ``direct`` → ``done``. Expired, cancelled and
retryable failures go back to ``pending`` (``resubmits`` counts them).
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal

import attrs

from tlm.errors import StoreError
from tlm.store.batch_schema import BATCH_FILE, BATCH_SQLITE
from tlm.store.sqlite_base import immediate, open_database

__all__ = ("BatchState", "Run", "Item", "Submission", "ItemState", "MIGRATIONS", "DB_NAME")

DB_NAME: Final = BATCH_FILE
ItemState = Literal["pending", "submitted", "answered", "direct", "done"]

MIGRATIONS: Final = BATCH_SQLITE.steps


@attrs.frozen
class Run:
    """One ``tlm batch`` run."""

    run_id: str
    task_id: str
    task_version: str
    input_path: str
    output_path: str
    options: dict[str, Any]
    max_cost: float | None
    status: str
    """``running``, ``cancelled`` (no more resubmissions) or ``done``."""
    output_offset: int
    """Bytes of the output file that are committed (a resume truncates the rest)."""
    created_at: str


@attrs.frozen
class Item:
    """One input line of a run."""

    line: int
    execution_id: str
    input: str
    """The input line's text, as read."""
    model: str | None
    request_sha: str | None
    estimate: float
    state: ItemState
    submission_id: str | None
    custom_id: str | None
    result: Any
    resubmits: int


@attrs.frozen
class Submission:
    """One provider batch."""

    submission_id: str
    run_id: str
    model: str
    input_file_id: str | None
    status: str
    """``open`` until its results are collected, then ``collected``; ``cancelled`` once asked to."""
    requests: int


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_ITEM_COLUMNS: Final = (
    "line, execution_id, input, model, request_sha, estimate, state, submission_id, custom_id, "
    "result, resubmits"
)


def _item(row: Sequence[Any]) -> Item:
    values = list(row)
    values[9] = None if values[9] is None else json.loads(values[9])
    return Item(*values)


class BatchState:
    """The batch repository: one SQLite file (WAL), used from one thread at a time.

    Raises:
        StoreError: the file cannot be opened, migrated, read or written.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._conn = open_database(self.path, BATCH_SQLITE, what="the batch state")

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        try:
            with immediate(self._conn) as conn:
                yield conn
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: {exc}") from exc

    def _query(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        try:
            return self._conn.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: {exc}") from exc

    # -- runs ------------------------------------------------------------------------------

    def create_run(
        self,
        run_id: str,
        *,
        task_id: str,
        task_version: str,
        input_path: str,
        output_path: str,
        options: dict[str, Any],
        max_cost: float | None,
    ) -> Run:
        """Start a run (status ``planning`` until :meth:`set_run_status`)."""
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO runs (run_id, task_id, task_version, input_path, output_path, "
                "options, max_cost, status, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    task_id,
                    task_version,
                    input_path,
                    output_path,
                    json.dumps(options),
                    max_cost,
                    "planning",
                    _now(),
                ),
            )
        return self.run(run_id)

    def run(self, run_id: str) -> Run:
        """The run ``run_id``.

        Raises:
            StoreError: no such run (the message lists the known ones).
        """
        rows = self._query(
            "SELECT run_id, task_id, task_version, input_path, output_path, options, max_cost, "
            "status, output_offset, created_at FROM runs WHERE run_id = ?",
            (run_id,),
        )
        if not rows:
            known = ", ".join(r.run_id for r in self.runs()) or "none"
            raise StoreError(f"{self.path}: no batch run {run_id!r} (known: {known})")
        values = list(rows[0])
        values[5] = json.loads(values[5])
        return Run(*values)

    def runs(self) -> list[Run]:
        """Every run, newest first."""
        ids = self._query("SELECT run_id FROM runs ORDER BY created_at DESC")
        return [self.run(row[0]) for row in ids]

    def latest_unfinished(self) -> Run | None:
        """The newest run that is not done, if any."""
        for run in self.runs():
            if run.status not in ("done", "refused"):
                return run
        return None

    def set_run_status(self, run_id: str, status: str) -> None:
        """Set a run's status."""
        with self._transaction() as conn:
            conn.execute("UPDATE runs SET status = ? WHERE run_id = ?", (status, run_id))

    # -- items -----------------------------------------------------------------------------

    def add_items(self, run_id: str, items: Iterable[Item]) -> None:
        """Insert planned items (in one transaction)."""
        rows = [
            (
                run_id,
                i.line,
                i.execution_id,
                i.input,
                i.model,
                i.request_sha,
                i.estimate,
                i.state,
                i.resubmits,
            )
            for i in items
        ]
        with self._transaction() as conn:
            conn.executemany(
                "INSERT INTO items (run_id, line, execution_id, input, model, request_sha, "
                "estimate, state, resubmits) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )

    def items(
        self,
        run_id: str,
        state: ItemState,
        *,
        model: str | None = None,
        after_line: int = 0,
        limit: int = 500,
    ) -> list[Item]:
        """Up to ``limit`` items in ``state`` after line ``after_line``, in line order."""
        sql = f"SELECT {_ITEM_COLUMNS} FROM items WHERE run_id = ? AND state = ? AND line > ?"
        args: list[Any] = [run_id, state, after_line]
        if model is not None:
            sql += " AND model = ?"
            args.append(model)
        sql += " ORDER BY line LIMIT ?"
        args.append(limit)
        return [_item(row) for row in self._query(sql, args)]

    def iter_items(
        self, run_id: str, state: ItemState, *, model: str | None = None, chunk: int = 500
    ) -> Iterator[Item]:
        """Every item in ``state``, in line order, read ``chunk`` at a time."""
        after = 0
        while True:
            found = self.items(run_id, state, model=model, after_line=after, limit=chunk)
            yield from found
            if len(found) < chunk:
                return
            after = found[-1].line

    def counts(self, run_id: str) -> dict[str, int]:
        """Items per state."""
        rows = self._query(
            "SELECT state, count(*) FROM items WHERE run_id = ? GROUP BY state", (run_id,)
        )
        return {str(state): int(n) for state, n in rows}

    def pending_models(self, run_id: str) -> list[str]:
        """The models that have pending items."""
        rows = self._query(
            "SELECT DISTINCT model FROM items WHERE run_id = ? AND state = 'pending' "
            "ORDER BY model",
            (run_id,),
        )
        return [str(r[0]) for r in rows]

    def spent_and_reserved(self, run_id: str) -> tuple[float, float]:
        """Cost of the finished items, and worst-case estimates of the unfinished ones."""
        row = self._query(
            "SELECT coalesce(sum(CASE WHEN state = 'done' THEN coalesce(cost, 0) END), 0), "
            "coalesce(sum(CASE WHEN state != 'done' THEN estimate END), 0) "
            "FROM items WHERE run_id = ?",
            (run_id,),
        )[0]
        return float(row[0]), float(row[1])

    def summary(self, run_id: str) -> tuple[int, int, float, float]:
        """Finished items, those not failed, their cost, and the run's worst-case estimate."""
        row = self._query(
            "SELECT coalesce(sum(state = 'done'), 0), "
            "coalesce(sum(state = 'done' AND status != 'failed'), 0), "
            "coalesce(sum(CASE WHEN state = 'done' THEN cost END), 0), "
            "coalesce(sum(estimate), 0) FROM items WHERE run_id = ?",
            (run_id,),
        )[0]
        return int(row[0]), int(row[1]), float(row[2]), float(row[3])

    def resubmits(self, run_id: str, lines: Sequence[int]) -> dict[int, int]:
        """How often each of ``lines`` was resubmitted."""
        found: dict[int, int] = {}
        for start in range(0, len(lines), 500):
            chunk = list(lines[start : start + 500])
            rows = self._query(
                f"SELECT line, resubmits FROM items WHERE run_id = ? "
                f"AND line IN ({', '.join('?' * len(chunk))})",
                [run_id, *chunk],
            )
            found.update({int(line): int(n) for line, n in rows})
        return found

    def delete_items(self, run_id: str) -> None:
        """Forget a run's items (a refused run, or a plan to be redone)."""
        with self._transaction() as conn:
            conn.execute("DELETE FROM items WHERE run_id = ?", (run_id,))

    def make_direct(self, run_id: str, line: int) -> None:
        """An item that no longer needs a provider batch (it became a cache hit, or invalid)."""
        with self._transaction() as conn:
            conn.execute(
                "UPDATE items SET state = 'direct', model = NULL WHERE run_id = ? AND line = ?",
                (run_id, line),
            )

    def submitted(
        self,
        run_id: str,
        submission: Submission,
        custom_ids: Sequence[tuple[int, str, str | None]],
    ) -> None:
        """Record a provider batch and mark its items ``(line, custom_id, sha)`` submitted."""
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO submissions (submission_id, run_id, model, input_file_id, status, "
                "requests, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    submission.submission_id,
                    run_id,
                    submission.model,
                    submission.input_file_id,
                    submission.status,
                    submission.requests,
                    _now(),
                ),
            )
            conn.executemany(
                "UPDATE items SET state = 'submitted', submission_id = ?, custom_id = ?, "
                "request_sha = coalesce(?, request_sha) WHERE run_id = ? AND line = ?",
                [
                    (submission.submission_id, cid, sha, run_id, line)
                    for line, cid, sha in custom_ids
                ],
            )

    def answer(self, run_id: str, answers: Iterable[tuple[int, Any]]) -> None:
        """Store downloaded results ``(line, result)``; those items become ``answered``."""
        with self._transaction() as conn:
            conn.executemany(
                "UPDATE items SET state = 'answered', result = ? WHERE run_id = ? AND line = ?",
                [(json.dumps(result), run_id, line) for line, result in answers],
            )

    def requeue(self, run_id: str, lines: Iterable[int]) -> None:
        """Put items back to ``pending`` for resubmission (counting it)."""
        with self._transaction() as conn:
            conn.executemany(
                "UPDATE items SET state = 'pending', submission_id = NULL, custom_id = NULL, "
                "resubmits = resubmits + 1 WHERE run_id = ? AND line = ?",
                [(run_id, line) for line in lines],
            )

    def finish_items(
        self, run_id: str, done: Iterable[tuple[int, float, str]], output_offset: int
    ) -> None:
        """Mark items ``(line, cost, status)`` done and commit the output file's new length."""
        with self._transaction() as conn:
            conn.executemany(
                "UPDATE items SET state = 'done', cost = ?, status = ?, result = NULL "
                "WHERE run_id = ? AND line = ?",
                [(cost, status, run_id, line) for line, cost, status in done],
            )
            conn.execute(
                "UPDATE runs SET output_offset = ? WHERE run_id = ?", (output_offset, run_id)
            )

    # -- submissions -----------------------------------------------------------------------

    def submissions(self, run_id: str, *, status: str | None = None) -> list[Submission]:
        """The run's provider batches (with ``status`` when given), oldest first."""
        sql = (
            "SELECT submission_id, run_id, model, input_file_id, status, requests "
            "FROM submissions WHERE run_id = ?"
        )
        args: list[Any] = [run_id]
        if status is not None:
            sql += " AND status = ?"
            args.append(status)
        return [Submission(*row) for row in self._query(sql + " ORDER BY created_at", args)]

    def set_submission_status(self, submission_id: str, status: str) -> None:
        """Set a provider batch's status."""
        with self._transaction() as conn:
            conn.execute(
                "UPDATE submissions SET status = ? WHERE submission_id = ?",
                (status, submission_id),
            )

    def still_submitted(self, submission_id: str) -> list[Item]:
        """Items of ``submission_id`` that are still waiting for a result."""
        rows = self._query(
            f"SELECT {_ITEM_COLUMNS} FROM items WHERE submission_id = ? AND state = 'submitted'",
            (submission_id,),
        )
        return [_item(row) for row in rows]

    def close(self) -> None:
        """Close the file."""
        self._conn.close()

    def __enter__(self) -> BatchState:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
