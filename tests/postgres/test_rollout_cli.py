"""Replay → canary → promotion → pin with the ``tlm`` commands, every bit of state in PostgreSQL:
the history, the evaluation run, the rollout and its decisions, read by the service's engines
through the shared database (nothing in the data directory's SQLite files)."""

from __future__ import annotations

from pathlib import Path

from tests.rollout.test_cli import replay_canary_promotion


def test_replay_then_canary_then_promotion_on_postgres(pg_url: str, tmp_path: Path) -> None:
    replay_canary_promotion(tmp_path, {"TLM_DATABASE_URL": pg_url})
    for name in ("tlm.db", "rollouts.db", "reviews.db"):
        assert not (tmp_path / ".tlm" / name).exists(), name
