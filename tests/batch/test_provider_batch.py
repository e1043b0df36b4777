"""A provider batch end to end over real sockets: submission, restart, expiry, completion."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.batch.support import (
    PRICES,
    catalog_data,
    make_engine,
    no_sleep,
    read_output,
    server_for,
    title_script,
    write_inputs,
)
from tlm.batch import PollPolicy, resume_provider_batch, run_provider_batch

APIS = ["openai", "anthropic"]


def _batch_cost(usage: dict[str, int], api: str) -> float:
    if api == "anthropic":
        tokens_in, tokens_out = usage["input_tokens"], usage["output_tokens"]
    else:
        tokens_in, tokens_out = usage["prompt_tokens"], usage["completion_tokens"]
    return (tokens_in * PRICES["batch_in"] + tokens_out * PRICES["batch_out"]) / 1e6


def _answered_usage(server: object, api: str) -> dict[str, dict[str, int]]:
    """custom id → usage of the line that succeeded (the last one, after resubmissions)."""
    found: dict[str, dict[str, int]] = {}
    for batch in server.batches.values():  # type: ignore[attr-defined]
        for line in batch.results:
            if api == "anthropic":
                if line["result"]["type"] == "succeeded":
                    found[line["custom_id"]] = line["result"]["message"]["usage"]
            elif line["response"] is not None and line["response"]["status_code"] == 200:
                found[line["custom_id"]] = line["response"]["body"]["usage"]
    return found


@pytest.mark.parametrize("api", APIS)
async def test_a_thousand_inputs_survive_a_restart_and_partial_expiry(
    tmp_path: Path, api: str
) -> None:
    count = 1000
    inputs = write_inputs(tmp_path / "in.jsonl", count)
    output = tmp_path / "out.jsonl"
    poll = PollPolicy(initial_s=1.0, sleep=no_sleep)
    async with server_for(api, title_script(api), polls_to_complete=3) as server:
        catalog = catalog_data(api, server.base_url)
        # 1. submit, then "crash" (the engine goes away before any batch ended)
        async with make_engine(tmp_path / "data", catalog) as engine:
            report = await run_provider_batch(
                engine,
                "title_extraction",
                inputs,
                output,
                poll=poll,
                max_requests_per_batch=300,
                wait=False,
            )
        assert report.status == "running"
        assert report.finished == 0
        assert len(report.batches) == 4  # 300 + 300 + 300 + 100, split by the count limit
        first = sorted(server.submitted_custom_ids)
        assert len(first) == count
        # 2. part of it expires at the provider while we are away
        expiring = [f"tlm-{n}-0" for n in range(1, count + 1, 9)]
        server.expire(expiring)
        # 3. a new engine on the same data directory resumes: collects, resubmits, completes
        async with make_engine(tmp_path / "data", catalog) as engine:
            report = await resume_provider_batch(engine, report.run_id, poll=poll)
            store = engine.store
            assert store is not None
            records = store.query(task_id="title_extraction")
        usage = _answered_usage(server, api)
        resubmitted = [cid for cid in server.submitted_custom_ids if cid.endswith("-1")]
    assert report.status == "done"
    assert report.finished == count == report.ok
    assert len(resubmitted) == len(expiring)  # exactly the expired lines went out again
    assert len(report.batches) == 5
    # every input: one record, none twice, with its batch id and custom id, at the batch price
    assert len(records) == count
    assert len({r.execution_id for r in records}) == count
    by_line = {int(r.batch_custom_id.split("-")[1]): r for r in records if r.batch_custom_id}
    assert sorted(by_line) == list(range(1, count + 1))
    for line, record in by_line.items():
        assert record.status == "ok"
        assert record.output == {"title": f"Title{line}"}
        assert record.batch_id in report.batches
        assert record.performance.cost == pytest.approx(
            _batch_cost(usage[record.batch_custom_id], api)  # type: ignore[index]
        )
    expired_line = int(expiring[3].split("-")[1])
    assert by_line[expired_line].batch_custom_id == f"tlm-{expired_line}-1"
    # the output: one line per input, keyed by its line number, matching the records
    lines = read_output(output)
    assert sorted(line["line"] for line in lines) == list(range(1, count + 1))
    assert {line["execution_id"] for line in lines} == {r.execution_id for r in records}
    assert report.cost_usd == pytest.approx(sum(r.performance.cost for r in records))
