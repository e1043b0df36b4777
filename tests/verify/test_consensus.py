"""Consensus verification with in-process fake candidate sources driven by anyio events."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import attrs
import pytest

from tlm.definition.model import ConsensusParams, IOSpec, PromptVariant, TaskDefinition
from tlm.errors import (
    BudgetExceeded,
    ConfigurationError,
    ExecutionError,
    OutputInvalid,
    Problem,
    ProviderTimeout,
    ProviderUnavailable,
)
from tlm.providers.base import ChatResponse, EmbeddingResponse
from tlm.similarity import (
    ExactSimilarity,
    SemanticSimilarity,
    SequenceSimilarity,
    SimilarityMetric,
    StructuredSimilarity,
)
from tlm.verify.base import Candidate, Verdict, VerificationContext, Verifier
from tlm.verify.consensus import ConsensusVerifier

REPO = Path(__file__).resolve().parents[2]


@attrs.define
class Script:
    """How a fake model answers."""

    output: Any = None
    error: ExecutionError | None = None
    gate: anyio.Event | None = None
    """When set, the model answers only once this event is set."""
    then_set: anyio.Event | None = None
    """Set after answering (or failing): lets one model's answer release another's."""
    cost: float = 0.01


@attrs.define
class FakeSource:
    """A ``CandidateSource`` that answers from scripts and records what happened to each call."""

    scripts: Mapping[str, Script]
    started: list[str] = attrs.field(factory=list)
    completed: list[str] = attrs.field(factory=list)
    cancelled: list[str] = attrs.field(factory=list)
    any_started: anyio.Event = attrs.field(factory=anyio.Event)

    async def __call__(self, model: str, /, *, feedback: str | None = None) -> Candidate:
        self.started.append(model)
        self.any_started.set()
        script = self.scripts[model]
        try:
            if script.gate is not None:
                await script.gate.wait()
            else:
                await anyio.lowlevel.checkpoint()
        except anyio.get_cancelled_exc_class():
            self.cancelled.append(model)
            raise
        if script.then_set is not None:
            script.then_set.set()
        if script.error is not None:
            raise script.error
        self.completed.append(model)
        return Candidate(model, script.output, cost_usd=script.cost)


async def _no_ask(
    model: str, prompt: str, /, *, output_schema: Mapping[str, Any] | None = None
) -> ChatResponse:
    raise AssertionError("consensus never asks free-form questions")


TASK = TaskDefinition(
    id="job_detail_extraction",
    name="Job detail extraction",
    description="Extract job details.",
    version="1.0.0",
    input=IOSpec(schema={"type": "object"}),
    output=IOSpec(schema={"type": "object"}),
    prompts=(
        PromptVariant(
            id="default",
            text="Extract {{job_posting}}",
            template_variables=("job_posting",),
            usage_conditions={"default": True},
        ),
    ),
)


def context(
    source: FakeSource,
    primary: tuple[str, Any],
    ranked: Sequence[str],
    *,
    primary_cost: float = 0.02,
) -> VerificationContext:
    return VerificationContext(
        task=TASK,
        input={"job_posting": "..."},
        primary=Candidate(primary[0], primary[1], cost_usd=primary_cost),
        ranked_models=tuple(ranked),
        source=source,
        ask=_no_ask,
        execution_id="exec-1",
    )


def verifier(metric: SimilarityMetric | None = None, **params: Any) -> ConsensusVerifier:
    return ConsensusVerifier(ConsensusParams(**params), metric or ExactSimilarity())


def unavailable(model: str) -> ProviderUnavailable:
    return ProviderUnavailable("overloaded", provider="fake", model=model, status=503)


def budget_gone() -> BudgetExceeded:
    return BudgetExceeded("cost budget exhausted", spent_usd=0.05, elapsed_s=1.0, attempts=3)


async def test_agreement_passes_with_the_primary_as_first_vote() -> None:
    source = FakeSource({"b": Script({"skill": "python"}), "c": Script({"skill": "java"})})
    verdict = await verifier(min_models=2, max_models=3).verify(
        context(source, ("a", {"skill": "python"}), ["a", "b", "c"])
    )
    assert verdict.passed is True
    assert verdict.method == "consensus"
    assert verdict.confidence == 1.0
    assert verdict.output == {"skill": "python"}
    assert source.started == ["b"]  # c was never needed
    assert [c.model for c in verdict.candidates] == ["b"]
    assert verdict.cost_usd == pytest.approx(0.01)
    details = verdict.details
    assert details["votes"] == [
        {"model": "a", "cluster": 0, "cost_usd": 0.02, "primary": True},
        {"model": "b", "cluster": 0, "cost_usd": 0.01, "primary": False},
    ]
    assert details["clusters"] == [["a", "b"]]
    assert details["scores"] == [{"models": ["a", "b"], "score": 1.0}]
    assert details["decided_after"] == 2
    assert details["stopped"] == "quorum"
    assert details["representative"] == "a"
    assert details["failures"] == []
    assert details["cancelled"] == []
    assert details["late"] == []
    assert verdict.decisive
    json.dumps(dict(details))  # details are plain JSON


async def test_disagreement_adds_models_up_to_max_and_fails() -> None:
    source = FakeSource({m: Script(m.upper()) for m in "bcde"})
    verdict = await verifier(min_models=2, max_models=3).verify(
        context(source, ("a", "A"), ["a", "b", "c", "d", "e"])
    )
    assert verdict.passed is False
    assert source.started == ["b", "c"]  # max_models=3 votes in total, the primary included
    assert verdict.details["clusters"] == [["a"], ["b"], ["c"]]
    assert verdict.details["stopped"] == "no_quorum"
    assert verdict.details["decided_after"] == 3
    assert verdict.output is None
    assert verdict.confidence == pytest.approx(1 / 3)
    assert verdict.cost_usd == pytest.approx(0.02)


async def test_a_third_model_breaks_the_tie_and_the_best_ranked_member_represents() -> None:
    source = FakeSource({"b": Script("Berlin!"), "c": Script("berlin")})
    verdict = await verifier(SequenceSimilarity(), similarity_threshold=0.8).verify(
        context(source, ("a", "Paris"), ["c", "a", "b"])
    )
    assert verdict.passed is True
    # c is ranked above b, so it is asked first and represents the winning cluster.
    assert verdict.details["clusters"] == [["a"], ["c", "b"]]
    assert verdict.details["representative"] == "c"
    assert verdict.output == "berlin"
    # 2 of 3 votes agree, at difflib ratio 12/13 between "berlin!" and "berlin".
    assert verdict.confidence == pytest.approx(2 / 3 * 12 / 13)


async def test_representative_is_the_highest_ranked_model_even_above_the_primary() -> None:
    source = FakeSource({"top": Script("hello world!")})
    verdict = await verifier(SequenceSimilarity(), similarity_threshold=0.8).verify(
        context(source, ("second", "Hello world"), ["top", "second"])
    )
    assert verdict.passed is True
    assert verdict.output == "hello world!"
    assert verdict.details["representative"] == "top"


async def test_early_exit_cancels_the_outstanding_call_which_is_not_costed() -> None:
    never = anyio.Event()
    source = FakeSource({"b": Script("x", cost=0.01), "c": Script("x", gate=never, cost=0.5)})
    verdict = await verifier(min_models=3, max_models=3, consensus_count=2).verify(
        context(source, ("a", "x"), ["a", "b", "c"])
    )
    assert verdict.passed is True
    assert source.started == ["b", "c"]  # both launched concurrently
    assert source.cancelled == ["c"]
    assert "c" not in source.completed
    assert verdict.details["cancelled"] == ["c"]
    assert [c.model for c in verdict.candidates] == ["b"]
    assert verdict.cost_usd == pytest.approx(0.01)
    assert verdict.details["decided_after"] == 2


async def test_every_returned_call_is_reported_and_costed_and_no_other() -> None:
    # b and c are released together: c's answer may be cancelled or arrive after the decision.
    # Either way the bill is exactly the calls that returned, and none is silently dropped.
    gate = anyio.Event()
    source = FakeSource(
        {"b": Script("x", gate=gate, cost=0.01), "c": Script("x", gate=gate, cost=0.5)}
    )
    consensus: Verifier = verifier(min_models=3, max_models=3, consensus_count=2)

    async def release() -> None:
        await source.any_started.wait()
        gate.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(release)
        verdict = await consensus.verify(context(source, ("a", "x"), ["a", "b", "c"]))
    assert verdict.passed is True
    returned = [c.model for c in verdict.candidates]
    assert sorted(returned) == sorted(source.completed)
    assert sorted(source.completed + source.cancelled) == ["b", "c"]
    assert verdict.details["cancelled"] == source.cancelled
    decider = verdict.details["votes"][1]["model"]
    assert verdict.details["late"] == [m for m in returned if m != decider]
    assert verdict.cost_usd == pytest.approx(sum(c.cost_usd for c in verdict.candidates))


async def test_early_exit_when_the_quorum_became_impossible() -> None:
    never = anyio.Event()
    source = FakeSource({"b": Script("y"), "c": Script("x", gate=never)})
    verdict = await verifier(min_models=3, max_models=3, consensus_count=3).verify(
        context(source, ("a", "x"), ["a", "b", "c"])
    )
    # a and b disagree: even if c agreed with a, two votes cannot make three.
    assert verdict.passed is False
    assert verdict.details["stopped"] == "no_quorum"
    assert source.cancelled == ["c"]
    assert verdict.details["cancelled"] == ["c"]
    assert verdict.cost_usd == pytest.approx(0.01)


async def test_a_failing_model_is_a_non_vote_and_the_next_one_is_asked() -> None:
    problem = Problem("", "$.skill", "required")
    source = FakeSource(
        {
            "b": Script(error=unavailable("b")),
            "c": Script(error=OutputInvalid("job_detail_extraction", [problem])),
            "d": Script("x"),
        }
    )
    verdict = await verifier(min_models=2, max_models=2).verify(
        context(source, ("a", "x"), ["a", "b", "c", "d"])
    )
    assert verdict.passed is True
    assert source.started == ["b", "c", "d"]
    failures = verdict.details["failures"]
    assert [(f["model"], f["error"]) for f in failures] == [
        ("b", "ProviderUnavailable"),
        ("c", "OutputInvalid"),
    ]
    assert "HTTP 503" in failures[0]["message"]
    assert verdict.cost_usd == pytest.approx(0.01)


async def test_every_model_failing() -> None:
    source = FakeSource(
        {
            "b": Script(error=unavailable("b")),
            "c": Script(error=ProviderTimeout("slow", provider="fake", model="c")),
        }
    )
    verdict = await verifier(min_models=2, max_models=3).verify(
        context(source, ("a", "x"), ["a", "b", "c"])
    )
    assert verdict.passed is False
    assert [f["model"] for f in verdict.details["failures"]] == ["b", "c"]
    assert verdict.details["stopped"] == "no_quorum"
    assert verdict.details["votes"] == [
        {"model": "a", "cluster": 0, "cost_usd": 0.02, "primary": True}
    ]
    # One vote where the quorum needed two: the missing vote counts as dissent.
    assert verdict.confidence == 0.5
    assert verdict.candidates == ()
    assert verdict.cost_usd == 0.0


async def test_budget_running_out_stops_the_fan_out_and_says_so() -> None:
    source = FakeSource({"b": Script("y"), "c": Script(error=budget_gone()), "d": Script("x")})
    verdict = await verifier(min_models=2, max_models=4).verify(
        context(source, ("a", "x"), ["a", "b", "c", "d"])
    )
    assert verdict.passed is False
    assert source.started == ["b", "c"]  # d would have agreed, but the budget forbids asking
    assert verdict.details["stopped"] == "budget"
    assert verdict.details["budget_exhausted"] is True
    assert verdict.details["failures"][0]["error"] == "BudgetExceeded"
    assert verdict.cost_usd == pytest.approx(0.01)


async def test_calls_admitted_before_the_budget_ran_out_may_still_make_the_quorum() -> None:
    release_b = anyio.Event()
    source = FakeSource(
        {
            "b": Script("x", gate=release_b),
            "c": Script(error=budget_gone(), then_set=release_b),
            "d": Script("x"),
        }
    )
    verdict = await verifier(min_models=3, max_models=4, consensus_count=2).verify(
        context(source, ("a", "x"), ["a", "b", "c", "d"])
    )
    assert verdict.passed is True
    assert source.started == ["b", "c"]
    assert verdict.details["stopped"] == "quorum"
    assert verdict.details["budget_exhausted"] is True


async def test_cancellation_from_outside_is_never_swallowed() -> None:
    never = anyio.Event()
    source = FakeSource({"b": Script("x", gate=never)})
    verdicts: list[Verdict] = []

    async def run() -> None:
        verdicts.append(await verifier().verify(context(source, ("a", "x"), ["a", "b"])))

    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        await source.any_started.wait()
        tg.cancel_scope.cancel()
    assert verdicts == []
    assert source.cancelled == ["b"]


async def test_quorum_of_one_needs_no_calls_and_an_impossible_quorum_spends_nothing() -> None:
    source = FakeSource({"b": Script("x")})
    ctx = context(source, ("a", "x"), ["a", "b"])
    alone = await verifier(min_models=1, max_models=3).verify(ctx)
    assert alone.passed is True
    assert alone.confidence == 1.0
    impossible = await verifier(min_models=2, max_models=2, consensus_count=3).verify(ctx)
    assert impossible.passed is False
    assert source.started == []


async def test_explicit_models_override_the_ranking_and_are_distinct() -> None:
    source = FakeSource({"b": Script("x"), "z": Script("x")})
    verdict = await verifier(models=("z", "a", "z")).verify(context(source, ("a", "x"), ["a", "b"]))
    assert verdict.passed is True
    assert source.started == ["z"]
    assert verdict.details["representative"] == "z"  # z is ranked first in params.models


async def test_from_params_resolves_the_metric_and_applies_field_weights() -> None:
    params = ConsensusParams(similarity_metric="structured", field_weights={"notes": 0})
    consensus = ConsensusVerifier.from_params(params)
    assert isinstance(consensus.metric, StructuredSimilarity)
    source = FakeSource({"b": Script({"title": "Engineer", "notes": "remote ok"})})
    verdict = await consensus.verify(
        context(source, ("a", {"title": " ENGINEER", "notes": "onsite"}), ["a", "b"])
    )
    assert verdict.passed is True
    with pytest.raises(ConfigurationError, match="unknown similarity metric 'nope'"):
        ConsensusVerifier.from_params(ConsensusParams(similarity_metric="nope"))


async def test_semantic_metric_embeds_each_output_before_voting() -> None:
    class Embeddings:
        name = "fake"

        def __init__(self) -> None:
            self.calls: list[tuple[str, ...]] = []

        async def embed(self, model: str, texts: Sequence[str], /) -> EmbeddingResponse:
            self.calls.append(tuple(texts))
            table = {"a dog": (1.0, 0.0), "a puppy": (0.9, 0.1), "tax law": (0.0, 1.0)}
            return EmbeddingResponse(vectors=tuple(table[t] for t in texts), model=model)

    embeddings = Embeddings()
    source = FakeSource({"b": Script("tax law"), "c": Script("a puppy")})
    verdict = await verifier(
        SemanticSimilarity(embeddings, "embed"), similarity_threshold=0.9, max_models=3
    ).verify(context(source, ("a", "a dog"), ["a", "b", "c"]))
    assert verdict.passed is True
    assert verdict.details["clusters"] == [["a", "c"], ["b"]]
    assert embeddings.calls == [("a dog",), ("tax law",), ("a puppy",)]


async def test_clusters_use_average_link() -> None:
    # b is close to a (0.8) but far from c; c is close to a only. Average-link keeps b and c
    # out of one cluster with a unless the average over its members clears the threshold.
    table = {("A", "B"): 0.8, ("A", "C"): 0.8, ("B", "C"): 0.5}

    class Table:
        name = "table"

        def score(self, x: Any, y: Any, /) -> float:
            return 1.0 if x == y else table[min(x, y), max(x, y)]

    source = FakeSource({"b": Script("B"), "c": Script("C")})
    verdict = await verifier(
        Table(), similarity_threshold=0.7, min_models=3, max_models=3, consensus_count=3
    ).verify(context(source, ("a", "A"), ["a", "b", "c"]))
    # c against {a, b}: mean(0.8, 0.5) = 0.65 < 0.7, so no quorum of three.
    assert verdict.details["clusters"] == [["a", "b"], ["c"]]
    assert verdict.passed is False
    assert verdict.confidence == pytest.approx(2 / 3 * 0.8)


def test_the_replay_benchmark_runs_on_a_slice(tmp_path: Path) -> None:
    sliced = REPO / "tests" / "data" / "replay"  # real outcome rows; provenance in its README
    out = tmp_path / "report.md"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.consensus_replay",
            "--data",
            str(sliced),
            "--out",
            str(out),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = out.read_text()
    assert "| always gpt-4-1106-preview |" in report
    assert "cheap pair agrees, else gpt-4" in report
    assert "GSM8K" in report
    assert report in result.stdout
