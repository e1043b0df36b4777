"""Local mode: engine.map over the file, one output line per input, a run-wide budget."""

from __future__ import annotations

from pathlib import Path

from tests.batch.support import catalog_data, make_engine, read_output, server_for, title_script
from tests.batch.support import write_inputs as write_postings
from tlm.batch import PollPolicy, run_local_batch


async def test_every_line_is_answered_synchronously_and_keyed_by_its_line(tmp_path: Path) -> None:
    inputs = write_postings(tmp_path / "in.jsonl", 200)
    text = inputs.read_text(encoding="utf-8").replace("\n", "\n\n", 3)  # blank lines: not inputs
    inputs.write_text(text, encoding="utf-8")
    async with server_for("openai", title_script("openai")) as server:
        async with make_engine(
            tmp_path / "data", catalog_data("openai", server.base_url)
        ) as engine:
            report = await run_local_batch(
                engine, "title_extraction", inputs, tmp_path / "out.jsonl", max_in_flight=8
            )
            assert engine.store is not None
            records = engine.store.count(task_id="title_extraction")
        assert not server.batches
    lines = read_output(tmp_path / "out.jsonl")
    numbers = [n for n, t in enumerate(text.splitlines(), 1) if t.strip()]
    assert sorted(line["line"] for line in lines) == numbers
    assert report.ok == records == 200
    for line in lines:
        posting_number = numbers.index(line["line"]) + 1
        assert line["output"] == {"title": f"Title{posting_number}"}


async def test_a_run_wide_budget_stops_spending_and_records_the_rest(tmp_path: Path) -> None:
    inputs = write_postings(tmp_path / "in.jsonl", 30)
    async with server_for("openai", title_script("openai")) as server:
        async with make_engine(
            tmp_path / "data", catalog_data("openai", server.base_url)
        ) as engine:
            report = await run_local_batch(
                engine,
                "title_extraction",
                inputs,
                tmp_path / "out.jsonl",
                options={"max_tokens": 50},
                max_cost=0.002,
                max_in_flight=1,
            )
            assert engine.store is not None
            recorded = engine.store.count()
    assert report.cost_usd <= 0.002
    assert 0 < report.ok < 30
    assert report.failed == 30 - report.ok
    assert recorded == 30
    errors = {
        line["error"]["type"] for line in read_output(tmp_path / "out.jsonl") if line["error"]
    }
    assert errors == {"BudgetExceeded"}


def test_polling_backs_off_while_nothing_changes() -> None:
    policy = PollPolicy(initial_s=5.0, max_s=60.0, factor=2.0)
    assert [policy.delay(n) for n in range(6)] == [5.0, 10.0, 20.0, 40.0, 60.0, 60.0]
