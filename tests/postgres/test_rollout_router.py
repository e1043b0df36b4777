"""The engine's rollout router on PostgreSQL: a canary started from one host routes every
replica's traffic, and a database outage keeps the last state instead of failing executions."""

from __future__ import annotations

from pathlib import Path

import pytest

from tlm.errors import StoreError
from tlm.rollout.repository import open_rollouts
from tlm.rollout.router import RolloutRouter, bucket_of
from tlm.testing.postgres_server import PostgresServer


async def test_a_canary_started_elsewhere_routes_this_replica(pg_url: str, tmp_path: Path) -> None:
    operator = open_rollouts(tmp_path / "operator", pg_url)
    router = RolloutRouter(
        tmp_path / "replica", executions=None, has_version=lambda t, v: True, database=pg_url
    )
    assert await router.version_for("t", {"i": 0}) is None  # no rollout yet
    rollout = operator.start("t", "1.0.0", "2.0.0", 0.5, {})
    await router.refresh(force=True)
    inputs = [{"i": i} for i in range(40)]
    chosen = [await router.version_for("t", x) for x in inputs]
    assert chosen == ["2.0.0" if bucket_of(rollout.id, x) < 0.5 else "1.0.0" for x in inputs]
    assert set(chosen) == {"1.0.0", "2.0.0"}
    assert operator.decide(rollout.id, "rollback", "worse", {})
    await router.refresh(force=True)
    assert {await router.version_for("t", x) for x in inputs} == {"1.0.0"}
    assert not (tmp_path / "replica" / "rollouts.db").exists()
    router.close()
    operator.close()


async def test_an_unreachable_database_keeps_the_last_rollout_state(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    url = postgres_server.create_database()
    operator = open_rollouts(tmp_path, url)
    operator.pin("t", "1.1.0", "1.0.0")
    operator.close()
    router = RolloutRouter(tmp_path, executions=None, has_version=lambda t, v: True, database=url)
    assert await router.version_for("t", {"i": 1}) == "1.1.0"
    router.close()  # the next read needs a new connection ...
    broken = RolloutRouter(
        tmp_path, executions=None, has_version=lambda t, v: True,
        database=url.rsplit("/", 1)[0] + "/no_such_database",
    )  # fmt: skip
    with pytest.raises(StoreError, match="no_such_database"):  # never read: nothing to keep
        await broken.version_for("t", {"i": 1})
    kept = RolloutRouter(tmp_path, executions=None, has_version=lambda t, v: True, database=url)
    assert await kept.version_for("t", {"i": 1}) == "1.1.0"
    store = kept._store
    assert store is not None
    store._db.url = url.rsplit("/", 1)[0] + "/no_such_database"  # type: ignore[attr-defined]
    store._db.close()  # type: ignore[attr-defined]
    await kept.refresh(force=True)  # logged, not raised
    assert await kept.version_for("t", {"i": 1}) == "1.1.0"
    kept.close()
