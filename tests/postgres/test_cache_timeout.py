"""A result-cache lookup on a database that stopped answering is a miss within the timeout.

The database sits behind :class:`~tests.postgres.proxy.PausableProxy`; paused, it accepts and
reads but never answers (a paused server, a network silently dropping packets). Without a
client-side bound, ``await cache.get`` would wait until TCP gives up.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.engine.conftest import MODELS, ScriptedModels, catalog_data, make_task, reply
from tests.postgres.proxy import PausableProxy
from tlm.catalog import Catalog
from tlm.definition.registry import DefinitionRegistry
from tlm.engine import Engine, EngineConfig
from tlm.errors import ConfigurationError
from tlm.store.cache import DEFAULT_TIMEOUT_S, ResultCache, open_cache

TIMEOUT_S = 0.5


async def _put(cache: ResultCache, key: str, output: Any) -> None:
    stored = await cache.put(key, task_id="t", task_version="1", output=output, meta={}, ttl_s=None)
    assert stored


async def test_a_lookup_misses_within_the_timeout_and_the_cache_recovers(
    pg_url: str, proxy: PausableProxy, tmp_path: Path
) -> None:
    other = open_cache(tmp_path / "other", pg_url)  # another replica, on the database directly
    cache = open_cache(tmp_path / "data", proxy.url, timeout_s=TIMEOUT_S)
    try:
        assert cache.timeout_s == TIMEOUT_S
        await _put(other, "before", 1)
        await _put(other, "during", 2)
        hit = await cache.get("before")
        assert hit is not None  # through the proxy, answering
        assert hit.output == 1
        proxy.pause()
        ticks = 0

        async def heartbeat() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await anyio.sleep(0.01)

        async with anyio.create_task_group() as group:
            group.start_soon(heartbeat)
            with anyio.fail_after(20 * TIMEOUT_S):  # not until TCP gives up: bounded
                assert await cache.get("during") is None  # a miss, not a hang
                later, waits = [], []
                for i in range(20):
                    started = time.monotonic()
                    later.append(await cache.get(f"during-{i}"))
                    waits.append(time.monotonic() - started)
            group.cancel_scope.cancel()
        assert later == [None] * 20
        # the stuck call was abandoned: the later lookups did not each wait the timeout
        assert sum(wait >= TIMEOUT_S for wait in waits) <= 3, waits
        assert ticks > 10  # the event loop ran on meanwhile
        assert cache.failures >= 2
        assert cache.put_nowait(
            "queued", task_id="t", task_version="1", output=3, meta={}, ttl_s=None
        )
        assert cache.flush(timeout=20 * TIMEOUT_S)  # a queued store is tried, not held forever
        proxy.resume()
        for _ in range(300):  # back once the back-off (1 s, then 2 s...) has passed
            found = await cache.get("during")
            if found is not None:
                break
            await anyio.sleep(0.2)
        assert found is not None
        assert found.output == 2
        stored = await cache.put(
            "after", task_id="t", task_version="1", output=4, meta={}, ttl_s=None
        )
        assert stored is True
        assert (await other.get("after")) is not None
    finally:
        cache.close()
        other.close()


async def test_closing_a_cache_whose_database_stopped_answering_does_not_hang(
    proxy: PausableProxy, tmp_path: Path
) -> None:
    cache = open_cache(tmp_path / "data", proxy.url, timeout_s=TIMEOUT_S)
    await _put(cache, "k", 1)
    proxy.pause()
    assert cache.put_nowait("k2", task_id="t", task_version="1", output=2, meta={}, ttl_s=None)
    assert await cache.get("k3") is None
    started = time.monotonic()
    cache.close(timeout=30)  # the queued store is stuck on the database: abandoned
    assert time.monotonic() - started < 15


async def test_an_engine_whose_cache_database_stopped_answering_still_executes(
    proxy: PausableProxy, tmp_path: Path
) -> None:
    models = ScriptedModels()
    models.handlers["*"] = reply({"title": "Chef"})
    config = EngineConfig(
        data_dir=tmp_path / "data",
        models=MODELS,
        store=False,  # only the cache is on the database behind the proxy
        database=proxy.url,
        env={"TLM_CACHE_TIMEOUT_S": str(TIMEOUT_S)},
    )
    engine = Engine(
        config,
        registry=DefinitionRegistry([make_task()]),
        catalog=Catalog.from_data(catalog_data()),
        providers=dict.fromkeys(MODELS, models),
    )
    async with engine:
        first = await engine.execute("title_extraction", {"posting": "Chef 0"})
        assert not first.cache_hit
        proxy.pause()
        with anyio.fail_after(30 * TIMEOUT_S):
            results = [
                await engine.execute("title_extraction", {"posting": f"Chef {i}"})
                for i in range(1, 6)
            ]
        assert [r.status for r in results] == ["verified"] * 5
        assert not any(r.cache_hit for r in results)
        assert models.calls() == 6  # every lookup missed; each execution ran its model
        proxy.resume()


def test_the_timeout_is_configurable_and_checked(tmp_path: Path) -> None:
    assert DEFAULT_TIMEOUT_S > 0
    cache = open_cache(tmp_path, None, env={"TLM_CACHE_TIMEOUT_S": "0.25"})
    try:
        assert cache.timeout_s == 0.25
    finally:
        cache.close()
    cache = open_cache(tmp_path, None, env={})
    try:
        assert cache.timeout_s == DEFAULT_TIMEOUT_S
    finally:
        cache.close()
    for bad in ("soon", "0", "-1", "inf", "nan"):
        with pytest.raises(ConfigurationError, match=r"TLM_CACHE_TIMEOUT_S .* not '"):
            open_cache(tmp_path, None, env={"TLM_CACHE_TIMEOUT_S": bad})
    with pytest.raises(ValueError, match="timeout_s must be positive"):
        ResultCache(object(), timeout_s=0)  # type: ignore[arg-type]


def test_a_lookup_under_trio_times_out_too(proxy: PausableProxy, tmp_path: Path) -> None:
    cache = open_cache(tmp_path / "data", proxy.url, timeout_s=TIMEOUT_S)
    try:

        async def main() -> list[Any]:
            await _put(cache, "k", "trio")
            await cache.get("k")  # remembered: answered without the database
            proxy.pause()
            with anyio.fail_after(20 * TIMEOUT_S):
                return [await cache.get("k"), await cache.get("other"), await cache.get("x")]

        found = anyio.run(main, backend="trio")
        assert found[0] is not None
        assert found[0].output == "trio"
        assert found[1:] == [None, None]
        assert cache.failures >= 1
    finally:
        proxy.resume()
        cache.close()
