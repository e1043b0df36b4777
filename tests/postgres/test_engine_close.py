"""Issue 14: ``Engine.aclose`` closes the live rankings and the rollout router it opened.

On PostgreSQL each holds a connection (the rankings checked in a background thread); after the
engine closes, the database has no connection left from it and no rankings check thread runs.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import psycopg

from tests.engine.conftest import MODELS, ScriptedModels, catalog_data, make_task, reply
from tlm.catalog import Catalog
from tlm.definition.registry import DefinitionRegistry
from tlm.engine import Engine, EngineConfig
from tlm.learn.live import LiveEstimates

TASK = "title_extraction"


def _backends(url: str) -> list[str]:
    """The queries of the other connections to ``url``'s database."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT query FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    return [str(row[0]) for row in rows]


def _backends_once_gone(url: str, within_s: float = 5.0) -> list[str]:
    """``_backends`` once the closed ones are gone: a server process leaves ``pg_stat_activity``
    a moment after its client closed the connection, not at once."""
    deadline = time.monotonic() + within_s
    while (left := _backends(url)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def _rankings_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "tlm-rankings" and t.is_alive()]


async def test_aclose_leaves_no_connection_and_no_rankings_thread(
    pg_url: str, tmp_path: Path
) -> None:
    models = ScriptedModels()
    models.handlers["*"] = reply({"title": "Chef"})
    engine = Engine(
        EngineConfig(
            data_dir=tmp_path / "data",
            models=MODELS,
            database=pg_url,
            env={**os.environ, "TLM_RANKINGS_REFRESH_S": "0.01"},
        ),
        registry=DefinitionRegistry((make_task(),)),
        catalog=Catalog.from_data(catalog_data()),
        providers=dict.fromkeys(MODELS, models),
    )
    async with engine:
        for index in range(5):  # each selection may start a rankings check in its thread
            await engine.execute(TASK, {"posting": f"Chef wanted {index}"})
        live = engine._estimates
        assert isinstance(live, LiveEstimates)
        rollouts = engine.rollouts
        assert rollouts is not None
        assert rollouts._store is not None  # the router read the database's rollouts
        assert _backends(pg_url)  # the engine's connections, rankings and rollouts among them
    assert _backends_once_gone(pg_url) == []
    assert _rankings_threads() == []
    assert rollouts._store is None
    # closed rankings are not checked any more, and keep what they had
    assert not live
    assert live(TASK) == {}
    assert _backends(pg_url) == []
