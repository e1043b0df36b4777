"""The result cache's contract, on a real SQLite file and on the real PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import psycopg
import pytest

from tlm.errors import StoreError
from tlm.store.cache import CACHE_FILE, ResultCache, open_cache
from tlm.store.cache_tables import PostgresCacheTable, SqliteCacheTable


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def make_cache(backend: str | None, tmp_path: Path, clock: Clock) -> Any:
    opened: list[ResultCache] = []

    def make(data_dir: str = "data") -> ResultCache:
        cache = open_cache(tmp_path / data_dir, backend, clock=clock)
        opened.append(cache)
        return cache

    yield make
    for cache in opened:
        cache.close()


def _drop_table(backend: str | None, cache: ResultCache) -> None:
    """Break the cache underneath it: its table disappears."""
    if backend is None:
        import sqlite3

        assert cache.path is not None
        with sqlite3.connect(cache.path) as conn:
            conn.execute("DROP TABLE results")
    else:
        with psycopg.connect(backend, autocommit=True) as conn:
            conn.execute("DROP TABLE result_cache")


async def test_a_stored_output_is_found_with_its_meta(make_cache: Any) -> None:
    cache = make_cache()
    assert await cache.get("k1") is None
    stored = await cache.put(
        "k1", task_id="t", task_version="1", output={"b": [1, 2], "a": "x"},
        meta={"models_used": ["m"]}, ttl_s=None,
    )  # fmt: skip
    assert stored is True
    hit = await cache.get("k1")
    assert hit is not None
    assert hit.output == {"a": "x", "b": [1, 2]}
    assert hit.meta == {"models_used": ["m"]}
    assert hit.stored_at == 1_000.0
    assert await cache.get("k2") is None
    assert cache.failures == 0


async def test_an_entry_expires_after_its_ttl_and_a_put_replaces(
    make_cache: Any, clock: Clock
) -> None:
    cache = make_cache()
    await cache.put("k", task_id="t", task_version="1", output=1, meta={}, ttl_s=10)
    clock.now += 9
    assert (await cache.get("k")).output == 1
    await cache.put("k", task_id="t", task_version="1", output=2, meta={}, ttl_s=10)
    clock.now += 9
    assert (await cache.get("k")).output == 2  # the replacement's own ttl
    clock.now += 2
    assert await cache.get("k") is None  # the memory in front expires entries too
    clock.now -= 5  # removed, not only hidden
    assert await cache.get("k") is None


async def test_entries_beyond_the_memory_are_read_from_the_database(
    backend: str | None, tmp_path: Path
) -> None:
    table: Any = (
        SqliteCacheTable(tmp_path / CACHE_FILE) if backend is None else PostgresCacheTable(backend)
    )
    small = ResultCache(table, memory_entries=2)
    try:
        for i in range(5):
            await small.put(f"k{i}", task_id="t", task_version="1", output=i, meta={}, ttl_s=None)
        assert list(small._memory) == ["k3", "k4"]
        found = [await small.get(f"k{i}") for i in range(5)]
        assert [None if hit is None else hit.output for hit in found] == [0, 1, 2, 3, 4]
        assert list(small._memory) == ["k3", "k4"]  # the last two read
    finally:
        small.close()


async def test_put_nowait_is_seen_by_the_next_lookup_and_survives_close(
    make_cache: Any, backend: str | None, tmp_path: Path, clock: Clock
) -> None:
    cache = make_cache()
    for i in range(50):
        assert cache.put_nowait(f"k{i}", task_id="t", task_version="1", output=i, meta={},
                                ttl_s=None)  # fmt: skip
    assert (await cache.get("k49")).output == 49
    cache.put_nowait("last", task_id="t", task_version="1", output="end", meta={}, ttl_s=None)
    cache.close()
    assert not cache.put_nowait("late", task_id="t", task_version="1", output=0, meta={},
                                ttl_s=None)  # fmt: skip
    assert await cache.get("last") is None  # a closed cache misses
    again = make_cache()
    assert (await again.get("last")).output == "end"


async def test_text_databases_refuse_reads_back_unchanged(make_cache: Any) -> None:
    cache = make_cache()
    odd = {"nul": "a\x00b", "surrogate": "x\ud800y", "emoji": "🙂", "quote": "'; DROP"}
    await cache.put("odd\x00key", task_id="t\x00", task_version="1", output=odd, meta={},
                    ttl_s=None)  # fmt: skip
    hit = await cache.get("odd\x00key")
    assert hit is not None
    assert hit.output["nul"] == "a\x00b"
    assert hit.output["emoji"] == "🙂"
    assert hit.output["quote"] == "'; DROP"


async def test_many_lookups_at_once_are_all_answered(make_cache: Any) -> None:
    cache = make_cache()
    for i in range(0, 300, 2):
        cache.put_nowait(f"k{i}", task_id="t", task_version="1", output=i, meta={}, ttl_s=None)
    found: dict[int, Any] = {}

    async def look(i: int) -> None:
        hit = await cache.get(f"k{i}")
        found[i] = None if hit is None else hit.output

    async with anyio.create_task_group() as tg:
        for i in range(300):
            tg.start_soon(look, i)
    assert found == {i: (i if i % 2 == 0 else None) for i in range(300)}


async def test_two_caches_on_one_backend_share_entries(
    make_cache: Any, backend: str | None
) -> None:
    first = make_cache("a" if backend else "data")
    second = make_cache("b" if backend else "data")  # another replica (own data dir on PG)
    first.put_nowait("shared", task_id="t", task_version="1", output="hi", meta={}, ttl_s=None)
    first.flush()
    assert (await second.get("shared")).output == "hi"


async def test_a_failing_database_is_a_miss_and_a_skipped_store(
    make_cache: Any, backend: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    cache = make_cache()
    await cache.put("k", task_id="t", task_version="1", output=1, meta={}, ttl_s=None)
    _drop_table(backend, cache)
    assert (await cache.get("k")).output == 1  # kept in this process's memory
    assert await cache.get("other") is None  # the table is gone: a miss
    put = await cache.put("k", task_id="t", task_version="1", output=2, meta={}, ttl_s=None)
    assert put is False
    assert cache.put_nowait("j", task_id="t", task_version="1", output=2, meta={}, ttl_s=None)
    assert cache.flush(timeout=10)
    assert cache.failures == 3
    assert "result cache" in caplog.text
    assert "going on without" in caplog.text


async def test_an_output_that_is_not_json_is_skipped(make_cache: Any) -> None:
    cache = make_cache()
    assert await cache.put("k", task_id="t", task_version="1", output={1, 2}, meta={},
                           ttl_s=None) is False  # fmt: skip
    assert cache.failures == 1
    assert await cache.get("k") is None


def test_the_cache_answers_under_trio(make_cache: Any) -> None:
    cache = make_cache()

    async def main() -> Any:
        await cache.put("k", task_id="t", task_version="1", output="trio", meta={}, ttl_s=None)
        hit = await cache.get("k")
        return None if hit is None else hit.output

    assert anyio.run(main, backend="trio") == "trio"


def test_the_backend_follows_the_database_setting(
    make_cache: Any, backend: str | None, tmp_path: Path
) -> None:
    cache = make_cache()
    if backend is None:
        assert isinstance(cache._table, SqliteCacheTable)
        assert (tmp_path / "data" / CACHE_FILE).is_file()
    else:
        assert isinstance(cache._table, PostgresCacheTable)
        assert not (tmp_path / "data" / CACHE_FILE).exists()
        assert cache.where == backend  # no password in it to mask


def test_an_unreachable_database_is_a_clear_error_at_open(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=r"postgresql://tlm:\*\*\*@127\.0\.0\.1:9/x"):
        open_cache(tmp_path, "postgresql://tlm:secret@127.0.0.1:9/x")
