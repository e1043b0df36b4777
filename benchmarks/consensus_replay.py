"""Replay real model answers through :class:`~tlm.verify.consensus.ConsensusVerifier`.

``python -m benchmarks.consensus_replay [--data DIR] [--out FILE]``

RouterBench (``routerbench_train.jsonl``) holds, per prompt, the real answer, grade and cost of 11
models. A replay :class:`CandidateSource` returns a model's recorded answer and cost instead of
calling it (no network), and each consensus policy runs through the real verifier: fan-out,
clustering, early exit and cancellation included (a call the verifier cancels is not charged;
every call that returns is, valid or not). The answer compared is:

* arc-challenge, winogrande: the chosen letter (``['D\\n']`` -> ``"D"``); a reply without a valid
  letter is an invalid output, i.e. a failed call, as the engine's output validation would make it;
* mbpp: the code (fenced or ``[PYTHON]`` block, else the whole reply) under token-count cosine.

A policy's answer is the representative of the winning cluster; when consensus fails it is the
escalation model's answer (asked if it was not already) or the primary's. Its quality is the
recorded grade of the model whose answer it returns. The models of each policy are fixed in
advance (well-known cheap models), not searched on this file.

``routellm_gsm8k.jsonl`` (Mixtral vs GPT-4, no costs): final-answer agreement, through the verifier
with exact equality of the extracted final number.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import attrs

from tlm.definition.model import ConsensusParams, IOSpec, PromptVariant, TaskDefinition
from tlm.errors import OutputInvalid, Problem
from tlm.providers.base import ChatResponse
from tlm.similarity import ExactSimilarity, SimilarityMetric, TokenCosineSimilarity
from tlm.verify.base import Candidate, VerificationContext
from tlm.verify.consensus import ConsensusVerifier

__all__ = ("Row", "Policy", "ReplaySource", "load_rows", "extract_answer", "main")

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data"
DEFAULT_OUT = REPO / "benchmarks" / "results" / "consensus_replay.md"

GPT4 = "gpt-4-1106-preview"
GPT35 = "gpt-3.5-turbo-1106"
MIXTRAL = "mistralai/mixtral-8x7b-chat"
LLAMA70 = "meta/llama-2-70b-chat"
YI34 = "zero-one-ai/Yi-34B-Chat"
GSM_MIXTRAL = "mistralai/Mixtral-8x7B-Instruct-v0.1"

CHOICES = {"arc-challenge": "ABCD", "winogrande": "AB"}
_LETTER = re.compile(r"\(?([A-Z])(?:\)|\.|:|\s*\(|$)")
_CODE = re.compile(r"```(?:python|py)?\s*\n(.*?)```|\[PYTHON\](.*?)\[/PYTHON\]", re.S | re.I)
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


@attrs.frozen
class Row:
    """One prompt with every model's recorded answer, grade and cost."""

    id: str
    task: str
    quality: Mapping[str, float]
    cost: Mapping[str, float]
    response: Mapping[str, str]


def load_rows(path: Path) -> list[Row]:
    """Read a data file in the shared format (see the data directory's README)."""
    rows = []
    with path.open() as lines:
        for line in lines:
            raw = json.loads(line)
            rows.append(
                Row(
                    id=raw["id"],
                    task=raw["task"],
                    quality=raw["quality"],
                    cost=raw.get("cost") or {},
                    response=raw.get("response") or {},
                )
            )
    return rows


def _reply_text(raw: str) -> str:
    """RouterBench stores replies as Python-list-looking text: ``['D\\n']``."""
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return raw
    if isinstance(value, list) and value and isinstance(value[0], str):
        return value[0]
    return raw


def extract_answer(task: str, raw: str) -> str | None:
    """The answer to compare: the chosen letter, the code, or the final number; None if none."""
    if task in CHOICES:
        match = _LETTER.match(_reply_text(raw).strip())
        return match.group(1) if match and match.group(1) in CHOICES[task] else None
    if task == "mbpp":
        text = _reply_text(raw)
        blocks = [a or b for a, b in _CODE.findall(text)]
        code = "\n".join(blocks) if blocks else text
        return code.strip() or None
    if task == "gsm8k":
        tail = raw.rsplit("####", 1)[1] if "####" in raw else raw
        numbers = _NUMBER.findall(tail)
        if not numbers:
            return None
        value = float(numbers[-1 if "####" not in raw else 0].replace(",", ""))
        return str(int(value)) if value.is_integer() else str(value)
    raise ValueError(f"unknown task {task!r}")


TASK = TaskDefinition(
    id="replay",
    name="Replay",
    description="Recorded answers replayed through consensus.",
    version="1.0.0",
    input=IOSpec(schema={"type": "object"}),
    output=IOSpec(schema={}),
    prompts=(PromptVariant("default", "{{prompt}}", ("prompt",), {"default": True}),),
)


@attrs.define
class ReplaySource:
    """A ``CandidateSource`` answering from one row's recordings; it keeps the bill."""

    row: Row
    answers: Mapping[str, str | None]
    spent_usd: float = 0.0
    calls: int = 0

    async def __call__(self, model: str, /, *, feedback: str | None = None) -> Candidate:
        await anyio.lowlevel.checkpoint()  # like a real call, cancellable before it returns
        cost = self.row.cost.get(model, 0.0)
        self.calls += 1
        self.spent_usd += cost
        answer = self.answers.get(model)
        if answer is None:
            raise OutputInvalid(TASK.id, [Problem(model, "$", "no valid answer in the reply")])
        return Candidate(model, answer, cost_usd=cost)


async def _no_ask(
    model: str, prompt: str, /, *, output_schema: Mapping[str, Any] | None = None
) -> ChatResponse:
    raise AssertionError("consensus does not ask")


@attrs.frozen
class Policy:
    """Consensus over ``models`` (in order; the first valid answer is the primary)."""

    name: str
    models: tuple[str, ...]
    min_models: int = 2
    max_models: int = 2
    quorum: int = 2
    escalate: str | None = None
    """Whose answer to return when consensus fails (asked if needed); None: the primary's."""


@attrs.define
class Outcome:
    quality: float
    cost_usd: float
    calls: int
    passed: bool


async def run_policy(
    row: Row, policy: Policy, metric: SimilarityMetric, threshold: float
) -> Outcome:
    """Run one policy on one row through the consensus verifier."""
    answers = {m: extract_answer(row.task, r) for m, r in row.response.items()}
    source = ReplaySource(row, answers)
    remaining = list(policy.models)
    primary: Candidate | None = None
    while remaining and primary is None:
        try:
            primary = await source(remaining.pop(0))
        except OutputInvalid:
            continue
    if primary is None:
        chosen = policy.escalate
        if chosen is not None and chosen not in policy.models:
            await _ask_quietly(source, chosen)
        quality = row.quality.get(chosen, 0.0) if chosen else 0.0
        return Outcome(quality, source.spent_usd, source.calls, passed=False)
    models = (primary.model, *remaining)
    params = ConsensusParams(
        similarity_threshold=threshold,
        min_models=policy.min_models,
        max_models=policy.max_models,
        consensus_count=policy.quorum,
        models=models,
    )
    context = VerificationContext(
        task=TASK,
        input={},
        primary=primary,
        ranked_models=models,
        source=source,
        ask=_no_ask,
        execution_id=row.id,
    )
    verdict = await ConsensusVerifier(params, metric).verify(context)
    if verdict.passed:
        chosen = verdict.details["representative"]
    elif policy.escalate is not None:
        chosen = policy.escalate
        consulted = {v["model"] for v in verdict.details["votes"]}
        consulted |= {f["model"] for f in verdict.details["failures"]}
        if chosen not in consulted:
            await _ask_quietly(source, chosen)
    else:
        chosen = primary.model
    return Outcome(row.quality[chosen], source.spent_usd, source.calls, bool(verdict.passed))


async def _ask_quietly(source: ReplaySource, model: str) -> None:
    try:
        await source(model)
    except OutputInvalid:
        pass  # the recorded grade of an invalid answer is already 0


CHEAP_PAIR = (MIXTRAL, GPT35)
POLICIES = (
    Policy("cheap pair agrees, else gpt-4", CHEAP_PAIR, escalate=GPT4),
    Policy(
        "cheap pair, gpt-4 breaks ties (2 of 3)",
        (*CHEAP_PAIR, GPT4),
        max_models=3,
        escalate=GPT4,
    ),
    Policy(
        "3 cheap, majority (Mixtral, GPT-3.5, Llama-2-70B)", (*CHEAP_PAIR, LLAMA70), max_models=3
    ),
    Policy("3 cheap, majority (Mixtral, GPT-3.5, Yi-34B)", (*CHEAP_PAIR, YI34), max_models=3),
    Policy(
        "3 cheap majority (Mixtral, GPT-3.5, Yi-34B), else gpt-4",
        (*CHEAP_PAIR, YI34),
        max_models=3,
        escalate=GPT4,
    ),
)


@attrs.define
class Tally:
    n: int = 0
    quality: float = 0.0
    cost: float = 0.0
    calls: int = 0
    passed: int = 0
    quality_passed: float = 0.0

    def add(self, outcome: Outcome) -> None:
        self.n += 1
        self.quality += outcome.quality
        self.cost += outcome.cost_usd
        self.calls += outcome.calls
        if outcome.passed:
            self.passed += 1
            self.quality_passed += outcome.quality

    def cells(self) -> list[str]:
        if not self.n:
            return ["-", "-"]
        return [f"{self.quality / self.n:.3f}", f"${self.cost / self.n:.6f}"]


GROUPS: tuple[tuple[str, Callable[[Row], bool]], ...] = (
    ("all", lambda r: True),
    ("multiple choice", lambda r: r.task in CHOICES),
    ("mbpp", lambda r: r.task == "mbpp"),
)


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


async def routerbench_report(rows: Sequence[Row]) -> list[str]:
    """The policy table over RouterBench rows."""
    models = sorted({m for r in rows for m in r.quality}, key=lambda m: m.lower())
    counts = {g: sum(1 for r in rows if keep(r)) for g, keep in GROUPS}
    header = ["policy"]
    for group, _ in GROUPS:
        header += [f"{group} quality (n={counts[group]})", f"{group} $/query"]
    header += ["calls/query", "consensus passed", "quality when passed"]

    body: list[list[str]] = []
    singles: list[tuple[float, list[str]]] = []
    for model in models:
        tallies = {g: Tally() for g, _ in GROUPS}
        for row in rows:
            outcome = Outcome(row.quality[model], row.cost.get(model, 0.0), 1, passed=False)
            for group, keep in GROUPS:
                if keep(row):
                    tallies[group].add(outcome)
        label = f"always {model}"
        cells = [label, *(c for g, _ in GROUPS for c in tallies[g].cells()), "1.00", "-", "-"]
        singles.append((tallies["all"].cost, cells))
    body += [cells for _, cells in sorted(singles, key=lambda s: s[0])]

    exact, code = ExactSimilarity(), TokenCosineSimilarity()
    for policy in POLICIES:
        tallies = {g: Tally() for g, _ in GROUPS}
        for row in rows:
            metric: SimilarityMetric = code if row.task == "mbpp" else exact
            outcome = await run_policy(row, policy, metric, threshold=0.8)
            for group, keep in GROUPS:
                if keep(row):
                    tallies[group].add(outcome)
        total = tallies["all"]
        body.append(
            [
                policy.name,
                *(c for g, _ in GROUPS for c in tallies[g].cells()),
                f"{total.calls / max(total.n, 1):.2f}",
                f"{total.passed / max(total.n, 1):.3f}",
                f"{total.quality_passed / total.passed:.3f}" if total.passed else "-",
            ]
        )
    intro = [
        f"## RouterBench train: {len(rows)} prompts, real answers and costs of "
        f"{len(models)} models",
        "",
        "Letters compared exactly (arc-challenge, winogrande); mbpp code by token cosine >= 0.8.",
        "Quality = recorded grade of the returned answer's model; cost = every call that returned",
        "(invalid answers included). Consensus policies start with 2 votes and add the next model",
        "only on disagreement; asking all 3 at once with early exit costs the same here, because",
        "replayed calls finish in launch order, and saves one round trip of latency.",
        "",
    ]
    return intro + _table(header, body)


async def gsm8k_report(rows: Sequence[Row]) -> list[str]:
    """Final-answer agreement of Mixtral and GPT-4 on GSM8K, through the verifier."""
    agree = Tally()
    disagree = Tally()
    gpt4_when = {True: 0.0, False: 0.0}
    mixtral_when = {True: 0.0, False: 0.0}
    policy = Policy("Mixtral + GPT-4 agree, else GPT-4", (GSM_MIXTRAL, GPT4), escalate=GPT4)
    for row in rows:
        if GSM_MIXTRAL not in row.response or GPT4 not in row.response:
            continue
        outcome = await run_policy(row, policy, ExactSimilarity(), threshold=1.0)
        (agree if outcome.passed else disagree).add(outcome)
        gpt4_when[outcome.passed] += row.quality[GPT4]
        mixtral_when[outcome.passed] += row.quality[GSM_MIXTRAL]
    n = agree.n + disagree.n

    def rate(value: float, count: int) -> str:
        return f"{value / count:.3f}" if count else "-"

    table = _table(
        ["final answers", "share", "GPT-4 correct", "Mixtral correct", "policy correct"],
        [
            [
                "agree",
                rate(agree.n, n),
                rate(gpt4_when[True], agree.n),
                rate(mixtral_when[True], agree.n),
                rate(agree.quality, agree.n),
            ],
            [
                "disagree (or no number)",
                rate(disagree.n, n),
                rate(gpt4_when[False], disagree.n),
                rate(mixtral_when[False], disagree.n),
                rate(disagree.quality, disagree.n),
            ],
            [
                "all",
                "1.000" if n else "-",
                rate(gpt4_when[True] + gpt4_when[False], n),
                rate(mixtral_when[True] + mixtral_when[False], n),
                rate(agree.quality + disagree.quality, n),
            ],
        ],
    )
    return [
        f"## GSM8K: Mixtral-8x7B vs GPT-4 final answers ({n} questions)",
        "",
        "Final number after `####`, else the last number; exact agreement through the verifier.",
        f"Policy: {policy.name}; an agreed answer is Mixtral's (ranked first).",
        "",
        *table,
        "",
        "Where the final numbers agree, the source's grades of the two models can still differ:",
        "its grader parsed GPT-4's free-form answers (mostly without `####`) less reliably.",
        "Read 'policy correct' of agreed answers as an upper bound; agreement is the signal.",
    ]


async def build_report(data: Path) -> str:
    """The whole Markdown report for the data directory."""
    sections = ["# Consensus replay on real model answers", ""]
    routerbench = data / "routerbench_train.jsonl"
    sections += await routerbench_report(load_rows(routerbench))
    gsm8k = data / "routellm_gsm8k.jsonl"
    if gsm8k.exists():
        sections += ["", *await gsm8k_report(load_rows(gsm8k))]
    return "\n".join(sections) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the replay, print the report and write it to ``--out``."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.consensus_replay")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the data directory")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the Markdown report")
    args = parser.parse_args(argv)
    report = anyio.run(build_report, args.data)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report)
    sys.stdout.write(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
