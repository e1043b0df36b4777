"""Provider batches: budgets, per-line errors, synchronous re-asks and verification, failures,
cancelling, and the same validation and records as a synchronous execution."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
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
from tests.engine.conftest import make_task
from tlm.batch import (
    PollPolicy,
    batch_state,
    cancel_provider_batch,
    resume_provider_batch,
    run_provider_batch,
)
from tlm.batch.state import Item
from tlm.errors import BudgetExceeded, ConfigurationError

APIS = ["openai", "anthropic"]
POLL = PollPolicy(initial_s=1.0, sleep=no_sleep)


def _submission_paths(server: Any) -> list[str]:
    return [r.path for r in server.requests if r.path in ("/v1/files", "/v1/messages/batches")]


@pytest.mark.parametrize("api", APIS)
async def test_a_batch_over_budget_is_refused_up_front_with_the_estimate(
    tmp_path: Path, api: str
) -> None:
    inputs = write_inputs(tmp_path / "in.jsonl", 50)
    async with server_for(api, title_script(api)) as server:
        async with make_engine(tmp_path / "data", catalog_data(api, server.base_url)) as engine:
            with pytest.raises(BudgetExceeded, match=r"batch refused: 50 input\(s\), worst case "):
                await run_provider_batch(
                    engine, "title_extraction", inputs, tmp_path / "o.jsonl", max_cost=0.01
                )
            with batch_state(engine) as state:
                statuses = [run.status for run in state.runs()]
        assert _submission_paths(server) == []  # nothing was sent
    assert statuses == ["refused"]


@pytest.mark.parametrize("api", APIS)
async def test_the_worst_case_is_max_tokens_at_batch_prices_and_a_fitting_budget_runs(
    tmp_path: Path, api: str
) -> None:
    inputs = write_inputs(tmp_path / "in.jsonl", 20)
    async with server_for(api, title_script(api)) as server:
        async with make_engine(tmp_path / "data", catalog_data(api, server.base_url)) as engine:
            report = await run_provider_batch(
                engine,
                "title_extraction",
                inputs,
                tmp_path / "o.jsonl",
                options={"max_tokens": 100},
                max_cost=0.05,
                poll=POLL,
            )
    # each request may answer 100 tokens at $4/M: at least 20 * 100 * 4e-6 = $0.008 reserved
    assert report.worst_case_usd > 20 * 100 * PRICES["batch_out"] / 1e6
    assert report.worst_case_usd < 0.05
    assert report.status == "done"
    assert report.ok == 20
    assert 0 < report.cost_usd <= report.worst_case_usd


@pytest.mark.parametrize("api", APIS)
async def test_line_errors_reasks_and_bad_inputs_end_as_one_record_each(
    tmp_path: Path, api: str
) -> None:
    extra = {
        2: json.dumps({"posting": "Posting 2: Title2 REJECT"}),
        3: json.dumps({"posting": "Posting 3: Title3 FLAKY"}),
        4: json.dumps({"posting": "Posting 4: Title4 BROKEN"}),
        5: "{oops",
        6: json.dumps({"posting": ""}),
    }
    inputs = write_inputs(tmp_path / "in.jsonl", 8, extra=extra)
    output = tmp_path / "out.jsonl"
    async with server_for(api, title_script(api)) as server:
        async with make_engine(tmp_path / "data", catalog_data(api, server.base_url)) as engine:
            report = await run_provider_batch(engine, "title_extraction", inputs, output, poll=POLL)
            assert engine.store is not None
            records = {r.execution_id: r for r in engine.store.query()}
        synchronous = [
            r for r in server.requests if r.path.endswith(("/chat/completions", "/messages"))
        ]
    lines = {line["line"]: line for line in read_output(output)}
    assert sorted(lines) == list(range(1, 9))
    assert len(records) == 8
    by_line = {n: records[line["execution_id"]] for n, line in lines.items()}
    # a 400 on the line: the primary call's error, as a synchronous execution would meet it
    assert lines[2]["error"]["type"] == "BadRequest"
    assert by_line[2].status == "error"
    assert by_line[2].batch_custom_id == "tlm-2-0"
    # a 5xx on the line: resubmitted in the next provider batch, then fine
    assert by_line[3].output == {"title": "Title3"}
    assert by_line[3].batch_custom_id == "tlm-3-1"
    # prose from the batch: the re-ask is synchronous, at the standard price
    assert by_line[4].output == {"title": "Title4"}
    assert len(synchronous) == 1
    assert by_line[4].attempts == 2
    assert by_line[4].performance.cost > by_line[1].performance.cost
    # bad input never reaches a provider batch but is recorded, and the output says where
    assert lines[5]["error"]["type"] == "InputInvalid"
    assert ":5 column 2: invalid JSON" in lines[5]["error"]["message"]
    assert by_line[5].batch_id is None
    assert lines[6]["error"]["type"] == "InputInvalid"
    assert report.ok == 5
    assert report.failed == 3


@pytest.mark.parametrize("api", APIS)
async def test_provider_batches_are_split_by_the_catalogs_byte_limit(
    tmp_path: Path, api: str
) -> None:
    inputs = write_inputs(tmp_path / "in.jsonl", 25)
    max_bytes = 8_000
    async with server_for(api, title_script(api)) as server:
        catalog = catalog_data(api, server.base_url)
        catalog["batch_limits"] = {f"test-{api}": {"max_bytes": max_bytes}}
        async with make_engine(tmp_path / "data", catalog) as engine:
            report = await run_provider_batch(
                engine, "title_extraction", inputs, tmp_path / "o.jsonl", poll=POLL
            )
        if api == "openai":
            sizes = [
                len(content) for purpose, _, content in server.files.values() if purpose == "batch"
            ]
        else:
            sizes = [r.body["bytes"] for r in server.requests if r.path == "/v1/messages/batches"]
    assert report.ok == 25
    assert len(report.batches) == len(sizes) > 2
    assert all(size <= max_bytes for size in sizes)
    assert sum(len(b.lines) for b in server.batches.values()) == 25


@pytest.mark.parametrize("api", APIS)
async def test_a_failed_provider_batch_is_resubmitted(tmp_path: Path, api: str) -> None:
    inputs = write_inputs(tmp_path / "in.jsonl", 12)
    async with server_for(api, title_script(api), fail_batches=1) as server:
        async with make_engine(tmp_path / "data", catalog_data(api, server.base_url)) as engine:
            report = await run_provider_batch(
                engine, "title_extraction", inputs, tmp_path / "o.jsonl", poll=POLL
            )
            assert engine.store is not None
            custom_ids = sorted(r.batch_custom_id or "" for r in engine.store.query())
    assert report.ok == 12
    assert custom_ids == sorted(f"tlm-{n}-1" for n in range(1, 13))


@pytest.mark.parametrize("api", APIS)
async def test_an_unavailable_provider_is_retried_after_the_back_off(
    tmp_path: Path, api: str
) -> None:
    inputs = write_inputs(tmp_path / "in.jsonl", 5)
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    async with server_for(api, title_script(api)) as server:
        server.unavailable = 2
        async with make_engine(tmp_path / "data", catalog_data(api, server.base_url)) as engine:
            report = await run_provider_batch(
                engine,
                "title_extraction",
                inputs,
                tmp_path / "o.jsonl",
                poll=PollPolicy(initial_s=2.0, factor=3.0, sleep=sleep),
            )
        attempts = len(_submission_paths(server))
    assert report.ok == 5
    assert len(report.batches) == 1
    assert attempts == 3
    assert waits[:2] == [2.0, 6.0]  # back-off while nothing changes


@pytest.mark.parametrize("api", APIS)
async def test_verification_runs_on_batched_answers_with_synchronous_voters(
    tmp_path: Path, api: str
) -> None:
    consensus = {
        "method": "consensus",
        "parameters": {"similarity_threshold": 0.9, "min_models": 2, "max_models": 2},
        "fallback_strategy": "fail",
    }
    task = make_task(verification=consensus)
    inputs = write_inputs(tmp_path / "in.jsonl", 10)
    async with server_for(api, title_script(api)) as server:
        catalog = catalog_data(api, server.base_url, voter=True)
        config = {"models": ("batchable", "voter")}
        async with make_engine(tmp_path / "data", catalog, task=task, **config) as engine:
            report = await run_provider_batch(
                engine, "title_extraction", inputs, tmp_path / "o.jsonl", poll=POLL
            )
            assert engine.store is not None
            records = engine.store.query()
        voter_calls = [
            r
            for r in server.requests
            if isinstance(r.body, dict) and r.body.get("model") == f"{api}-voter"
        ]
    assert report.ok == 10
    assert len(voter_calls) == 10  # one synchronous second opinion per input
    for record in records:
        assert record.verification_results is not None
        assert record.verification_results.method_used == "consensus"
        assert record.verification_results.passed is True
        assert record.models_used == ("batchable", "voter")
        assert record.batch_id is not None


@pytest.mark.parametrize("api", APIS)
async def test_cancelling_cancels_the_provider_batches_and_records_every_input(
    tmp_path: Path, api: str
) -> None:
    inputs = write_inputs(tmp_path / "in.jsonl", 30)
    output = tmp_path / "out.jsonl"
    async with server_for(api, title_script(api), polls_to_complete=100) as server:
        async with make_engine(tmp_path / "data", catalog_data(api, server.base_url)) as engine:
            first = await run_provider_batch(
                engine,
                "title_extraction",
                inputs,
                output,
                poll=POLL,
                max_requests_per_batch=10,
                wait=False,
            )
            report = await cancel_provider_batch(engine, first.run_id, poll=POLL)
            assert engine.store is not None
            records = engine.store.query()
        cancelled = [r.path for r in server.requests if r.path.endswith("/cancel")]
    assert len(cancelled) == 3
    assert all(batch.cancelling for batch in server.batches.values())
    assert report.status == "cancelled"
    assert report.failed == 30
    assert len(records) == 30
    assert all(r.error is not None and "cancelled" in r.error.message for r in records)
    assert len(read_output(output)) == 30


@pytest.mark.parametrize("api", APIS)
async def test_an_interrupted_run_cancels_its_provider_batches(tmp_path: Path, api: str) -> None:
    inputs = write_inputs(tmp_path / "in.jsonl", 10)
    polled = anyio.Event()

    async def sleep(seconds: float) -> None:
        polled.set()
        await anyio.sleep(3600)

    async with server_for(api, title_script(api), polls_to_complete=100) as server:
        async with make_engine(tmp_path / "data", catalog_data(api, server.base_url)) as engine:
            async with anyio.create_task_group() as group:

                async def run() -> None:
                    await run_provider_batch(
                        engine,
                        "title_extraction",
                        inputs,
                        tmp_path / "o.jsonl",
                        poll=PollPolicy(sleep=sleep),
                    )

                group.start_soon(run)
                await polled.wait()
                group.cancel_scope.cancel()  # what Ctrl-C does to the run
            # the records of what was cancelled come with --resume
            report = await resume_provider_batch(engine, poll=POLL)
    assert all(batch.cancelling for batch in server.batches.values())
    assert report.status == "cancelled"
    assert report.finished == 10


async def test_no_batchable_model_is_a_configuration_error_before_anything_is_sent(
    tmp_path: Path,
) -> None:
    inputs = write_inputs(tmp_path / "in.jsonl", 3)
    async with server_for("openai", title_script("openai")) as server:
        catalog = catalog_data("openai", server.base_url, voter=True)
        async with make_engine(tmp_path / "data", catalog, models=("voter",)) as engine:
            with pytest.raises(ConfigurationError, match="has a batch API"):
                await run_provider_batch(engine, "title_extraction", inputs, tmp_path / "o.jsonl")
        assert _submission_paths(server) == []


async def test_a_run_interrupted_while_planning_is_planned_again_on_resume(
    tmp_path: Path,
) -> None:
    inputs = write_inputs(tmp_path / "in.jsonl", 6)
    async with server_for("openai", title_script("openai")) as server:
        async with make_engine(
            tmp_path / "data", catalog_data("openai", server.base_url)
        ) as engine:
            with batch_state(engine) as state:  # what a crash after planning 2 of 6 lines leaves
                state.create_run(
                    "bcrashed",
                    task_id="title_extraction",
                    task_version="1.0.0",
                    input_path=str(inputs),
                    output_path=str(tmp_path / "o.jsonl"),
                    options={},
                    max_cost=None,
                )
                state.add_items(
                    "bcrashed",
                    [
                        Item(
                            n, f"e{n}", "{}", "batchable", None, 0.0, "pending", None, None, None, 0
                        )
                        for n in (1, 2)
                    ],
                )
            report = await resume_provider_batch(engine, poll=POLL)
    assert report.run_id == "bcrashed"
    assert report.ok == report.inputs == 6
