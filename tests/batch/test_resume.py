"""Resumable local batches: a re-run runs only the inputs whose execution has not succeeded."""

from __future__ import annotations

import json
import re
import signal
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import anyio

from tests.batch.support import catalog_data, make_engine, read_output, title_script
from tests.batch.support import write_inputs as write_postings
from tests.batch.test_batch_cli import _environment, _tlm
from tlm.batch import run_local_batch
from tlm.store import ExecutionStore
from tlm.store.cache import CACHE_FILE
from tlm.testing import FakeOpenAIServer


class Counting:
    """The title script, counting the requests per posting."""

    def __init__(self) -> None:
        self.script = title_script("openai")
        self.seen: Counter[str] = Counter()

    def __call__(self, body: dict[str, Any]) -> Any:
        users = [m["content"] for m in body["messages"] if m["role"] == "user"]
        found = re.search(r"Posting (\d+)|REJECT", str(users[0]))
        self.seen[found.group(1) or "4" if found else "?"] += 1
        return self.script(body)


def _cached_execution_ids(data: Path) -> set[str]:
    """The executions the result cache's entries name (read from its file)."""
    if not (data / CACHE_FILE).is_file():
        return set()
    conn = sqlite3.connect(data / CACHE_FILE)
    try:
        return {json.loads(m)["execution_id"] for (m,) in conn.execute("SELECT meta FROM results")}
    finally:
        conn.close()


async def test_an_interrupted_batch_resumed_runs_only_the_missing_inputs(tmp_path: Path) -> None:
    count = 60
    inputs = write_postings(tmp_path / "in.jsonl", count)
    output = tmp_path / "out.jsonl"
    counting = Counting()
    async with FakeOpenAIServer(counting, latency_s=0.05) as server:
        env = _environment(tmp_path, catalog_data("openai", server.base_url))
        command = _tlm(
            "batch", "title_extraction", "--input", str(inputs), "--output", str(output),
            "--max-in-flight", "4",
        )  # fmt: skip
        process = await anyio.open_process(command, env=env, cwd=tmp_path)
        try:
            for _ in range(2400):  # mid-batch: some lines written, most inputs not yet run
                if output.is_file() and len(output.read_text(encoding="utf-8").splitlines()) >= 15:
                    break
                await anyio.sleep(0.025)
        finally:
            process.send_signal(signal.SIGKILL)  # a crash: nothing flushed, nothing cleaned up
            await process.wait()
        with ExecutionStore(tmp_path / "data" / "tlm.db") as store:
            records = store.query(task_id="title_extraction")
            first = {json.dumps(r.input) for r in records if r.status == "ok"}
        assert 15 <= len(first) < count
        # the killed run cached only outputs whose record it had committed, so the resumed run
        # cannot answer a missing input from the cache: it calls the model for each of them
        assert _cached_execution_ids(tmp_path / "data") <= {r.execution_id for r in records}
        before = Counter(counting.seen)
        resumed = await anyio.run_process(command, env=env, cwd=tmp_path, check=False)
        again = counting.seen - before
    assert resumed.returncode == 0, resumed.stderr.decode()
    postings = [json.loads(t) for t in inputs.read_text(encoding="utf-8").splitlines()]
    missing = {str(n) for n, p in enumerate(postings, 1) if json.dumps(p) not in first}
    assert set(again) == missing  # only the inputs without a record ran again …
    assert set(again.values()) == {1}  # … once each
    lines = read_output(output)
    assert sorted(line["line"] for line in lines) == list(range(1, count + 1))
    assert all(line["output"] == {"title": f"Title{line['line']}"} for line in lines)
    with ExecutionStore(tmp_path / "data" / "tlm.db") as store:
        records = store.query(task_id="title_extraction")
    assert len(records) == count  # nothing twice
    assert {r.execution_id for r in records} == {line["execution_id"] for line in lines}
    assert f"skipped {count - len(missing)}" in resumed.stderr.decode()


async def test_a_rerun_keeps_successes_and_retries_failures(tmp_path: Path) -> None:
    """Failed inputs run again; identical inputs on two lines need two successes; a changed
    input line is a new input; --fresh (resume=False) runs everything."""
    inputs = write_postings(tmp_path / "in.jsonl", 8, extra={4: '{"posting": "REJECT me"}'})
    text = inputs.read_text(encoding="utf-8")
    inputs.write_text(text + text.splitlines()[0] + "\n", encoding="utf-8")  # line 9 = line 1
    output = tmp_path / "out.jsonl"
    counting = Counting()
    async with FakeOpenAIServer(counting) as server:
        catalog = catalog_data("openai", server.base_url)
        async with make_engine(tmp_path / "data", catalog) as engine:
            first = await run_local_batch(engine, "title_extraction", inputs, output)
            assert (first.ok, first.failed, first.skipped) == (8, 1, 0)
            first_lines = {line["line"]: line for line in read_output(output)}
            counting.seen.clear()
            lines = inputs.read_text(encoding="utf-8").splitlines()
            lines[4] = json.dumps({"posting": "Posting 5: Title5 wanted, edited"})
            inputs.write_text("\n".join(lines) + "\n", encoding="utf-8")
            second = await run_local_batch(engine, "title_extraction", inputs, output)
            assert dict(counting.seen) == {"4": 1, "5": 1}  # the failure and the edited line
            assert (second.ok, second.failed, second.skipped) == (8, 1, 7)
            second_lines = {line["line"]: line for line in read_output(output)}
            assert sorted(second_lines) == list(range(1, 10))
            for number in (1, 2, 3, 6, 7, 8, 9):  # carried over verbatim
                assert second_lines[number] == first_lines[number]
            assert second_lines[1]["execution_id"] != second_lines[9]["execution_id"]
            output.write_text("", encoding="utf-8")  # an output lost: rebuilt from the records
            counting.seen.clear()
            third = await run_local_batch(engine, "title_extraction", inputs, output)
            assert dict(counting.seen) == {"4": 1}  # still failing: run again
            assert third.skipped == 8
            rebuilt = {line["line"]: line for line in read_output(output)}
            assert sorted(rebuilt) == list(range(1, 10))
            assert rebuilt[4]["error"] is not None
            for number in (2, 3, 5, 6, 7, 8):
                assert rebuilt[number]["execution_id"] == second_lines[number]["execution_id"]
                assert rebuilt[number]["output"] == second_lines[number]["output"]
            twins = {rebuilt[n]["execution_id"] for n in (1, 9)}  # the same input, two records
            assert twins == {second_lines[n]["execution_id"] for n in (1, 9)}
            counting.seen.clear()
            await run_local_batch(engine, "title_extraction", inputs, output, resume=False)
            assert sum(counting.seen.values()) == 9
            assert len(read_output(output)) == 9
