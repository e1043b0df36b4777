"""Running workflows on the engine: combinators, policies, cancellation, budget, spans, records."""

from __future__ import annotations

import asyncio
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.engine.conftest import ScriptedModels
from tlm.definition.model import Budget
from tlm.engine import Engine
from tlm.errors import BudgetExceeded, ExecutionError, ProviderError
from tlm.workflow import (
    Step,
    StepEvent,
    Workflow,
    WorkflowStore,
    branch,
    gather,
    keep,
    map_each,
    passthrough,
    step,
    task_step,
)

from .conftest import (
    DECOMPOSE,
    EXTRACT,
    SHOUT,
    DecomposeIn,
    DecomposeOut,
    ExtractIn,
    ExtractOut,
    Script,
    TitleIn,
)


async def skills_of(job: ExtractOut) -> list[DecomposeIn]:
    return [{"skill_name": s, "context": job["title"]} for s in job["skills"]]


async def flatten(parts: list[DecomposeOut]) -> list[str]:
    return [p for item in parts for p in item["parts"]]


async def flatten_some(parts: list[DecomposeOut | None]) -> list[str]:
    return [p for item in parts if item is not None for p in item["parts"]]


def decompose_all(names: list[str]) -> list[DecomposeIn]:
    return [{"skill_name": n} for n in names]


async def as_inputs(names: list[str]) -> list[DecomposeIn]:
    return decompose_all(names)


async def test_sequence_and_map_run_on_the_engine_and_are_recorded(
    engine: Engine, scripted: ScriptedModels, data_dir: Path
) -> None:
    flow = (
        task_step(EXTRACT)
        .then(step(skills_of))
        .then(map_each(task_step(DECOMPOSE), limit=2))
        .then(step(flatten))
    )
    result = await Workflow("skills", flow).run(engine, {"posting": "Engineer python sql"})

    assert result.output == ["python-1", "python-2", "sql-1", "sql-2"]
    run = result.run
    assert run.status == "succeeded"
    assert [s.path for s in run.steps] == [
        "t_extract",
        "skills_of",
        "t_decompose[0]",
        "t_decompose[1]",
        "flatten",
    ] or sorted(s.path for s in run.steps) == sorted(
        ["t_extract", "skills_of", "t_decompose[0]", "t_decompose[1]", "flatten"]
    )
    assert all(s.status == "succeeded" for s in run.steps)
    tasks = [s for s in run.steps if s.kind == "task"]
    assert all(s.execution_id and s.cost_usd > 0 for s in tasks)
    assert run.cost_usd == pytest.approx(sum(s.cost_usd for s in tasks))
    assert scripted.calls() == 3

    stored = WorkflowStore(data_dir / "workflows.db").get(result.run_id[:8])
    assert stored == run


async def test_pipe_operator_is_then(engine: Engine) -> None:
    flow = task_step(EXTRACT) | task_step(SHOUT).named("shout")
    result = await Workflow("shout", flow).run(engine, {"posting": "lead x"})
    assert result.output == {"title": "LEAD"}
    assert [s.path for s in result.run.steps] == ["t_extract", "shout"]


async def test_map_never_exceeds_its_limit_and_keeps_order(engine: Engine, script: Script) -> None:
    in_flight = 0
    peak = 0
    both = anyio.Event()

    async def gate(arg: str) -> None:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        if in_flight == 2:
            both.set()
        await both.wait()  # the first two wait for each other: proof they overlap
        await anyio.lowlevel.checkpoint()
        in_flight -= 1

    script.gate = gate
    flow = step(as_inputs) | map_each(task_step(DECOMPOSE), limit=2) | step(flatten)
    with anyio.fail_after(10):
        result = await Workflow("fan", flow).run(engine, ["a", "b", "c", "d", "e"])
    assert peak == 2
    assert result.output == [f"{x}-{i}" for x in "abcde" for i in (1, 2)]


async def test_branch_runs_only_the_chosen_arm(engine: Engine) -> None:
    def is_lead(job: ExtractOut) -> bool:
        return job["title"] == "lead"

    async def count(job: ExtractOut) -> int:
        return len(job["skills"])

    flow = task_step(EXTRACT) | branch(is_lead, task_step(SHOUT), step(count))
    workflow = Workflow("branchy", flow)

    led = await workflow.run(engine, {"posting": "lead go rust"})
    assert led.output == {"title": "LEAD"}
    assert [s.path for s in led.run.steps] == ["t_extract", "t_shout"]

    other = await workflow.run(engine, {"posting": "dev go rust"})
    assert other.output == 2
    assert [s.path for s in other.run.steps] == ["t_extract", "count"]


async def test_branch_accepts_an_async_predicate(engine: Engine) -> None:
    async def never(job: ExtractOut) -> bool:
        return False

    async def title(job: ExtractOut) -> str:
        return job["title"]

    flow = task_step(EXTRACT) | branch(never, task_step(SHOUT), step(title))
    assert (await Workflow("b", flow).run(engine, {"posting": "x y"})).output == "x"


async def test_gather_runs_steps_concurrently_into_a_tuple(engine: Engine, script: Script) -> None:
    arrived: set[str] = set()
    together = anyio.Event()

    async def gate(arg: str) -> None:
        arrived.add(arg)
        if len(arrived) == 2:
            together.set()
        await together.wait()

    script.gate = gate

    async def to_title(job: ExtractOut) -> TitleIn:
        return {"title": job["title"]}

    async def first_skill(job: ExtractOut) -> DecomposeIn:
        return {"skill_name": job["skills"][0]}

    async def extract_input(text: str) -> ExtractIn:
        return {"posting": text}

    same: Step[ExtractOut, ExtractOut] = passthrough()
    flow = (
        step(extract_input)
        | task_step(EXTRACT)
        | gather(
            same,
            step(to_title) | task_step(SHOUT),
            step(first_skill) | task_step(DECOMPOSE),
        )
    )
    script_gate_off_for_extract = script.gate

    async def gate_skip_extract(arg: str) -> None:
        if arg == "dev go":
            return
        await script_gate_off_for_extract(arg)

    script.gate = gate_skip_extract
    with anyio.fail_after(10):
        result = await Workflow("g", flow).run(engine, "dev go")
    job, shouted, parts = result.output
    assert job == {"title": "dev", "skills": ["go"]}
    assert shouted == {"title": "DEV"}
    assert parts == {"parts": ["go-1", "go-2"]}


async def test_after_orders_siblings_in_a_gather(engine: Engine) -> None:
    events: list[tuple[str, str]] = []

    def observe(event: StepEvent) -> None:
        events.append((event.kind, event.step.path))

    first = task_step(SHOUT, name="first")
    second = task_step(SHOUT, name="second").after(first)
    flow = gather(second, first)
    result = await Workflow("ordered", flow).run(engine, {"title": "x"}, observer=observe)
    assert result.output == ({"title": "X"}, {"title": "X"})
    assert events.index(("finished", "first")) < events.index(("started", "second"))


async def test_a_step_after_a_failed_collected_sibling_does_not_run(
    engine: Engine, scripted: ScriptedModels
) -> None:
    first = task_step(SHOUT, name="first").collect_errors()
    second = task_step(SHOUT, name="second").after(first)
    with pytest.raises(ExceptionGroup) as caught:
        await Workflow("blocked", gather(first, second)).run(engine, {"title": "boom"})
    messages = [str(e) for e in caught.value.exceptions]
    assert any("did not run: first failed" in m for m in messages)
    assert scripted.calls() == 1


# --- error policies, each with one failing branch --------------------------------------------


async def test_fail_fast_cancels_siblings_and_raises_the_error(
    engine: Engine, scripted: ScriptedModels
) -> None:
    flow = step(as_inputs) | map_each(task_step(DECOMPOSE), limit=3) | step(flatten)
    with anyio.fail_after(10), pytest.raises(ProviderError) as caught:
        await Workflow("ff", flow).run(engine, ["hang1", "boom", "hang2"])
    assert any("run " in note for note in caught.value.__notes__)
    assert sorted(scripted.cancelled) == ["model-a", "model-a"]
    store = WorkflowStore(engine.config.data_dir / "workflows.db")
    run = store.get(store.list()[0].run_id)
    assert run.status == "failed"
    statuses = {s.path: s.status for s in run.steps}
    assert statuses["t_decompose[1]"] == "failed"
    assert statuses["t_decompose[0]"] == statuses["t_decompose[2]"] == "cancelled"
    assert "flatten" not in statuses


async def test_skip_yields_none_for_the_failing_item(engine: Engine) -> None:
    flow = step(as_inputs) | map_each(task_step(DECOMPOSE).or_skip()) | step(flatten_some)
    result = await Workflow("skip", flow).run(engine, ["a", "boom", "c"])
    assert result.output == ["a-1", "a-2", "c-1", "c-2"]
    assert result.run.step("t_decompose[1]").status == "skipped"
    assert "scripted failure" in (result.run.step("t_decompose[1]").error or "")
    assert result.run.status == "succeeded"


async def test_default_replaces_the_failing_output(engine: Engine) -> None:
    fallback: DecomposeOut = {"parts": ["?"]}
    flow = step(as_inputs) | map_each(task_step(DECOMPOSE).or_default(fallback)) | step(flatten)
    result = await Workflow("default", flow).run(engine, ["a", "boom"])
    assert result.output == ["a-1", "a-2", "?"]
    assert result.run.step("t_decompose[1]").status == "defaulted"


async def test_collect_lets_siblings_finish_then_raises_every_error(
    engine: Engine, scripted: ScriptedModels
) -> None:
    flow = step(as_inputs) | map_each(task_step(DECOMPOSE).collect_errors()) | step(flatten)
    with pytest.raises(ExceptionGroup) as caught:
        await Workflow("collect", flow).run(engine, ["a", "boom1", "b", "boom2"])
    assert len(caught.value.exceptions) == 2
    assert all(isinstance(e, ProviderError) for e in caught.value.exceptions)
    assert scripted.cancelled == []
    run = WorkflowStore(engine.config.data_dir / "workflows.db").list()[0]
    full = WorkflowStore(engine.config.data_dir / "workflows.db").get(run.run_id)
    assert full.count("succeeded") == 3  # as_inputs and the two good items
    assert full.count("failed") == 2


async def test_a_function_step_failure_follows_the_policy(engine: Engine) -> None:
    async def explode(value: list[str]) -> list[str]:
        raise ValueError("bad value")

    result = await Workflow("f", step(explode).or_default(["fine"])).run(engine, ["x"])
    assert result.output == ["fine"]
    with pytest.raises(ValueError, match="bad value"):
        await Workflow("f", step(explode)).run(engine, ["x"])


# --- cancellation, budget, spans --------------------------------------------------------------


async def test_cancelling_a_workflow_cancels_every_step_and_leaks_no_task(
    engine: Engine, scripted: ScriptedModels, script: Script
) -> None:
    flow = step(as_inputs) | map_each(task_step(DECOMPOSE), limit=3)
    before = len(asyncio.all_tasks())
    started = anyio.Event()

    async def gate(arg: str) -> None:
        if len(script.started) == 3:
            started.set()

    script.gate = gate
    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            group.start_soon(Workflow("cancel", flow).run, engine, ["hang1", "hang2", "hang3"])
            await started.wait()
            group.cancel_scope.cancel()
    assert sorted(scripted.cancelled) == ["model-a"] * 3
    assert len(asyncio.all_tasks()) == before
    store = WorkflowStore(engine.config.data_dir / "workflows.db")
    run = store.get(store.list()[0].run_id)
    assert run.status == "cancelled"
    assert [s.status for s in run.steps if s.kind == "task"] == ["cancelled"] * 3


async def test_a_workflow_budget_stops_later_steps(
    engine: Engine, scripted: ScriptedModels
) -> None:
    flow = (
        task_step(SHOUT, name="one") | task_step(SHOUT, name="two") | task_step(SHOUT, name="three")
    )
    # Each call costs $0.0002; its worst case (1024 output tokens) does not fit, so each is
    # sent with max_tokens capped to the money left, and the third finds too little left.
    with pytest.raises(BudgetExceeded) as caught:
        await Workflow("budget", flow).run(
            engine, {"title": "x"}, budget=Budget(max_cost_usd=0.00041)
        )
    assert scripted.calls() == 2
    assert all(r.max_tokens is not None and r.max_tokens < 1024 for r in scripted.requests)
    assert "would exceed the cost budget" in str(caught.value)
    assert caught.value.spent_usd == pytest.approx(0.0004)
    run = WorkflowStore(engine.config.data_dir / "workflows.db").list()[0]
    assert run.status == "failed"
    assert run.cost_usd == pytest.approx(0.0004)


async def test_a_spent_budget_is_not_skipped_by_a_policy(
    engine: Engine, scripted: ScriptedModels
) -> None:
    flow = step(as_inputs) | map_each(task_step(DECOMPOSE).or_skip(), limit=1)
    with pytest.raises(BudgetExceeded):
        await Workflow("budget", flow).run(
            engine, ["a", "b", "c", "d"], budget=Budget(max_cost_usd=0.00041)
        )
    assert scripted.calls() == 2


async def test_a_workflow_deadline_becomes_budget_exceeded(engine: Engine) -> None:
    flow = step(as_inputs) | map_each(task_step(DECOMPOSE))
    with anyio.fail_after(10), pytest.raises(BudgetExceeded):
        await Workflow("late", flow).run(engine, ["hang"], budget=Budget(deadline_s=0.05))


async def test_task_executions_nest_under_the_workflow_span(
    engine: Engine, spans: InMemorySpanExporter
) -> None:
    flow = task_step(EXTRACT) | task_step(SHOUT)
    result = await Workflow("traced", flow).run(engine, {"posting": "a b"})
    engine.flush()
    finished = spans.get_finished_spans()
    (root,) = [s for s in finished if s.name == "tlm.workflow traced"]
    executions = [s for s in finished if s.name.startswith("tlm.execute ")]
    assert len(executions) == 2
    assert root.context is not None
    assert all(
        s.parent is not None and s.parent.span_id == root.context.span_id for s in executions
    )
    assert root.attributes is not None
    assert root.attributes["tlm.workflow.run_id"] == result.run_id
    assert root.attributes["tlm.workflow.status"] == "succeeded"
    assert engine.store is not None
    ids = {s.execution_id for s in result.run.steps}
    assert {r.execution_id for r in engine.store.query()} >= ids


async def test_a_workflow_is_repeatable(engine: Engine, scripted: ScriptedModels) -> None:
    workflow = Workflow("again", task_step(SHOUT))
    first = await workflow.run(engine, {"title": "a"})
    second = await workflow.run(engine, {"title": "b"})
    assert (first.output, second.output) == ({"title": "A"}, {"title": "B"})
    assert first.run_id != second.run_id


async def test_a_failed_execution_error_is_an_execution_error(engine: Engine) -> None:
    with pytest.raises(ExecutionError):
        await Workflow("x", task_step(SHOUT)).run(engine, {"title": "boom"})


async def test_keep_hands_the_input_on_beside_the_output(engine: Engine) -> None:
    flow = keep(task_step(SHOUT))
    result = await Workflow("keep", flow).run(engine, {"title": "a"})
    assert result.output == ({"title": "a"}, {"title": "A"})
