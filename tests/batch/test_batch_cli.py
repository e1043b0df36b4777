"""``tlm batch`` in real subprocesses: a crash (SIGKILL) mid-run, then --resume in a new process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import anyio

from tests.batch.support import KEY, catalog_data, read_output, server_for, title_script
from tests.batch.support import write_inputs as write_postings
from tests.engine.conftest import base_task
from tlm.store import ExecutionStore

ROOT = Path(__file__).resolve().parents[2]


def _environment(tmp_path: Path, catalog: dict[str, object]) -> dict[str, str]:
    definitions = tmp_path / "definitions"
    task_dir = definitions / "tasks" / "title_extraction"
    task_dir.mkdir(parents=True)
    (task_dir / "1.0.0.json").write_text(json.dumps(base_task()), encoding="utf-8")
    (definitions / "models.json").write_text(json.dumps(catalog), encoding="utf-8")
    env = dict(os.environ)
    env.update(
        {
            "PYTHONPATH": str(ROOT),
            "TLM_DEFINITIONS": str(definitions),
            "TLM_MODELS": "batchable",
            "TLM_DATA_DIR": str(tmp_path / "data"),
            "BATCH_TEST_KEY": KEY,
        }
    )
    return env


def _tlm(*args: str) -> list[str]:
    return [sys.executable, "-c", "from tlm.cli import main; main()", *args]


async def test_a_killed_run_resumes_in_a_new_process(tmp_path: Path) -> None:
    count = 40
    inputs = write_postings(tmp_path / "in.jsonl", count)
    output = tmp_path / "out.jsonl"
    async with server_for("openai", title_script("openai"), polls_to_complete=10**6) as server:
        env = _environment(tmp_path, catalog_data("openai", server.base_url))
        command = _tlm(
            "batch", "title_extraction", "--input", str(inputs), "--output", str(output),
            "--provider-batch", "--poll-interval", "0.05", "--max-requests-per-batch", "15",
        )  # fmt: skip
        process = await anyio.open_process(command, env=env, cwd=tmp_path)
        try:
            for _ in range(1200):  # it submitted everything and polls
                if len(server.submitted_custom_ids) == count and any(
                    b.polls for b in server.batches.values()
                ):
                    break
                await anyio.sleep(0.05)
        finally:
            process.send_signal(signal.SIGKILL)  # a crash: no cancellation, no cleanup
            await process.wait()
        assert len(server.batches) == 3  # 15 + 15 + 10
        assert not any(b.cancelling for b in server.batches.values())
        server.polls_to_complete = 1
        server.expire(["tlm-2-0", "tlm-33-0"])
        resumed = await anyio.run_process(
            _tlm("batch", "--resume", "--poll-interval", "0.05"), env=env, cwd=tmp_path, check=False
        )
        listed = await anyio.run_process(_tlm("batch", "--runs"), env=env, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr.decode()
    assert "done: 40 of 40 input(s)" in resumed.stderr.decode()
    assert " done " in listed.stdout.decode()
    lines = read_output(output)
    assert sorted(line["line"] for line in lines) == list(range(1, count + 1))
    assert all(line["status"] == "unverified" or line["status"] == "verified" for line in lines)
    with ExecutionStore(tmp_path / "data" / "tlm.db") as store:
        records = store.query(task_id="title_extraction")
    assert len(records) == count
    assert {r.execution_id for r in records} == {line["execution_id"] for line in lines}
    assert {r.batch_custom_id for r in records if r.batch_custom_id.endswith("-1")} == {  # type: ignore[union-attr]
        "tlm-2-1",
        "tlm-33-1",
    }
    assert KEY not in resumed.stderr.decode() + resumed.stdout.decode()


def test_the_local_mode_writes_one_line_per_input(tmp_path: Path) -> None:
    """Without --provider-batch: engine.map, synchronous calls, bad lines recorded and located."""
    inputs = write_postings(tmp_path / "in.jsonl", 6, extra={3: "{not json", 5: '{"posting": ""}'})
    output = tmp_path / "out.jsonl"

    async def serve() -> subprocess.CompletedProcess[bytes]:
        async with server_for("openai", title_script("openai")) as server:
            env = _environment(tmp_path, catalog_data("openai", server.base_url))
            command = _tlm(
                "batch", "title_extraction", "--input", str(inputs), "--output", str(output)
            )
            done = await anyio.run_process(command, env=env, cwd=tmp_path, check=False)
            assert not server.batches  # synchronous: no provider batch
            return done

    finished = anyio.run(serve)
    assert finished.returncode == 1  # two inputs failed
    lines = {line["line"]: line for line in read_output(output)}
    assert sorted(lines) == [1, 2, 3, 4, 5, 6]
    assert lines[1]["output"] == {"title": "Title1"}
    assert lines[3]["error"]["type"] == "InputInvalid"
    assert f"{inputs}:3 column 2: invalid JSON" in lines[3]["error"]["message"]
    assert lines[5]["error"]["type"] == "InputInvalid"
    with ExecutionStore(tmp_path / "data" / "tlm.db") as store:
        assert store.count(task_id="title_extraction") == 6


async def test_ctrl_c_cancels_the_provider_batches(tmp_path: Path) -> None:
    inputs = write_postings(tmp_path / "in.jsonl", 12)
    output = tmp_path / "out.jsonl"
    async with server_for(
        "anthropic", title_script("anthropic"), polls_to_complete=10**6
    ) as server:
        env = _environment(tmp_path, catalog_data("anthropic", server.base_url))
        command = _tlm(
            "batch", "title_extraction", "--input", str(inputs), "--output", str(output),
            "--provider-batch", "--poll-interval", "0.05",
        )  # fmt: skip
        process = await anyio.open_process(command, env=env, cwd=tmp_path)
        try:
            for _ in range(1200):
                if any(b.polls for b in server.batches.values()):
                    break
                await anyio.sleep(0.05)
            process.send_signal(signal.SIGINT)
            with anyio.fail_after(30):
                code = await process.wait()
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        assert code == 130
        assert [b.cancelling for b in server.batches.values()] == [True]
        finished = await anyio.run_process(
            _tlm("batch", "--resume", "--poll-interval", "0.05"), env=env, cwd=tmp_path, check=False
        )
    assert finished.returncode == 1  # every input was cancelled: recorded as failed
    assert "cancelled: 12 of 12 input(s)" in finished.stderr.decode()
    assert len(read_output(output)) == 12
