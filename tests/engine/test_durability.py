"""The durability contract: an execution returns once its record is committed; nothing is lost.

Issue 12, items 1 and 3-6, through the engine: poisoned inputs and outputs, a full disk (a file
size limit in a child process), leaving ``map`` early, ``kill -9`` mid-stream, a damaged file.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.engine.conftest import MODELS, ScriptedModels, reply
from tests.store.test_durability import damage
from tests.store.test_sqlite import make_record
from tlm.engine import Engine
from tlm.engine.config import load_config
from tlm.errors import ConfigurationError, OutputInvalid, StoreCorrupted, TLMError
from tlm.store import ExecutionStore
from tlm.telemetry.light import LightTracerProvider
from tlm.telemetry.records import ExecutionRecord

REPO = Path(__file__).resolve().parents[2]
EngineFactory = Callable[..., Engine]
TASK = "title_extraction"


def committed_ids(db: Path) -> set[str]:
    """Execution ids committed to ``db``, read through a connection of its own."""
    conn = sqlite3.connect(db)
    try:
        return {row[0] for row in conn.execute("SELECT execution_id FROM executions")}
    finally:
        conn.close()


def open_executions(engine: Engine) -> int:
    provider = engine.tracer_provider
    assert isinstance(provider, LightTracerProvider)
    return provider.open_executions


# --- item 1: poisoned text ---------------------------------------------------------------------


async def test_a_poisoned_input_never_stops_the_recording(
    engine_factory: EngineFactory, models: ScriptedModels, tmp_path: Path
) -> None:
    models.handlers["*"] = reply({"title": "Chef"})
    outcomes: list[str] = []
    async with engine_factory() as engine:
        inputs = [{"posting": f"Chef {i}"} for i in range(10)]
        inputs += [{"posting": "Chef \ud800 wanted"}]
        inputs += [{"posting": f"Cook {i}"} for i in range(100)]
        for data in inputs:
            try:
                result = await engine.execute(TASK, data)
                outcomes.append(result.execution_id)
            except TLMError as exc:  # rejecting such input is fine; it must still be recorded
                outcomes.append(str(getattr(exc, "execution_id", None)))
        assert engine.store is not None
        assert engine.store.count() == 111
        assert open_executions(engine) == 0
    assert committed_ids(tmp_path / "data" / "tlm.db") == set(outcomes)


async def test_a_poisoned_output_is_refused_and_recorded_without_a_raw_encoding_error(
    engine_factory: EngineFactory, models: ScriptedModels
) -> None:
    """A reply holding a lone surrogate is invalid output (nothing downstream could keep it):
    re-asked, then a recorded ``OutputInvalid``; it never reaches the cache or breaks the store."""
    models.handlers["*"] = reply('{"title": "Chef \\ud800"}')  # JSON escape of a lone surrogate
    async with engine_factory() as engine:
        with pytest.raises(OutputInvalid, match="lone surrogate"):
            await engine.execute(TASK, {"posting": "Chef wanted"})
        mapped = [r async for r in engine.map(TASK, [{"posting": f"p{i}"} for i in range(20)])]
        assert engine.store is not None
        assert engine.store.count() == 21
        records = engine.store.query(task_id=TASK)
    assert all(isinstance(r.error, OutputInvalid) for r in mapped)
    assert all(r.status == "error" for r in records)
    assert all(r.error is not None and r.error.type == "OutputInvalid" for r in records)


async def test_the_cache_key_of_a_poisoned_input_raises_no_encoding_error(
    engine_factory: EngineFactory, models: ScriptedModels
) -> None:
    from tlm.engine.cache import cache_key

    keys = {
        cache_key(
            task_id="t",
            task_version="1",
            prompt_variant="v",
            model="m",
            parameters={},
            input={"text": text},
        )
        for text in ("a\ud800", "a\udfff", "a")
    }
    assert len(keys) == 3  # distinct inputs, distinct keys


# --- item 3: a full disk ---------------------------------------------------------------------

DISK_FULL = textwrap.dedent(
    """
    import json, resource, signal, sqlite3, sys
    from pathlib import Path
    import anyio
    from tests.engine.conftest import MODELS, ScriptedModels, catalog_data, make_task, reply
    from tlm.catalog import Catalog
    from tlm.definition.registry import DefinitionRegistry
    from tlm.engine import Engine, EngineConfig
    from tlm.errors import RecordNotCommitted, TLMError

    data, durability, cache = Path(sys.argv[1]), sys.argv[2], sys.argv[3] == "cache"
    summary = {"ok": [], "not_committed": [], "other": [], "kept_output": 0, "messages": []}

    async def main():
        models = ScriptedModels()
        # with the cache on, outputs big enough to fill its file too (its stores are grouped)
        models.handlers["*"] = reply({"title": "Chef " + "t" * (2000 if cache else 300)})
        engine = Engine(
            EngineConfig(data_dir=data, models=MODELS, durability=durability, cache=cache),
            registry=DefinitionRegistry([make_task()]),
            catalog=Catalog.from_data(catalog_data()),
            providers=dict.fromkeys(MODELS, models),
        )
        async with engine:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[4]), resource.RLIM_INFINITY))

            async def one(i):
                try:
                    result = await engine.execute(
                        "title_extraction", {"posting": f"Chef {i} " + "p" * 300}
                    )
                    summary["ok"].append(result.execution_id)
                except RecordNotCommitted as exc:
                    summary["not_committed"].append(exc.execution_id)
                    summary["kept_output"] += exc.output is not None
                    summary["messages"].append(str(exc))
                except TLMError as exc:
                    summary["other"].append(repr(exc))

            for start in range(0, 400, 50):
                async with anyio.create_task_group() as tg:
                    for i in range(start, start + 50):
                        tg.start_soon(one, i)
            summary["open"] = engine.tracer_provider.open_executions
            result_cache = engine._runtime.cache
        summary["lost"] = engine.store.lost  # once closed: every record was processed
        # the cache writes behind: its stores were all tried once the engine closed
        summary["cache_failures"] = result_cache.failures if cache else 0

    anyio.run(main)
    resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    conn = sqlite3.connect(data / "tlm.db")
    summary["on_disk"] = [r[0] for r in conn.execute("SELECT execution_id FROM executions")]
    jsonl = data / "unrecorded.jsonl"
    summary["rescued"] = (
        [json.loads(line)["execution_id"] for line in jsonl.read_text().splitlines()]
        if jsonl.exists() else []
    )
    print(json.dumps(summary))
    """
)


def run_disk_full(data: Path, durability: str, cache: bool, limit: int) -> dict[str, Any]:
    completed = subprocess.run(
        [
            sys.executable,
            "-c",
            DISK_FULL,
            str(data),
            durability,
            "cache" if cache else "-",
            str(limit),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "Traceback" not in completed.stderr, completed.stderr[-3000:]
    summary: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    summary["stderr"] = completed.stderr
    return summary


@pytest.mark.parametrize("cache", [False, True])
def test_a_full_disk_surfaces_the_real_error_and_keeps_every_output(
    tmp_path: Path, cache: bool
) -> None:
    found = run_disk_full(tmp_path / "data", "durable", cache, 400_000)
    assert found["other"] == []  # no raw sqlite3 error, no other failure
    assert len(found["ok"]) + len(found["not_committed"]) == 400
    assert found["ok"], "the disk filled before anything was committed: raise the limit"
    assert found["not_committed"], "the disk never filled: lower the limit"
    # every execution that returned normally is on disk; no other one is
    assert set(found["ok"]) == set(found["on_disk"])
    # each one that is not is told so, with its output, and the real reason
    assert found["kept_output"] == len(found["not_committed"])
    assert found["lost"] == len(found["not_committed"])
    for message in found["messages"]:
        assert "SQLITE_FULL" in message or "SQLITE_IOERR" in message, message
        assert "cannot rollback" not in message
        assert "unrecorded.jsonl" in message
    saved = [m for m in found["messages"] if "saved to" in m]
    assert len(found["rescued"]) == len(saved)
    assert set(found["rescued"]) <= set(found["not_committed"])
    assert found["open"] == 0
    assert "cannot rollback" not in found["stderr"]
    if cache:  # outputs are cached only once their record is committed: none of a lost one
        cached = sqlite3.connect(tmp_path / "data" / "cache.db")
        try:
            named = {
                json.loads(m)["execution_id"] for (m,) in cached.execute("SELECT meta FROM results")
            }
        finally:
            cached.close()
        assert named
        assert named <= set(found["on_disk"])


def test_relaxed_mode_returns_before_commit_and_counts_what_it_loses(tmp_path: Path) -> None:
    found = run_disk_full(tmp_path / "data", "relaxed", False, 400_000)
    assert found["other"] == []
    assert found["not_committed"] == []  # relaxed: callers are not held back nor told
    assert len(found["ok"]) == 400
    assert found["lost"] > 0
    assert found["lost"] + len(found["on_disk"]) == 400
    assert "not committed" in found["stderr"]  # logged
    assert found["open"] == 0


# --- item 4: leaving map early -----------------------------------------------------------------


async def test_leaving_map_early_records_every_execution_that_was_taken(
    engine_factory: EngineFactory, models: ScriptedModels, tmp_path: Path
) -> None:
    async def slow(request: Any) -> str:
        await anyio.sleep(0.002 * (len(models.requests) % 7))
        return json.dumps({"title": "Chef"})

    models.handlers["*"] = slow
    taken = 0

    def inputs() -> Iterator[dict[str, str]]:
        nonlocal taken
        for i in range(20_000):
            taken += 1
            yield {"posting": f"Chef {i}"}

    returned: list[str] = []
    async with engine_factory() as engine:
        async with engine.map(TASK, inputs(), max_in_flight=64) as results:
            async for result in results:
                returned.append(result.execution_id)
                if len(returned) == 300:
                    break
        assert open_executions(engine) == 0
        assert engine.store is not None
        records = engine.store.query(task_id=TASK)
    assert taken > 300
    assert len(records) == taken
    by_id = {r.execution_id: r for r in records}
    assert set(returned) <= set(by_id)
    cancelled = [r for r in records if r.error is not None]
    assert cancelled, "nothing was in flight when the map was left"
    assert all("cancelled" in r.error.message for r in cancelled if r.error)


# --- item 5: the durability contract -----------------------------------------------------------


async def test_an_execution_returns_only_once_its_record_is_committed(
    engine_factory: EngineFactory, models: ScriptedModels, tmp_path: Path
) -> None:
    models.handlers["*"] = reply({"title": "Chef"})
    db = tmp_path / "data" / "tlm.db"
    async with engine_factory() as engine:
        for i in range(20):
            result = await engine.execute(TASK, {"posting": f"Chef {i}"})
            assert result.execution_id in committed_ids(db)
        async with engine.map(TASK, [{"posting": f"Cook {i}"} for i in range(200)]) as results:
            async for result in results:
                assert result.execution_id in committed_ids(db)


def _hold_commits(engine: Engine, gate: threading.Event) -> Callable[[], None]:
    """Make the engine's SQLite store wait for ``gate`` (at most 30 s) before each commit;
    returns what undoes it."""
    store = engine.store
    assert isinstance(store, ExecutionStore)
    original = store._commit

    def gated(conn: sqlite3.Connection, records: list[ExecutionRecord]) -> None:
        gate.wait(30)
        original(conn, records)

    store._commit = gated  # type: ignore[method-assign]

    def restore() -> None:
        store._commit = original  # type: ignore[method-assign]

    return restore


async def test_the_commit_wait_does_not_block_the_event_loop(
    engine_factory: EngineFactory, models: ScriptedModels
) -> None:
    models.handlers["*"] = reply({"title": "Chef"})
    gate = threading.Event()
    async with engine_factory() as engine:
        _hold_commits(engine, gate)
        done = anyio.Event()
        ticks = 0

        async def run() -> None:
            await engine.execute(TASK, {"posting": "Chef"})
            done.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(run)
            for _ in range(20):  # the loop keeps running while the execution waits
                await anyio.sleep(0.005)
                ticks += 1
            assert not done.is_set()  # still waiting for its commit
            gate.set()
            with anyio.fail_after(30):
                await done.wait()
    assert ticks == 20


async def test_an_execution_cancelled_while_waiting_for_its_commit_leaves_the_others_waiting(
    engine_factory: EngineFactory, models: ScriptedModels, tmp_path: Path
) -> None:
    models.handlers["*"] = reply({"title": "Chef"})
    gate = threading.Event()
    db = tmp_path / "data" / "tlm.db"
    async with engine_factory() as engine:
        restore = _hold_commits(engine, gate)
        finished: list[str] = []

        async def run(posting: str) -> None:
            finished.append((await engine.execute(TASK, {"posting": posting})).execution_id)

        async with anyio.create_task_group() as outer:
            with anyio.CancelScope() as doomed:
                outer.start_soon(run, "Cook")  # waits outside the scope, to the end
                async with anyio.create_task_group() as inner:
                    inner.start_soon(run, "Chef")
                    await anyio.sleep(0.2)  # both are waiting for the gated commit now
                    assert not finished
                    doomed.cancel()
            gate.set()
        assert len(finished) == 1
        restore()
        assert engine.store is not None
        assert engine.store.flush(10)
    assert set(finished) <= committed_ids(db)
    assert len(committed_ids(db)) == 2  # the cancelled execution's record is kept too


def test_an_engine_used_from_a_second_event_loop_still_returns(
    engine_factory: EngineFactory, models: ScriptedModels, tmp_path: Path
) -> None:
    models.handlers["*"] = reply({"title": "Chef"})
    engine = engine_factory()

    async def first() -> str:
        await engine.open()
        return (await engine.execute(TASK, {"posting": "Chef"})).execution_id

    async def second() -> str:
        with anyio.fail_after(30):  # the commit wait must not listen to the first, closed loop
            result = await engine.execute(TASK, {"posting": "Cook"})
        await engine.aclose()
        return result.execution_id

    ids = {anyio.run(first), anyio.run(second)}
    assert committed_ids(tmp_path / "data" / "tlm.db") == ids


async def test_relaxed_mode_is_chosen_by_the_user(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert load_config(env={}).durability == "durable"
    assert load_config(env={"TLM_DURABILITY": "relaxed"}).durability == "relaxed"
    toml = tmp_path / "tlm.toml"
    toml.write_text('[tlm]\ndurability = "relaxed"\n')
    assert load_config(toml, env={}).durability == "relaxed"
    with pytest.raises(ConfigurationError, match="durability must be"):
        load_config(env={"TLM_DURABILITY": "sometimes"})


KILLED = textwrap.dedent(
    """
    import sys
    import anyio
    from tests.engine.conftest import MODELS, ScriptedModels, catalog_data, make_task, reply
    from tlm.catalog import Catalog
    from tlm.definition.registry import DefinitionRegistry
    from tlm.engine import Engine, EngineConfig

    async def main():
        models = ScriptedModels()
        models.handlers["*"] = reply({"title": "Chef"})
        engine = Engine(
            EngineConfig(data_dir=sys.argv[1], models=MODELS, cache=False),
            registry=DefinitionRegistry([make_task()]),
            catalog=Catalog.from_data(catalog_data()),
            providers=dict.fromkeys(MODELS, models),
        )
        async with engine:
            inputs = ({"posting": f"Chef {i}"} for i in range(10**9))
            async with engine.map("title_extraction", inputs, max_in_flight=1500) as results:
                async for result in results:
                    sys.stdout.write(result.execution_id + "\\n")
                    sys.stdout.flush()

    anyio.run(main)
    """
)


def test_kill_9_mid_stream_loses_no_returned_execution(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with subprocess.Popen(
        [sys.executable, "-c", KILLED, str(data)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    ) as child:
        assert child.stdout is not None
        returned = [child.stdout.readline().strip() for _ in range(3000)]
        child.send_signal(signal.SIGKILL)
        child.wait()
        returned += [line.strip() for line in child.stdout.read().splitlines() if line.strip()]
    assert child.returncode == -signal.SIGKILL
    assert len(returned) >= 3000
    missing = set(returned) - committed_ids(data / "tlm.db")
    assert not missing, f"{len(missing)} of {len(returned)} returned executions are not on disk"


# --- item 6: a damaged database ----------------------------------------------------------------


async def test_a_damaged_store_stops_the_engine_before_any_model_call(
    engine_factory: EngineFactory, models: ScriptedModels, tmp_path: Path
) -> None:
    models.handlers["*"] = reply({"title": "Chef"})
    db = tmp_path / "data" / "tlm.db"
    with ExecutionStore(db) as store:
        for i in range(2000):
            store.write(make_record(i))
    damage(db)
    with pytest.raises(StoreCorrupted, match="corrupted"):
        async with engine_factory() as engine:
            await engine.execute(TASK, {"posting": "Chef"})
    assert models.requests == []


CLI = "from tlm.cli import main; main()"


def test_the_cli_says_in_one_line_that_the_store_is_damaged(tmp_path: Path) -> None:
    from tests.engine.conftest import base_task, catalog_data

    data = tmp_path / "data"
    with ExecutionStore(data / "tlm.db") as store:
        for i in range(2000):
            store.write(make_record(i))
    damage(data / "tlm.db")
    task_dir = tmp_path / "definitions" / "tasks" / TASK
    task_dir.mkdir(parents=True)
    (task_dir / "1.0.0.json").write_text(json.dumps(base_task()))
    (tmp_path / "models.json").write_text(json.dumps(catalog_data()))
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "TLM_DATA_DIR": str(data),
        "TLM_DEFINITIONS": str(tmp_path / "definitions"),
        "TLM_CATALOG": str(tmp_path / "models.json"),
        "TLM_MODELS": ",".join(MODELS),
        "COLUMNS": "80",
    }
    env.pop("TLM_CONFIG", None)
    completed = subprocess.run(
        [sys.executable, "-c", CLI, "execute", TASK, "--input", '{"posting": "Chef"}'],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 1
    assert "Traceback" not in completed.stderr
    lines = [line for line in completed.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, completed.stderr
    assert str(data / "tlm.db") in lines[0]
    assert "corrupted" in lines[0]


async def test_the_cli_prints_the_output_of_an_execution_whose_record_the_store_refused(
    tmp_path: Path,
) -> None:
    from tests.engine.conftest import base_task, catalog_data
    from tlm.testing import FakeOpenAIServer

    data = tmp_path / "data"
    ExecutionStore(data / "tlm.db").close()
    conn = sqlite3.connect(data / "tlm.db")  # the file refuses every new record from now on
    conn.execute(
        "CREATE TRIGGER refuse BEFORE INSERT ON executions "
        "BEGIN SELECT RAISE(FAIL, 'no room for records'); END"
    )
    conn.close()
    task_dir = tmp_path / "definitions" / "tasks" / TASK
    task_dir.mkdir(parents=True)
    (task_dir / "1.0.0.json").write_text(json.dumps(base_task()))
    async with FakeOpenAIServer(lambda body: json.dumps({"title": "Chef"})) as server:
        (tmp_path / "models.json").write_text(
            json.dumps(catalog_data() | {"models": [
                card | {"base_url": server.base_url} for card in catalog_data()["models"]
            ]})
        )  # fmt: skip
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "TLM_DATA_DIR": str(data),
            "TLM_DEFINITIONS": str(tmp_path / "definitions"),
            "TLM_CATALOG": str(tmp_path / "models.json"),
            "TLM_MODELS": ",".join(MODELS),
            "TLM_CACHE": "0",
        }
        env.pop("TLM_CONFIG", None)
        completed = await anyio.run_process(
            [sys.executable, "-c", CLI, "execute", TASK, "--input", '{"posting": "Chef"}'],
            env=env,
            cwd=tmp_path,
            check=False,
        )
        assert len(server.requests) == 1
    stdout, stderr = completed.stdout.decode(), completed.stderr.decode()
    assert completed.returncode == 1, stderr
    assert "Traceback" not in stderr
    assert json.loads(stdout) == {"title": "Chef"}  # the paid-for output is printed
    assert "not committed" in stderr
    assert "unrecorded.jsonl" in stderr
    (line,) = (data / "unrecorded.jsonl").read_text().splitlines()
    assert json.loads(line)["output"] == {"title": "Chef"}
