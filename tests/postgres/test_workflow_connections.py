"""An engine writes all its workflow runs to PostgreSQL through one connection, kept until it
closes (it used to open, migrate-check and close a connection per run)."""

from __future__ import annotations

from pathlib import Path

import anyio
import psycopg

from tests.engine.conftest import ScriptedModels, catalog_data
from tests.workflow.conftest import SHOUT, Script, TitleIn, definitions
from tlm.catalog import Catalog
from tlm.definition.registry import DefinitionRegistry
from tlm.engine import Engine, EngineConfig
from tlm.workflow import Workflow, step, task_step
from tlm.workflow.store import open_workflow_store


def _engine(url: str, data_dir: Path) -> Engine:
    return Engine(
        EngineConfig(data_dir=data_dir, models=("model-a",), database=url, cache=False),
        registry=DefinitionRegistry(definitions()),
        catalog=Catalog.from_data(catalog_data(("model-a",))),
        providers={"model-a": ScriptedModels(handlers={"*": Script()})},
    )


def _sessions(observer: psycopg.Connection[tuple[int]]) -> set[int]:
    """Every other session on the test database (backend pids)."""
    rows = observer.execute(
        "SELECT pid FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
    ).fetchall()
    return {row[0] for row in rows}


async def test_an_engine_writes_every_workflow_run_through_one_connection(
    pg_url: str, tmp_path: Path
) -> None:
    flow = Workflow("shout", task_step(SHOUT))
    run_ids: list[str] = []
    with psycopg.connect(pg_url, autocommit=True) as observer:
        async with _engine(pg_url, tmp_path / "data") as engine:
            await engine.execute("t_shout", {"title": "warm"})  # an execution's sessions open
            before = _sessions(observer)
            seen: list[set[int]] = []
            for i in range(5):
                result = await flow.run(engine, {"title": f"lead {i}"})
                run_ids.append(result.run_id)
                seen.append(_sessions(observer) - before)
            # one session more wrote every run, and stays open for the next
            assert len(seen[0]) == 1
            assert seen == [seen[0]] * 5
            assert _sessions(observer) == before | seen[0]
            async with anyio.create_task_group() as group:  # runs at once share it too
                for i in range(5, 10):
                    group.start_soon(flow.run, engine, TitleIn(title=f"lead {i}"))
            assert _sessions(observer) == before | seen[0]

            # the session ends (the server restarted, an administrator ended it): the next run
            # is written through a new connection instead of failing
            (pid,) = seen[0]
            observer.execute("SELECT pg_terminate_backend(%s)", (pid,))
            for _ in range(100):
                if pid not in _sessions(observer):
                    break
                await anyio.sleep(0.05)
            result = await flow.run(engine, {"title": "lead after"})
            run_ids.append(result.run_id)
            after = _sessions(observer) - before
            assert len(after) == 1
            assert after != seen[0]
        for _ in range(100):  # a session ends a moment after its client closed it
            if not _sessions(observer):
                break
            await anyio.sleep(0.05)
        assert _sessions(observer) == set()  # closed with the engine, nothing left behind
    store = open_workflow_store(tmp_path / "other", pg_url)
    try:
        stored = store.list(workflow="shout", limit=100)
    finally:
        store.close()
    assert len(stored) == 11
    assert set(run_ids) <= {run.run_id for run in stored}


async def test_a_run_finished_after_its_engine_closed_is_still_written(
    pg_url: str, tmp_path: Path
) -> None:
    engine = _engine(pg_url, tmp_path / "data")

    async def close_engine(value: TitleIn) -> TitleIn:
        await engine.aclose()  # the engine closes while the run is in flight
        return value

    async with engine:
        result = await Workflow("closing", step(close_engine)).run(engine, {"title": "x"})
    store = open_workflow_store(tmp_path / "other", pg_url)
    try:
        assert store.get(result.run_id).status == "succeeded"
    finally:
        store.close()
