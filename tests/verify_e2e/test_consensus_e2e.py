"""Consensus through the Engine over real sockets: agreement, disagreement, early exit,
failing peers, the budget running out mid fan-out, and the semantic metric's embedding cost."""

from __future__ import annotations

import functools
from typing import Any

import anyio
import pytest

from tlm.catalog import Catalog
from tlm.errors import BudgetExceeded, ProviderUnavailable, VerificationFailed
from tlm.providers import pool as pool_module
from tlm.providers.openai_compat import OpenAICompatProvider
from tlm.providers.retry import RetryPolicy
from tlm.similarity import default_metrics
from tlm.testing.replies import hang, malformed, server_error

from .support import CALL_USD, EMBED_PRICE_PER_MTOK, EMBEDDER, POSTING, EngineFactory, Fleet, task
from .support import answer as reply_with

ENGINEER = {"title": "Senior Engineer"}


def consensus(fallback: Any = "fail", **parameters: Any) -> dict[str, Any]:
    params = {"min_models": 2, "max_models": 3, "similarity_threshold": 0.8, **parameters}
    return {"method": "consensus", "parameters": params, "fallback_strategy": fallback}


def always(value: Any) -> Any:
    return lambda body: reply_with(value)


@pytest.fixture
def instant_retries(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The pool's retry policy, real in every respect but its sleeps (recorded, not slept)."""
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(pool_module, "RetryPolicy", functools.partial(RetryPolicy, sleep=sleep))
    return slept


async def test_agreement_passes_with_two_models_and_pays_for_two(
    engine_factory: EngineFactory, fleet: Fleet
) -> None:
    fleet.handlers["model-a"] = always(ENGINEER)
    fleet.handlers["model-b"] = always({"title": "senior  engineer"})  # canonically equal
    async with engine_factory(task(consensus())) as engine:
        result = await engine.execute("title_extraction", POSTING)
        engine.flush()
        assert engine.store is not None
        record = engine.store.get(result.execution_id)

    assert result.status == "verified"
    assert result.output == ENGINEER  # the best-ranked model's wording
    assert result.verdict is not None
    assert result.verdict.passed is True
    assert result.verdict.confidence == pytest.approx(1.0)
    assert result.verdict.details["clusters"] == [["model-a", "model-b"]]
    assert result.models_used == ("model-a", "model-b")
    assert (fleet.calls("model-a"), fleet.calls("model-b"), fleet.calls("model-c")) == (1, 1, 0)
    assert result.cost_usd == pytest.approx(2 * CALL_USD)
    assert record is not None
    assert record.performance.cost == pytest.approx(2 * CALL_USD)
    assert record.verification_results is not None
    assert record.verification_results.passed is True
    # the peer was asked the task's own prompt, over the wire, under its provider's model name
    peer = fleet["model-b"].bodies[0]
    assert peer["model"] == "wire-model-b"
    assert peer["messages"][-1]["content"].endswith(POSTING["posting"])


@pytest.mark.parametrize(
    ("fallback", "status"),
    [
        ("use_highest_ranked_model", "fallback"),
        ({"strategy": "default_value", "value": {"title": "?"}}, "fallback"),
    ],
    ids=["highest_ranked", "default_value"],
)
async def test_disagreement_goes_to_the_fallback(
    engine_factory: EngineFactory, fleet: Fleet, fallback: Any, status: str
) -> None:
    fleet.handlers["model-a"] = always(ENGINEER)
    fleet.handlers["model-b"] = always({"title": "Pastry Chef"})
    fleet.handlers["model-c"] = always({"title": "Gardener"})
    async with engine_factory(task(consensus(fallback))) as engine:
        result = await engine.execute("title_extraction", POSTING)

    assert result.status == status
    assert result.fallback == (fallback if isinstance(fallback, str) else "default_value")
    expected = ENGINEER if fallback == "use_highest_ranked_model" else {"title": "?"}
    assert result.output == expected
    assert result.verdict is not None
    assert result.verdict.passed is False
    assert result.verdict.details["stopped"] == "no_quorum"
    assert len(result.verdict.details["clusters"]) == 3
    assert (fleet.calls("model-c"), fleet.calls("model-d")) == (1, 0)  # max_models is 3
    assert result.cost_usd == pytest.approx(3 * CALL_USD)


async def test_disagreement_with_fallback_fail_raises(
    engine_factory: EngineFactory, fleet: Fleet
) -> None:
    fleet.handlers["model-a"] = always(ENGINEER)
    fleet.handlers["model-b"] = always({"title": "Pastry Chef"})
    fleet.handlers["model-c"] = always({"title": "Gardener"})
    async with engine_factory(task(consensus())) as engine:
        with pytest.raises(VerificationFailed) as caught:
            await engine.execute("title_extraction", POSTING)
    assert caught.value.verdict is not None
    assert caught.value.verdict.details["stopped"] == "no_quorum"


async def test_early_exit_cancels_the_outstanding_call_and_does_not_pay_for_it(
    engine_factory: EngineFactory, fleet: Fleet
) -> None:
    c_started = anyio.Event()

    async def b_answers_once_c_is_on_the_wire(body: dict[str, Any]) -> Any:
        await c_started.wait()
        return reply_with(ENGINEER)

    def c_never_answers(body: dict[str, Any]) -> Any:
        c_started.set()
        return hang()

    fleet.handlers["model-a"] = always(ENGINEER)
    fleet.handlers["model-b"] = b_answers_once_c_is_on_the_wire
    fleet.handlers["model-c"] = c_never_answers
    definition = task(consensus(min_models=3, max_models=3, consensus_count=2))
    async with engine_factory(definition) as engine:
        result = await engine.execute("title_extraction", POSTING)
        engine.flush()
        assert engine.store is not None
        record = engine.store.get(result.execution_id)

    assert result.status == "verified"
    assert result.verdict is not None
    details = result.verdict.details
    assert details["cancelled"] == ["model-c"]
    assert details["decided_after"] == 2
    # the server saw model-c's request start, but it never completed ...
    assert fleet.calls("model-c") == 1
    # ... and the execution paid for exactly the two calls that completed
    assert result.cost_usd == pytest.approx(2 * CALL_USD)
    assert result.verdict.cost_usd == pytest.approx(CALL_USD)  # the verifier's own: model-b
    assert record is not None
    assert record.performance.cost == pytest.approx(2 * CALL_USD)
    spans = {s.attributes["tlm.request.model"]: s for s in fleet.model_spans() if s.attributes}
    assert "tlm.cost.usd" not in (spans["model-c"].attributes or {})
    assert not spans["model-c"].status.is_ok
    assert spans["model-b"].attributes is not None
    assert spans["model-b"].attributes["tlm.cost.usd"] == pytest.approx(CALL_USD)


async def test_every_peer_failing_is_a_failed_verdict_then_the_fallback(
    engine_factory: EngineFactory, fleet: Fleet, instant_retries: list[float]
) -> None:
    fleet.handlers["model-a"] = always(ENGINEER)
    fleet.handlers["model-b"] = lambda body: server_error(503)
    fleet.handlers["model-c"] = lambda body: malformed()
    definition = task(
        consensus("use_highest_ranked_model", models=["model-a", "model-b", "model-c"])
    )
    async with engine_factory(definition) as engine:
        result = await engine.execute("title_extraction", POSTING)

    assert result.status == "fallback"
    assert result.output == ENGINEER
    assert result.verdict is not None
    failures = {f["model"]: f["error"] for f in result.verdict.details["failures"]}
    assert failures == {"model-b": "ProviderUnavailable", "model-c": "MalformedResponse"}
    assert result.verdict.confidence <= 0.5
    # both are retried by the pool's policy (4 attempts each), and nothing failed is paid for
    assert (fleet.calls("model-b"), fleet.calls("model-c")) == (4, 4)
    assert len(instant_retries) == 6
    assert result.cost_usd == pytest.approx(CALL_USD)


async def test_every_model_failing_raises_the_provider_error_and_records_it(
    engine_factory: EngineFactory, fleet: Fleet, instant_retries: list[float]
) -> None:
    for model in ("model-a", "model-b", "model-c", "model-d"):
        fleet.handlers[model] = lambda body: server_error(500)
    async with engine_factory(task(consensus("use_highest_ranked_model"))) as engine:
        with pytest.raises(ProviderUnavailable) as caught:
            await engine.execute("title_extraction", POSTING)
        engine.flush()
        assert engine.store is not None
        execution_id = caught.value.execution_id
        assert execution_id is not None
        record = engine.store.get(execution_id)

    assert [fleet.calls(m) for m in ("model-a", "model-b", "model-c", "model-d")] == [4] * 4
    assert record is not None
    assert record.status == "error"
    assert record.performance.cost == 0.0


@pytest.mark.parametrize("fallback", ["fail", "use_highest_ranked_model"])
async def test_budget_running_out_mid_fan_out_stops_and_says_so(
    engine_factory: EngineFactory, fleet: Fleet, fallback: str
) -> None:
    fleet.handlers["model-a"] = always(ENGINEER)
    fleet.handlers["model-b"] = always({"title": "Pastry Chef"})
    fleet.handlers["model-c"] = always(ENGINEER)  # would make the quorum, if it were asked
    budget = {"max_cost_usd": 2 * CALL_USD + 1e-7}  # two calls, not a third
    async with engine_factory(task(consensus(fallback))) as engine:
        if fallback == "fail":
            with pytest.raises(BudgetExceeded) as caught:
                await engine.execute("title_extraction", POSTING, options={"budget": budget})
            error = caught.value
            assert "budget" in str(error)
            assert "would exceed the cost budget" in str(error)
            assert error.spent_usd == pytest.approx(2 * CALL_USD)
            assert error.partial == ENGINEER  # the unverified primary output
        else:
            result = await engine.execute("title_extraction", POSTING, options={"budget": budget})
            assert result.status == "fallback"
            assert result.output == ENGINEER
            assert result.verdict is not None
            assert result.verdict.details["stopped"] == "budget"
            assert result.verdict.details["reason"].startswith("budget: ")
            assert result.cost_usd == pytest.approx(2 * CALL_USD)

    assert fleet.calls("model-c") == 0  # the fan-out stopped before the call


def semantic_metrics(fleet: Fleet, provider: OpenAICompatProvider) -> Any:
    return default_metrics(embeddings=provider, embedding_model=EMBEDDER)


def embedding_usd(fleet: Fleet) -> float:
    """What the embedder's server was asked to embed, at the catalog's price."""
    tokens = sum(
        max(1, len(str(text).split())) for body in fleet[EMBEDDER].bodies for text in body["input"]
    )
    return tokens * EMBED_PRICE_PER_MTOK / 1e6


async def test_semantic_consensus_charges_the_embeddings_to_the_execution(
    engine_factory: EngineFactory, fleet: Fleet
) -> None:
    fleet.handlers["model-a"] = always(ENGINEER)
    fleet.handlers["model-b"] = always({"title": "Software Engineer"})  # same meaning
    catalog: Catalog = fleet.catalog()
    async with OpenAICompatProvider(
        name="embeddings", base_url=fleet[EMBEDDER].base_url, catalog=catalog
    ) as provider:
        definition = task(consensus(similarity_metric="semantic", similarity_threshold=0.9))
        metrics = semantic_metrics(fleet, provider)
        async with engine_factory(definition, metrics=metrics) as engine:
            result = await engine.execute("title_extraction", POSTING)
            engine.flush()
            assert engine.store is not None
            record = engine.store.get(result.execution_id)

    spent = embedding_usd(fleet)
    assert spent > 0
    assert len(fleet[EMBEDDER].requests) == 2  # one per new output
    assert result.status == "verified"
    assert result.verdict is not None
    assert result.verdict.details["metric_cost_usd"] == pytest.approx(spent)
    assert result.verdict.cost_usd == pytest.approx(CALL_USD + spent)
    assert result.cost_usd == pytest.approx(2 * CALL_USD + spent)
    assert record is not None
    assert record.performance.cost == pytest.approx(2 * CALL_USD + spent)


async def test_semantic_embeddings_that_overrun_the_budget_stop_the_execution(
    engine_factory: EngineFactory, fleet: Fleet
) -> None:
    fleet.handlers["model-a"] = always(ENGINEER)
    fleet.handlers["model-b"] = always(ENGINEER)
    async with OpenAICompatProvider(
        name="embeddings", base_url=fleet[EMBEDDER].base_url, catalog=fleet.catalog()
    ) as provider:
        definition = task(consensus(similarity_metric="semantic"))
        async with engine_factory(definition, metrics=semantic_metrics(fleet, provider)) as engine:
            budget = {"max_cost_usd": CALL_USD + 1e-4}
            with pytest.raises(BudgetExceeded) as caught:
                # the primary's call fits; its embedding (~$0.003) does not
                await engine.execute("title_extraction", POSTING, options={"budget": budget})

    spent = embedding_usd(fleet)
    assert spent > 1e-4
    assert caught.value.spent_usd == pytest.approx(CALL_USD + spent)
    assert fleet.calls("model-b") == 0


async def test_concurrent_calls_of_a_fan_out_share_one_budget(
    engine_factory: EngineFactory, fleet: Fleet
) -> None:
    """Two peers launched together may not both be admitted when the budget holds only one."""
    fleet.handlers["model-a"] = always(ENGINEER)
    fleet.handlers["model-b"] = always({"title": "Pastry Chef"})
    fleet.handlers["model-c"] = always({"title": "Gardener"})
    definition = task(
        consensus("use_highest_ranked_model", min_models=3, max_models=3, consensus_count=2)
    )
    budget = {"max_cost_usd": 2 * CALL_USD + 1e-7}
    async with engine_factory(definition) as engine:
        result = await engine.execute("title_extraction", POSTING, options={"budget": budget})

    assert (fleet.calls("model-b"), fleet.calls("model-c")) == (1, 0)
    assert result.cost_usd == pytest.approx(2 * CALL_USD)
    assert result.verdict is not None
    assert result.verdict.details["stopped"] == "budget"
    (failure,) = result.verdict.details["failures"]
    assert failure["model"] == "model-c"
    assert "reserved by the calls in flight" in failure["message"]
