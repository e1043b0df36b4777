"""Batches on Ray: Ray Data reads the input, two engine actors run it against the fake server.

Ray runs in-process (``ray.init(num_cpus=2, include_dashboard=False)``, see conftest.py).
"""

from __future__ import annotations

import json
import os
import re
import signal
from collections import Counter
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import pytest

if os.environ.get("CI", "").lower() != "true":  # in CI a missing Ray fails the run
    pytest.importorskip("ray", reason="Ray batches need the tlm[ray] extra")

import ray

from tests.batch.ray_support import Handles, reporting_engine
from tests.batch.support import catalog_data, make_engine, read_output
from tests.batch.support import write_inputs as write_postings
from tests.batch.test_batch_cli import _environment, _tlm
from tests.batch.test_resume import Counting
from tlm.batch import run_ray_batch
from tlm.store import ExecutionStore
from tlm.testing import FakeOpenAIServer

INPUTS = int(os.environ.get("TLM_RAY_TEST_INPUTS", "5000"))
"""The issue asks for 5,000 (the default); set lower on a very slow machine."""


def _exactly_once(
    output: Path, data_dir: Path, count: int, *, crashed: bool = False
) -> list[dict[str, Any]]:
    """One output line and one successful record per input. After a crash the store may also
    hold failure records of executions cut short (history, not duplicates)."""
    lines = read_output(output)
    assert sorted(line["line"] for line in lines) == list(range(1, count + 1))
    assert all(line["output"] == {"title": f"Title{line['line']}"} for line in lines)
    with ExecutionStore(data_dir / "tlm.db") as store:
        records = store.query(task_id="title_extraction")
    if crashed:
        records = [r for r in records if r.status == "ok"]
    assert len(records) == count
    assert {r.execution_id for r in records} == {line["execution_id"] for line in lines}
    return lines


async def _engine_actors_gone() -> None:
    from ray._private import state  # the GCS actor table (the state API needs the dashboard)

    for _ in range(240):
        alive = [
            a
            for a in state.actors().values()
            if "EngineActor" in a["ActorClassName"] and a["State"] != "DEAD"
        ]
        if not alive:
            return
        await anyio.sleep(0.25)
    raise AssertionError(f"{len(alive)} engine actor(s) still alive after 60 s")


async def test_a_ray_batch_over_two_actors_runs_every_input_exactly_once(
    tmp_path: Path, ray_session: Any
) -> None:
    inputs = write_postings(tmp_path / "in.jsonl", INPUTS)
    counting = Counting()
    async with FakeOpenAIServer(counting) as server:
        catalog = catalog_data("openai", server.base_url)
        factory = partial(reporting_engine, None, tmp_path / "data", catalog)
        async with make_engine(tmp_path / "data", catalog) as engine:
            report = await run_ray_batch(
                engine, "title_extraction", inputs, tmp_path / "out.jsonl",
                engine_factory=factory, actors=2, max_in_flight=16,
            )  # fmt: skip
    assert (report.finished, report.ok, report.failed) == (INPUTS, INPUTS, 0)
    assert len(counting.seen) == INPUTS
    assert set(counting.seen.values()) == {1}
    _exactly_once(tmp_path / "out.jsonl", tmp_path / "data", INPUTS)


async def test_an_actor_killed_mid_batch_the_batch_completes(
    tmp_path: Path, ray_session: Any
) -> None:
    count = 1200
    inputs = write_postings(tmp_path / "in.jsonl", count)
    counting = Counting()
    name = f"handles-{os.getpid()}-{tmp_path.name}"
    registry = Handles.options(name=name).remote()  # type: ignore[attr-defined]
    killed: list[Any] = []

    async def kill_one() -> None:
        while True:
            handles = await anyio.to_thread.run_sync(ray.get, registry.all.remote())
            if handles and sum(counting.seen.values()) >= count // 4:
                ray.kill(handles[0], no_restart=False)  # Ray restarts it; its rows run again
                killed.append(handles[0])
                return
            await anyio.sleep(0.02)

    async with FakeOpenAIServer(counting, latency_s=0.01) as server:
        catalog = catalog_data("openai", server.base_url)
        factory = partial(reporting_engine, name, tmp_path / "data", catalog)
        async with make_engine(tmp_path / "data", catalog) as engine:
            async with anyio.create_task_group() as group:
                group.start_soon(kill_one)
                report = await run_ray_batch(
                    engine, "title_extraction", inputs, tmp_path / "out.jsonl",
                    engine_factory=factory, actors=2, max_in_flight=8, rows_per_call=32,
                )  # fmt: skip
                group.cancel_scope.cancel()
    assert killed, "the batch ended before an actor was killed"
    assert report.finished == count
    assert report.ok == count
    _exactly_once(tmp_path / "out.jsonl", tmp_path / "data", count)
    ray.kill(registry)


class Held(Counting):
    """``Counting``, but every call past the first ``answered`` waits for ``release``: the batch
    cannot finish before the test kills it, however the machine schedules the two."""

    def __init__(self, answered: int) -> None:
        super().__init__()
        self.answered = answered
        self.calls = 0
        self.release = anyio.Event()

    async def __call__(self, body: dict[str, Any]) -> Any:
        reply = super().__call__(body)  # counted on arrival
        self.calls += 1
        if self.calls > self.answered:
            await self.release.wait()
        return reply


def _ok_records(data_dir: Path) -> int:
    if not (data_dir / "tlm.db").is_file():
        return 0
    with ExecutionStore(data_dir / "tlm.db") as store:
        return sum(r.status == "ok" for r in store.query(task_id="title_extraction"))


async def test_an_interrupted_ray_batch_resumed_runs_only_the_missing_inputs(
    tmp_path: Path, ray_session: Any
) -> None:
    """``tlm batch --ray ADDRESS`` in a subprocess (a second driver on the session's cluster),
    killed mid-batch, then run again: only the inputs without a record run."""
    count = 400
    inputs = write_postings(tmp_path / "in.jsonl", count)
    output = tmp_path / "out.jsonl"
    counting = Held(answered=150)
    address = ray.get_runtime_context().gcs_address
    async with FakeOpenAIServer(counting, latency_s=0.02) as server:
        env = _environment(tmp_path, catalog_data("openai", server.base_url))
        command = _tlm(
            "batch", "title_extraction", "--input", str(inputs), "--output", str(output),
            "--ray", address, "--max-in-flight", "4",
        )  # fmt: skip
        process = await anyio.open_process(command, env=env, cwd=tmp_path)
        try:
            for _ in range(4800):  # the held calls stop it short of the end
                if counting.calls > counting.answered and _ok_records(tmp_path / "data") >= 60:
                    break
                await anyio.sleep(0.05)
        finally:
            process.send_signal(signal.SIGKILL)
            await process.wait()
            counting.release.set()
        await _engine_actors_gone()  # Ray stops the dead driver's actors (they may finish a call)
        with ExecutionStore(tmp_path / "data" / "tlm.db") as store:
            first = {
                json.dumps(r.input)
                for r in store.query(task_id="title_extraction")
                if r.status == "ok"  # an execution cut short may be recorded as failed
            }
        assert 60 <= len(first) < count
        before = Counter(counting.seen)
        resumed = await anyio.run_process(command, env=env, cwd=tmp_path, check=False)
        again = counting.seen - before
    assert resumed.returncode == 0, resumed.stderr.decode()[-3000:]
    postings = [json.loads(t) for t in inputs.read_text(encoding="utf-8").splitlines()]
    missing = {str(n) for n, p in enumerate(postings, 1) if json.dumps(p) not in first}
    # Only inputs without a successful record ran again. (A call the dead driver's actor had
    # in flight may still commit after the snapshot above: that input is then skipped too.)
    assert again
    assert set(again) <= missing, sorted(set(again) - missing)
    found = re.search(r"skipped\s+(\d+)", resumed.stderr.decode())
    assert found is not None
    assert int(found.group(1)) >= len(first)  # everything done before the re-run was skipped
    _exactly_once(output, tmp_path / "data", count, crashed=True)


async def test_bad_lines_on_ray_are_recorded_and_located(tmp_path: Path, ray_session: Any) -> None:
    inputs = write_postings(tmp_path / "in.jsonl", 5, extra={3: "{not json"})
    text = inputs.read_text(encoding="utf-8").replace("\n", "\n\n", 1)  # line 2 is blank
    inputs.write_text(text, encoding="utf-8")
    async with FakeOpenAIServer(Counting()) as server:
        catalog = catalog_data("openai", server.base_url)
        factory = partial(reporting_engine, None, tmp_path / "data", catalog)
        async with make_engine(tmp_path / "data", catalog) as engine:
            report = await run_ray_batch(
                engine, "title_extraction", inputs, tmp_path / "out.jsonl",
                engine_factory=factory, actors=1,
            )  # fmt: skip
    assert (report.finished, report.ok, report.failed) == (5, 4, 1)
    lines = {line["line"]: line for line in read_output(tmp_path / "out.jsonl")}
    assert sorted(lines) == [1, 3, 4, 5, 6]
    assert lines[4]["error"]["type"] == "InputInvalid"
    assert f"{inputs}:4 column 2: invalid JSON" in lines[4]["error"]["message"]
    assert lines[6]["output"] == {"title": "Title5"}
    with ExecutionStore(tmp_path / "data" / "tlm.db") as store:
        assert store.count(task_id="title_extraction") == 5


def test_ray_does_not_mix_with_provider_batches(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from tlm.cli.batch import batch_command

    inputs = write_postings(tmp_path / "in.jsonl", 1)
    args = ["t", "--input", str(inputs), "--output", str(tmp_path / "o.jsonl")]
    result = CliRunner().invoke(batch_command, [*args, "--ray", "--provider-batch"])
    assert result.exit_code == 2
    assert "--ray runs TASK over --input" in result.output
