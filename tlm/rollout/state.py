"""Rollout and replay-evaluation state, shared by every process on the data directory.

One SQLite file (``<data_dir>/rollouts.db``, WAL) holds the canary rollouts of each task, every
decision taken about them with its evidence, and the replay-evaluation runs with one row per
input. Decisions are compare-and-set transitions (``running`` → ``promoted``/``rolled_back``/
``aborted``), so when several replicas evaluate the same rollout at once exactly one decision
lands. Calls are synchronous and short; async callers run them in a worker thread.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from tlm.errors import StoreError
from tlm.rollout.records import Decision, EvalItem, EvalRun, Rollout, RolloutState
from tlm.store import sqlite_base
from tlm.store.rollout_schema import ROLLOUTS_FILE, ROLLOUTS_SCHEMA

__all__ = (
    "ROLLOUTS_FILE",
    "RolloutState",
    "Rollout",
    "Decision",
    "EvalRun",
    "EvalItem",
    "RolloutStore",
    "ROLLOUTS_SCHEMA",
)


def _dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


class RolloutStore:
    """Rollouts, their decisions and replay evaluations in one SQLite file.

    Raises:
        StoreError: the file cannot be opened or written, or was written by a newer TLM.
    """

    def __init__(self, path: str | Path, *, clock: Any = time.time) -> None:
        self.path = Path(path)
        self._clock = clock
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot open the rollout store {self.path}: {exc}") from exc
        self._migrate()

    @classmethod
    def in_data_dir(cls, data_dir: str | Path) -> RolloutStore:
        """The store at ``<data_dir>/rollouts.db``."""
        return cls(Path(data_dir) / ROLLOUTS_FILE)

    @contextmanager
    def _connect(self) -> Iterator[Any]:
        conn = sqlite_base.connect(self.path, foreign_keys=False, what="the rollout store")
        conn.row_factory = sqlite3.Row
        try:
            yield conn
        except sqlite3.Error as exc:
            raise StoreError(f"rollout store {self.path}: {exc}") from exc
        finally:
            conn.close()

    @contextmanager
    def _transaction(self) -> Iterator[Any]:
        with self._connect() as conn, sqlite_base.immediate(conn):
            yield conn

    def close(self) -> None:
        """Nothing to release (each call opens and closes its own connection)."""

    def _migrate(self) -> None:
        with self._connect() as conn:
            sqlite_base.migrate(conn, ROLLOUTS_SCHEMA, f"the rollout store {self.path}")

    # --- rollouts ------------------------------------------------------------------------------

    def start(
        self,
        task_id: str,
        current_version: str,
        new_version: str,
        share: float,
        policy: Mapping[str, Any],
        *,
        actor: str = "cli",
    ) -> Rollout:
        """Start a canary; refused while another rollout of the task is running."""
        if not 0.0 < share < 1.0:
            raise ValueError(f"share must be between 0 and 1 (exclusive), not {share!r}")
        if current_version == new_version:
            raise ValueError(f"the new version {new_version} is already the current one")
        now = float(self._clock())
        rollout = Rollout(
            id=uuid.uuid4().hex,
            task_id=task_id,
            current_version=current_version,
            new_version=new_version,
            share=share,
            state="running",
            policy=dict(policy),
            started_at=now,
        )
        with self._transaction() as conn:
            running = conn.execute(
                "SELECT id, new_version FROM rollouts WHERE task_id = ? AND state = 'running'",
                (task_id,),
            ).fetchone()
            if running is not None:
                raise StoreError(
                    f"a rollout of {task_id}@{running['new_version']} is already running "
                    f"({running['id'][:8]}); abort it first"
                )
            conn.execute(
                "INSERT INTO rollouts VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL)",
                (
                    rollout.id,
                    task_id,
                    current_version,
                    new_version,
                    share,
                    "running",
                    _dump(rollout.policy),
                    now,
                ),
            )
            self._add_decision(
                conn, rollout.id, now, "start", f"{share:.0%} of inputs to {new_version}", {}, actor
            )
        return rollout

    def pin(self, task_id: str, version: str, current_version: str, *, actor: str = "cli") -> None:
        """Make ``version`` the live version of ``task_id`` (ends a running rollout)."""
        now = float(self._clock())
        with self._transaction() as conn:
            running = conn.execute(
                "SELECT id FROM rollouts WHERE task_id = ? AND state = 'running'", (task_id,)
            ).fetchone()
            if running is not None:
                conn.execute(
                    "UPDATE rollouts SET state = 'aborted', ended_at = ? WHERE id = ?",
                    (now, running["id"]),
                )
                self._add_decision(
                    conn, running["id"], now, "abort", f"pinned to {version}", {}, actor
                )
            rollout_id = uuid.uuid4().hex
            conn.execute(
                "INSERT INTO rollouts VALUES (?, ?, ?, ?, 0, 'pinned', '{}', ?, ?)",
                (rollout_id, task_id, current_version, version, now, now),
            )
            self._add_decision(conn, rollout_id, now, "pin", f"pinned to {version}", {}, actor)

    def decide(
        self,
        rollout_id: str,
        action: Literal["promote", "rollback", "abort", "hold"],
        reason: str,
        evidence: Mapping[str, Any],
        *,
        actor: str = "auto",
    ) -> bool:
        """Record a decision; ends the rollout unless ``hold``.

        Returns whether it took effect: ``False`` when the rollout had already ended (another
        replica decided first).
        """
        now = float(self._clock())
        state = {"promote": "promoted", "rollback": "rolled_back", "abort": "aborted"}.get(action)
        with self._transaction() as conn:
            row = conn.execute("SELECT state FROM rollouts WHERE id = ?", (rollout_id,)).fetchone()
            if row is None:
                raise StoreError(f"no rollout with id {rollout_id!r}")
            if row["state"] != "running":
                return False
            if state is not None:
                conn.execute(
                    "UPDATE rollouts SET state = ?, ended_at = ? WHERE id = ?",
                    (state, now, rollout_id),
                )
            self._add_decision(conn, rollout_id, now, action, reason, evidence, actor)
        return True

    @staticmethod
    def _add_decision(
        conn: Any,
        rollout_id: str,
        at: float,
        action: str,
        reason: str,
        evidence: Mapping[str, Any],
        actor: str,
    ) -> None:
        conn.execute(
            "INSERT INTO decisions (rollout_id, at, action, reason, evidence, actor) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (rollout_id, at, action, reason, _dump(dict(evidence)), actor),
        )

    def latest(self, task_id: str) -> Rollout | None:
        """The task's newest rollout or pin, running or ended; ``None`` if it never had one."""
        with self._connect() as conn:
            row = conn.execute(
                "SELECT * FROM rollouts WHERE task_id = ? ORDER BY started_at DESC, rowid DESC "
                "LIMIT 1",
                (task_id,),
            ).fetchone()
        return None if row is None else _rollout(row)

    def all_latest(self) -> dict[str, Rollout]:
        """Every task's newest rollout or pin."""
        with self._connect() as conn:
            rows = conn.execute("SELECT * FROM rollouts ORDER BY started_at, rowid").fetchall()
        return {row["task_id"]: _rollout(row) for row in rows}

    def get(self, rollout_id: str) -> Rollout:
        """The rollout whose id is ``rollout_id`` or starts with it (at least 8 characters)."""
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT * FROM rollouts WHERE substr(id, 1, ?) = ?",
                (len(rollout_id), rollout_id),
            ).fetchall()
        if len(rollout_id) < 8 and not any(r["id"] == rollout_id for r in rows):
            raise StoreError(f"rollout id {rollout_id!r} is too short (8 characters at least)")
        if len(rows) != 1:
            found = "no rollout" if not rows else f"{len(rows)} rollouts"
            raise StoreError(f"{found} with id {rollout_id!r}")
        return _rollout(rows[0])

    def decisions(self, rollout_id: str) -> list[Decision]:
        """The decisions about a rollout, oldest first."""
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT * FROM decisions WHERE rollout_id = ? ORDER BY id", (rollout_id,)
            ).fetchall()
        return [
            Decision(
                rollout_id=row["rollout_id"],
                at=row["at"],
                action=row["action"],
                reason=row["reason"],
                evidence=json.loads(row["evidence"]),
                actor=row["actor"],
            )
            for row in rows
        ]

    # --- replay evaluations --------------------------------------------------------------------

    def create_run(
        self,
        task_id: str,
        new_version: str,
        current_version: str,
        settings: Mapping[str, Any],
        items: list[EvalItem],
    ) -> EvalRun:
        """A new evaluation run over ``items`` (their ``status`` and ``outcome`` are ignored)."""
        now = float(self._clock())
        run = EvalRun(
            id=uuid.uuid4().hex,
            task_id=task_id,
            new_version=new_version,
            current_version=current_version,
            created_at=now,
            status="running",
            settings=dict(settings),
            spent_usd=0.0,
        )
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO eval_runs VALUES (?, ?, ?, ?, ?, 'running', ?, 0)",
                (run.id, task_id, new_version, current_version, now, _dump(run.settings)),
            )
            conn.executemany(
                "INSERT INTO eval_items VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', NULL)",
                [
                    (
                        run.id,
                        item.input_hash,
                        position,
                        _dump(item.input),
                        None if item.reference_kind is None else _dump(item.reference),
                        item.reference_kind,
                        None if item.recorded is None else _dump(dict(item.recorded)),
                    )
                    for position, item in enumerate(items)
                ],
            )
        return run

    def run(self, run_id: str) -> EvalRun:
        """The evaluation run whose id is ``run_id`` or starts with it (8 characters at least)."""
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT * FROM eval_runs WHERE substr(id, 1, ?) = ?", (len(run_id), run_id)
            ).fetchall()
        if len(run_id) < 8 and not any(r["id"] == run_id for r in rows):
            raise StoreError(f"evaluation run id {run_id!r} is too short (8 characters at least)")
        if len(rows) != 1:
            found = "no evaluation run" if not rows else f"{len(rows)} evaluation runs"
            raise StoreError(f"{found} with id {run_id!r}")
        row = rows[0]
        return EvalRun(
            id=row["id"],
            task_id=row["task_id"],
            new_version=row["new_version"],
            current_version=row["current_version"],
            created_at=row["created_at"],
            status=row["status"],
            settings=json.loads(row["settings"]),
            spent_usd=row["spent_usd"],
        )

    def runs(self, task_id: str | None = None) -> list[EvalRun]:
        """Evaluation runs, newest first."""
        with self._connect() as conn:
            where, args = ("", ()) if task_id is None else (" WHERE task_id = ?", (task_id,))
            rows = conn.execute(
                f"SELECT id FROM eval_runs{where} ORDER BY created_at DESC", args
            ).fetchall()
        return [self.run(row["id"]) for row in rows]

    def items(self, run_id: str, *, pending_only: bool = False) -> list[EvalItem]:
        """The run's items in order."""
        sql = "SELECT * FROM eval_items WHERE run_id = ?"
        if pending_only:
            sql += " AND status = 'pending'"
        with self._connect() as conn:
            rows = conn.execute(sql + " ORDER BY position", (run_id,)).fetchall()
        return [
            EvalItem(
                input_hash=row["input_hash"],
                position=row["position"],
                input=json.loads(row["input"]),
                reference=None if row["reference"] is None else json.loads(row["reference"]),
                reference_kind=row["reference_kind"],
                recorded=None if row["recorded"] is None else json.loads(row["recorded"]),
                status=row["status"],
                outcome=None if row["outcome"] is None else json.loads(row["outcome"]),
            )
            for row in rows
        ]

    def finish_item(
        self, run_id: str, input_hash: str, outcome: Mapping[str, Any], cost_usd: float
    ) -> None:
        """Store one item's outcome and add what it cost to the run (one transaction)."""
        with self._transaction() as conn:
            conn.execute(
                "UPDATE eval_items SET status = 'done', outcome = ? "
                "WHERE run_id = ? AND input_hash = ?",
                (_dump(dict(outcome)), run_id, input_hash),
            )
            conn.execute(
                "UPDATE eval_runs SET spent_usd = spent_usd + ? WHERE id = ?", (cost_usd, run_id)
            )

    def set_run_status(self, run_id: str, status: str) -> None:
        """Mark a run ``running``, ``stopped`` or ``done``."""
        with self._transaction() as conn:
            conn.execute("UPDATE eval_runs SET status = ? WHERE id = ?", (status, run_id))


def _rollout(row: Any) -> Rollout:
    return Rollout(
        id=row["id"],
        task_id=row["task_id"],
        current_version=row["current_version"],
        new_version=row["new_version"],
        share=row["share"],
        state=row["state"],
        policy=json.loads(row["policy"]),
        started_at=row["started_at"],
        ended_at=row["ended_at"],
    )
