"""The PostgreSQL execution store never blocks an event loop: not with its queue full, not with
the database down or not answering (the twin of ``tests/store/test_backpressure.py``).

The database sits behind :class:`~tests.postgres.proxy.PausableProxy`: ``cut`` is a database
that is down (connections refused while it restarts), ``pause`` one that stops answering.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

import anyio
import anyio.lowlevel
import psycopg
import pytest

from tests.engine.conftest import MODELS, ScriptedModels, catalog_data, make_task, reply
from tests.postgres.proxy import PausableProxy
from tests.postgres.records import make_record
from tests.store.test_backpressure import write_from_a_thread, write_from_the_loop
from tlm.catalog import Catalog
from tlm.definition.registry import DefinitionRegistry
from tlm.engine import Engine, EngineConfig
from tlm.store.postgres import PostgresExecutionStore

OUTAGES = ["cut", "pause"]


def _outage(proxy: PausableProxy, kind: str) -> Callable[[], None]:
    """Start the outage; return what ends it."""
    getattr(proxy, kind)()
    return proxy.resume


def _committed(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM executions").fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.parametrize("kind", OUTAGES)
def test_writes_from_an_event_loop_never_block_while_the_database_is_out(
    pg_url: str, proxy: PausableProxy, tmp_path: Path, kind: str
) -> None:
    store = PostgresExecutionStore(
        proxy.url, data_dir=tmp_path, queue_size=2, batch_size=1, unavailable_timeout_s=60
    )
    end_outage = _outage(proxy, kind)
    release = threading.Timer(10.0, end_outage)  # ends the outage even if we hang
    release.start()
    try:
        # 5x the queue, from the loop's own thread
        took, ticks = write_from_the_loop(store, [make_record(i) for i in range(10)])
        assert took < 5.0  # not held until the outage ends (10 s)
        assert ticks >= 10  # the loop kept running its other tasks
        assert store.overflowed >= 10 - 2 - 1  # past the bound (the writer holds one batch)
        assert store.pending == 10  # nothing committed during the outage, nothing dropped
        assert _committed(pg_url) == 0
        end_outage()
        assert store.flush(60)
        assert _committed(pg_url) == 10
        assert store.lost == 0
    finally:
        release.cancel()
        end_outage()
        store.close()


@pytest.mark.parametrize("kind", OUTAGES)
def test_a_plain_thread_still_waits_for_room(
    pg_url: str, proxy: PausableProxy, tmp_path: Path, kind: str
) -> None:
    store = PostgresExecutionStore(proxy.url, data_dir=tmp_path, queue_size=1, batch_size=1)
    end_outage = _outage(proxy, kind)
    try:
        writer = write_from_a_thread(store, [make_record(i) for i in range(4)])
        assert writer.is_alive()  # blocked: the queue is full and the writer cannot commit
        assert store.overflowed == 0
        end_outage()
        writer.join(60)
        assert not writer.is_alive()
        assert store.flush(60)
        assert _committed(pg_url) == 4
        assert store.lost == 0
    finally:
        end_outage()
        store.close()


@pytest.mark.parametrize("durability", ["durable", "relaxed"])
@pytest.mark.parametrize("kind", OUTAGES)
async def test_executions_await_the_store_while_its_database_is_out(
    pg_url: str, proxy: PausableProxy, tmp_path: Path, kind: str, durability: str
) -> None:
    """Durable executions await their commit, relaxed ones room in the queue: both on the
    loop, which goes on serving every other task meanwhile."""
    models = ScriptedModels()
    models.handlers["*"] = reply({"title": "Chef"})
    engine = Engine(
        EngineConfig(
            data_dir=tmp_path / "data",
            models=MODELS,
            database=proxy.url,
            cache=False,
            durability=durability,  # type: ignore[arg-type]
        ),
        registry=DefinitionRegistry([make_task()]),
        catalog=Catalog.from_data(catalog_data()),
        providers=dict.fromkeys(MODELS, models),
    )
    count = 40
    async with engine:
        store = engine.store
        assert isinstance(store, PostgresExecutionStore)
        await engine.execute("title_extraction", {"posting": "Chef warm-up"})
        engine.flush()  # committed before the outage (relaxed returns before)
        end_outage = _outage(proxy, kind)
        finished: list[str] = []
        ticks = 0
        try:

            async def one(i: int) -> None:
                result = await engine.execute("title_extraction", {"posting": f"Chef {i}"})
                finished.append(result.execution_id)

            async with anyio.create_task_group() as tg:
                for i in range(count):
                    tg.start_soon(one, i)
                deadline = time.monotonic() + 1.0
                while time.monotonic() < deadline:  # the loop is free during the outage
                    ticks += 1
                    await anyio.sleep(0.01)
                assert models.calls() == count + 1  # every execution ran up to its record
                if durability == "durable":
                    assert finished == []  # each awaits its commit
                else:
                    assert len(finished) == count  # queued: returned without a commit
                assert _committed(pg_url) == 1
                end_outage()
            assert ticks >= 20
        finally:
            end_outage()
        engine.flush()
        assert _committed(pg_url) == count + 1
        assert store.lost == 0


def test_closing_while_the_database_does_not_answer_keeps_the_records_in_the_file(
    pg_url: str, proxy: PausableProxy, tmp_path: Path
) -> None:
    """``close`` waits ``close_timeout_s`` for a database that stopped answering, not forever:
    the batch it waits on then goes to the fallback file, as when the database is down."""
    store = PostgresExecutionStore(proxy.url, data_dir=tmp_path, close_timeout_s=1.0)
    proxy.pause()
    for i in range(3):
        store.write(make_record(i))
    closing = threading.Thread(target=store.close)
    closing.start()
    closing.join(30)
    hung = closing.is_alive()
    if hung:  # let it finish before failing
        proxy.resume()
        closing.join(60)
    assert not hung
    assert store.lost == 3
    lines = (tmp_path / "unrecorded.jsonl").read_text(encoding="utf-8").splitlines()
    assert {json.loads(line)["execution_id"] for line in lines} == {"e0", "e1", "e2"}
    assert _committed(pg_url) == 0


@pytest.mark.parametrize("kind", OUTAGES)
async def test_closing_an_engine_waits_for_its_database_off_the_event_loop(
    pg_url: str, proxy: PausableProxy, tmp_path: Path, kind: str
) -> None:
    """``aclose`` commits what is queued, waiting for the database in a thread: the loop serves
    its other tasks meanwhile, and the records land once the database is back."""
    models = ScriptedModels()
    models.handlers["*"] = reply({"title": "Chef"})
    engine = Engine(
        EngineConfig(
            data_dir=tmp_path / "data",
            models=MODELS,
            database=proxy.url,
            cache=False,
            durability="relaxed",
        ),
        registry=DefinitionRegistry([make_task()]),
        catalog=Catalog.from_data(catalog_data()),
        providers=dict.fromkeys(MODELS, models),
    )
    await engine.open()
    await engine.execute("title_extraction", {"posting": "Chef warm-up"})
    engine.flush()
    end_outage = _outage(proxy, kind)
    try:
        for i in range(10):  # relaxed: each returns once its record is queued
            await engine.execute("title_extraction", {"posting": f"Chef {i}"})
        closed = anyio.Event()
        ticks = 0

        async def close() -> None:
            await engine.aclose()
            closed.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(close)
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline:
                ticks += 1
                await anyio.sleep(0.01)
            assert not closed.is_set()  # still waiting for the database …
            assert ticks >= 20  # … without holding the loop
            end_outage()
    finally:
        end_outage()
        await engine.aclose()
    assert _committed(pg_url) == 11
    assert engine.store is not None
    assert engine.store.lost == 0
