"""Replay evaluation over a store seeded with recorded executions and human references."""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest

from tlm.errors import TLMError
from tlm.rollout.replay import run_replay, similarity_settings, start_replay
from tlm.rollout.report import EvalReport, summarise
from tlm.rollout.state import EvalRun, RolloutStore
from tlm.testing import FakeOpenAIServer
from tlm.verify.review_queue import ReviewQueue

from .support import TASK, Behaviour, engine, posting, true_title

SEEDED = 12
EDITED = (3, 7)
"""Postings the current version answered wrongly, corrected by a person in review."""
UNJUDGED = (10, 11)
"""Postings a person marked incorrect without a correction: no reference, so the current version
is re-run beside the new one."""


def v1_with_mistakes(title: str, calls: int) -> str:
    return "Unknown" if calls in EDITED else title


async def seed(server: FakeOpenAIServer, behaviour: Behaviour, data_dir: Path) -> None:
    """Record 12 executions of 1.0.0; people approve 8, correct 2 in review, reject 2."""
    behaviour.v1 = v1_with_mistakes
    async with engine(server, data_dir) as seeding:
        results = [await seeding.execute(TASK, posting(i), version="1.0.0") for i in range(SEEDED)]
        assert seeding.store is not None
        queue = ReviewQueue.in_data_dir(data_dir)
        for index, result in enumerate(results):
            if index in UNJUDGED:
                await seeding.feedback(result.execution_id, correct=False)
            elif index in EDITED:
                review = queue.enqueue(
                    result.execution_id, TASK, "1.0.0", posting(index), result.output
                )
                queue.edit(review, {"title": true_title(index)})
            else:
                await seeding.feedback(result.execution_id, correct=True)
    behaviour.v1 = lambda title, calls: title
    behaviour.calls.update({"1.0.0": 0, "1.1.0": 0})


async def replay(
    server: FakeOpenAIServer,
    data_dir: Path,
    *,
    max_cost_usd: float | None = None,
    concurrency: int = 4,
) -> tuple[EvalReport, RolloutStore, str]:
    store = RolloutStore.in_data_dir(data_dir)
    async with engine(server, data_dir) as evaluating:
        run = await start_replay(
            evaluating, store, TASK, "1.1.0", "1.0.0", max_cost_usd=max_cost_usd
        )
        run = await run_replay(evaluating, store, run, concurrency=concurrency)
        _, threshold = similarity_settings(evaluating.definition(TASK, "1.1.0"))
    return summarise(run, store.items(run.id), threshold=threshold), store, run.id


async def test_a_worse_version_is_caught_with_its_worst_inputs(tmp_path: Path) -> None:
    behaviour = Behaviour()
    wrong = {2, 4, 5, 6, 10}  # Analyst, Nurse, Chef and Pilot postings: 1.1.0 says "Janitor"
    async with FakeOpenAIServer(behaviour) as server:
        await seed(server, behaviour, tmp_path)
        behaviour.v2 = lambda title, calls: (
            "Janitor" if title in {"Analyst", "Nurse", "Chef", "Pilot"} else title
        )
        report, _, _ = await replay(server, tmp_path)

    assert not report.recommended, (report.new, report.current)
    assert any("agreement" in reason for reason in report.reasons)
    # The current version agrees with every approved reference and misses the two it got wrong
    # (corrected in review); the unjudged inputs are compared with its re-run instead.
    assert report.current.compared == SEEDED - len(UNJUDGED)
    assert report.current.agreed == SEEDED - len(UNJUDGED) - len(EDITED)
    assert report.new.compared == SEEDED
    assert report.new.agreed == SEEDED - len(wrong)
    assert {d.input["posting"] for d in report.differences} == {
        posting(i)["posting"] for i in wrong
    }
    assert all(d.got == {"title": "Janitor"} for d in report.differences)
    assert sorted(d.compared_with for d in report.differences) == [
        "current",  # posting 10 has no reference: compared with 1.0.0 re-run
        *["reference (approved)"] * 4,
    ]
    similarities = [d.similarity or 0.0 for d in report.differences]
    assert similarities == sorted(similarities)


async def test_a_cheaper_version_as_good_is_recommended(tmp_path: Path) -> None:
    behaviour = Behaviour()
    async with FakeOpenAIServer(behaviour) as server:
        await seed(server, behaviour, tmp_path)
        report, store, run_id = await replay(server, tmp_path)

    assert report.recommended, report.reasons
    assert report.new.agreed == report.new.compared == SEEDED
    # 1.0.0 got the two edited postings wrong: the new version is right more often.
    assert report.current.agreement is not None
    assert report.new.agreement == 1.0 > report.current.agreement
    assert report.new.mean_cost_usd is not None
    assert report.current.mean_cost_usd is not None
    assert report.new.mean_cost_usd < report.current.mean_cost_usd
    assert report.differences == []
    # New version once per input, the current one re-run only where no reference exists.
    assert behaviour.calls == {"1.1.0": SEEDED, "1.0.0": len(UNJUDGED)}
    kinds = sorted(str(item.reference_kind) for item in store.items(run_id))
    assert kinds == sorted(["approved"] * 8 + ["edited"] * 2 + ["None"] * 2)
    assert store.run(run_id).status == "done"
    # Replayed executions are ordinary records, tagged with their run.
    from tlm.store.sqlite import ExecutionStore

    with ExecutionStore(tmp_path / "tlm.db") as log:
        for item in store.items(run_id):
            assert item.outcome is not None
            record = log.get(item.outcome["new"]["execution_id"])
            assert record is not None
            assert record.metadata == {"tlm.eval_run": run_id}
            assert record.tags == ("tlm-eval",)


async def test_a_budget_stops_the_run_and_resuming_runs_only_what_is_missing(
    tmp_path: Path,
) -> None:
    behaviour = Behaviour()
    async with FakeOpenAIServer(behaviour) as server:
        await seed(server, behaviour, tmp_path)
        # Each call costs $0.00022 but may be reserved at its worst case (1,024 output tokens)
        # first: $0.0024 admits some of the 12 calls and not all.
        budget = 0.0024
        report, store, run_id = await replay(server, tmp_path, max_cost_usd=budget, concurrency=1)
        assert store.run(run_id).status == "stopped"
        assert 0 < report.pending < SEEDED
        done_first = SEEDED - report.pending
        assert store.run(run_id).spent_usd <= budget

        async with engine(server, tmp_path) as resuming:
            run = store.run(run_id[:10])
            run = await run_replay(resuming, store, _with_budget(run, None))
        assert run.status == "done"
    items = store.items(run_id)
    assert all(item.status == "done" for item in items)
    executed = [item.outcome["new"]["execution_id"] for item in items if item.outcome]
    assert len(executed) == len(set(executed)) == SEEDED
    # What ran before the stop did not run again.
    assert behaviour.calls["1.1.0"] == SEEDED
    assert done_first >= 1


def _with_budget(run: EvalRun, limit: float | None) -> EvalRun:
    return attrs.evolve(run, settings={**run.settings, "max_cost_usd": limit})


async def test_no_recorded_input_is_a_clear_error(tmp_path: Path) -> None:
    behaviour = Behaviour()
    async with FakeOpenAIServer(behaviour) as server, engine(server, tmp_path) as empty:
        store = RolloutStore.in_data_dir(tmp_path)
        with pytest.raises(TLMError, match="no recorded input of title_extraction to replay"):
            await start_replay(empty, store, TASK, "1.1.0", "1.0.0")
