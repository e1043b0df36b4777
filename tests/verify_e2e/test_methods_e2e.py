"""Hierarchical, external, chain and human verification through the Engine, over real sockets.

The models are fake OpenAI-compatible servers reached through the engine's provider pool; the
external endpoint is a real aiohttp server; the human decision comes from the real ``tlm review``
command in a subprocess, after the engine that queued the review was closed.
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import attrs
import pytest
from aiohttp import web

from tlm.engine import ExecutionResult
from tlm.errors import VerificationFailed
from tlm.verify.human import await_decision
from tlm.verify.review_queue import ReviewQueue

from .support import CALL_USD, POSTING, EngineFactory, Fleet, answer, task

ENGINEER = {"title": "Senior Engineer"}
PROMPT = "Is {{output}} the job title of this posting? {{posting}}"


def review(passed: bool, confidence: float, issues: tuple[str, ...] = ()) -> Any:
    return answer(
        {"passed": passed, "confidence": confidence, "issues": list(issues), "suggestions": []}
    )


def hierarchical(fallback: Any = "fail", **parameters: Any) -> dict[str, Any]:
    params = {"verification_prompt": PROMPT, "min_confidence": 0.8, **parameters}
    return {"method": "hierarchical", "parameters": params, "fallback_strategy": fallback}


# --- a real HTTP endpoint for external verification --------------------------------------------


@attrs.define
class Endpoint:
    """An aiohttp app on 127.0.0.1 answering POST /check with ``handler``."""

    handler: Callable[[dict[str, Any]], Awaitable[Any]]
    bodies: list[dict[str, Any]] = attrs.Factory(list)
    url: str = ""


@pytest.fixture
async def endpoint() -> AsyncIterator[Endpoint]:
    released = anyio.Event()

    async def never(body: dict[str, Any]) -> Any:
        await released.wait()
        return {"passed": True}

    state = Endpoint(never)

    async def check(request: web.Request) -> web.Response:
        body = await request.json()
        state.bodies.append(body)
        return web.json_response(await state.handler(body))

    app = web.Application()
    app.router.add_post("/check", check)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    state.url = f"http://127.0.0.1:{runner.addresses[0][1]}/check"
    try:
        yield state
    finally:
        released.set()
        await runner.cleanup()


def external(url: str, **parameters: Any) -> dict[str, Any]:
    return {"method": "external", "parameters": {"endpoint": url, **parameters}}


# --- hierarchical ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("garbage", "error"),
    [
        ("Looks fine to me!", "reviewer reply is not JSON"),
        ({"passed": "yes", "confidence": 2}, "does not fit the verdict schema"),
    ],
    ids=["prose", "wrong_shape"],
)
async def test_a_reviewer_answering_garbage_is_a_non_decisive_failure(
    engine_factory: EngineFactory, fleet: Fleet, garbage: Any, error: str
) -> None:
    fleet["model-a"].push(answer(ENGINEER))
    fleet["model-b"].push(answer(garbage))
    definition = task(hierarchical("use_highest_ranked_model"))
    async with engine_factory(definition) as engine:
        result = await engine.execute("title_extraction", POSTING)

    assert result.status == "fallback"
    assert result.output == ENGINEER
    assert result.verdict is not None
    assert result.verdict.passed is False
    assert result.verdict.decisive is False
    assert error in result.verdict.details["error"]
    assert fleet["model-b"].bodies[0]["model"] == "wire-model-b"  # a model other than the primary
    assert result.cost_usd == pytest.approx(2 * CALL_USD)  # the garbage is paid for too


async def test_a_correction_round_sends_the_issues_back_and_reviews_again(
    engine_factory: EngineFactory, fleet: Fleet
) -> None:
    fleet["model-a"].push(answer({"title": "Engineer"}), answer(ENGINEER))
    fleet["model-b"].push(
        review(False, 0.9, ("the title lacks the seniority",)),
        review(True, 0.95),
    )
    definition = task(hierarchical(correction_round=True))
    async with engine_factory(definition) as engine:
        result = await engine.execute("title_extraction", POSTING)

    assert result.status == "verified"
    assert result.output == ENGINEER  # the corrected output
    assert result.verdict is not None
    assert result.verdict.details["corrected"] is True
    assert [r["passed"] for r in result.verdict.details["rounds"]] == [False, True]
    second_ask = fleet["model-a"].bodies[1]["messages"][-1]["content"]
    assert "the title lacks the seniority" in second_ask
    second_review = fleet["model-b"].bodies[1]["messages"][-1]["content"]
    assert '"Senior Engineer"' in second_review
    assert result.cost_usd == pytest.approx(4 * CALL_USD)


async def test_a_rejected_correction_falls_back(
    engine_factory: EngineFactory, fleet: Fleet
) -> None:
    fleet["model-a"].push(answer({"title": "Engineer"}), answer({"title": "Engineer!"}))
    fleet["model-b"].push(review(False, 0.9, ("no seniority",)), review(False, 0.9))
    definition = task(hierarchical(correction_round=True))
    async with engine_factory(definition) as engine:
        with pytest.raises(VerificationFailed) as caught:
            await engine.execute("title_extraction", POSTING)
    assert caught.value.verdict is not None
    assert caught.value.verdict.details["corrected"] is True


# --- external ----------------------------------------------------------------------------------


async def test_an_external_endpoint_timing_out_is_a_non_decisive_failure(
    engine_factory: EngineFactory, fleet: Fleet, endpoint: Endpoint
) -> None:
    fleet["model-a"].push(answer(ENGINEER))
    spec = {
        **external(endpoint.url, timeout_s=0.05, retries=1),
        "fallback_strategy": "use_highest_ranked_model",
    }
    async with engine_factory(task(spec)) as engine:
        result = await engine.execute("title_extraction", POSTING)

    assert result.status == "fallback"
    assert result.verdict is not None
    assert result.verdict.passed is False
    assert result.verdict.decisive is False
    assert "timed out after 0.05 s (2 attempt(s))" in result.verdict.details["error"]
    assert len(endpoint.bodies) == 2  # the first attempt and one retry
    assert endpoint.bodies[0]["output"] == ENGINEER
    assert endpoint.bodies[0]["execution_id"] == result.execution_id
    assert result.cost_usd == pytest.approx(CALL_USD)


async def test_an_external_endpoint_verdict_is_used(
    engine_factory: EngineFactory, fleet: Fleet, endpoint: Endpoint
) -> None:
    async def judge(body: dict[str, Any]) -> Any:
        return {"passed": body["output"] == ENGINEER, "confidence": 0.7, "issues": []}

    endpoint.handler = judge
    fleet["model-a"].push(answer(ENGINEER))
    async with engine_factory(task(external(endpoint.url))) as engine:
        result = await engine.execute("title_extraction", POSTING)
    assert result.status == "verified"
    assert result.verdict is not None
    assert result.verdict.confidence == 0.7


# --- chain -------------------------------------------------------------------------------------


def chain(*steps: dict[str, Any]) -> dict[str, Any]:
    return {"method": "chain", "parameters": {"steps": list(steps)}, "fallback_strategy": "fail"}


CONSENSUS_STEP = {"method": "consensus", "parameters": {"min_models": 2, "max_models": 3}}
HIERARCHICAL_STEP = {"method": "hierarchical", "parameters": {"verification_prompt": PROMPT}}


async def test_a_chain_stops_at_the_first_decisive_verdict(
    engine_factory: EngineFactory, fleet: Fleet, endpoint: Endpoint
) -> None:
    async def approve(body: dict[str, Any]) -> Any:
        return {"passed": True, "confidence": 0.9}

    endpoint.handler = approve
    fleet["model-a"].push(answer(ENGINEER))
    # listed dearest first: the chain runs them cheapest first, so external decides alone
    definition = task(chain(CONSENSUS_STEP, HIERARCHICAL_STEP, external(endpoint.url)))
    async with engine_factory(definition) as engine:
        result = await engine.execute("title_extraction", POSTING)

    assert result.status == "verified"
    assert result.verdict is not None
    assert result.verdict.details["decided_by"] == "external"
    assert [s["method"] for s in result.verdict.details["steps"]] == ["external"]
    assert [fleet.calls(m) for m in ("model-b", "model-c")] == [0, 0]
    assert result.cost_usd == pytest.approx(CALL_USD)


async def test_a_chain_moves_past_a_timed_out_endpoint_to_the_reviewer(
    engine_factory: EngineFactory, fleet: Fleet, endpoint: Endpoint
) -> None:
    fleet["model-a"].push(answer(ENGINEER))
    fleet["model-b"].push(review(True, 0.9))
    step = external(endpoint.url, timeout_s=0.05, retries=0)
    definition = task(chain(CONSENSUS_STEP, HIERARCHICAL_STEP, step))
    async with engine_factory(definition) as engine:
        result = await engine.execute("title_extraction", POSTING)

    assert result.status == "verified"
    assert result.verdict is not None
    steps = result.verdict.details["steps"]
    assert [(s["method"], s["decisive"]) for s in steps] == [
        ("external", False),
        ("hierarchical", True),
    ]
    assert result.verdict.details["decided_by"] == "hierarchical"
    assert fleet.calls("model-b") == 1  # the reviewer; consensus never asked anyone
    assert fleet.calls("model-c") == 0
    assert result.cost_usd == pytest.approx(2 * CALL_USD)
    assert result.verdict.cost_usd == pytest.approx(CALL_USD)


# --- human -------------------------------------------------------------------------------------

HUMAN = {"method": "human", "parameters": {"wait": False}, "fallback_strategy": "fail"}


async def tlm_review(data_dir: Path, *args: str) -> str:
    """Run the real ``tlm review`` command in a subprocess; return its output."""
    command = [
        sys.executable,
        "-c",
        "from tlm.cli import main; main()",
        "review",
        "--data-dir",
        str(data_dir),
        *args,
    ]
    done = await anyio.run_process(command, check=False)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode()


async def queue_for_review(
    engine_factory: EngineFactory, fleet: Fleet, data_dir: Path
) -> ExecutionResult:
    fleet["model-a"].push(answer(ENGINEER))
    async with engine_factory(task(HUMAN), data_dir=data_dir) as engine:
        result = await engine.execute("title_extraction", POSTING)
    assert result.status == "pending"
    assert result.verdict is not None
    assert result.verdict.passed is None
    return result


async def test_a_human_approval_after_a_restart_reaches_a_waiting_engine(
    engine_factory: EngineFactory, fleet: Fleet, tmp_path: Path
) -> None:
    data_dir = tmp_path / "shared"
    pending = await queue_for_review(engine_factory, fleet, data_dir)  # that engine is closed
    review_id = pending.verdict.details["review_id"] if pending.verdict else None
    assert isinstance(review_id, str)

    decided: list[ExecutionResult] = []
    async with engine_factory(task(HUMAN), data_dir=data_dir) as engine:
        assert engine.review_queue is not None
        engine.review_queue.poll_interval_s = 0.02
        async with anyio.create_task_group() as group:

            async def wait() -> None:
                decided.append(await engine.wait_for_review(pending, timeout_s=30))

            group.start_soon(wait)
            listed = await tlm_review(data_dir, "list", "--json")
            assert review_id in listed
            await tlm_review(data_dir, "approve", review_id, "--note", "right title")
        engine.flush()
        assert engine.store is not None
        record = engine.store.get(pending.execution_id)

    (result,) = decided
    assert result.status == "verified"
    assert result.output == ENGINEER
    assert result.verdict is not None
    assert result.verdict.passed is True
    assert result.verdict.details["action"] == "approve"
    assert result.verdict.details["note"] == "right title"
    # the decision is recorded as human feedback on the execution
    assert record is not None
    assert [(f.correct, f.source) for f in record.feedback] == [(True, "human")]


async def test_a_human_edit_made_while_nothing_runs_is_seen_by_a_new_queue(
    engine_factory: EngineFactory, fleet: Fleet, tmp_path: Path
) -> None:
    data_dir = tmp_path / "shared"
    pending = await queue_for_review(engine_factory, fleet, data_dir)
    assert pending.verdict is not None
    review_id = pending.verdict.details["review_id"]
    edited = {"title": "Senior Software Engineer"}
    await tlm_review(data_dir, "edit", review_id, "--output", json.dumps(edited))

    queue = ReviewQueue.in_data_dir(data_dir)
    verdict = await await_decision(queue, review_id, timeout_s=5)
    assert verdict.passed is True
    assert verdict.output == edited
    assert verdict.details["action"] == "edit"
