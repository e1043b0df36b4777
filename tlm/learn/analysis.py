"""Analysis of a task's execution records over a period: what ``tlm analyze`` reports.

Records are grouped by primary model (the first model used), prompt variant and task version.
Each group gets its executions, verification pass rate with a Wilson 95% interval, feedback,
latency percentiles, tokens, cost in total and per verified success, and fallback and cache-hit
rates; the whole period gets a day-by-day trend per model and the top failure patterns —
output-schema errors by JSON path and kind, rule names, verifier issues (normalised text),
consensus disagreements and execution errors — with counts and example execution ids.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import attrs

from tlm.learn.stats import percentile, wilson_interval
from tlm.telemetry.records import ExecutionRecord, format_timestamp

if TYPE_CHECKING:
    from tlm.store.base import ExecutionLog as ExecutionStore

__all__ = (
    "GroupStats",
    "TrendPoint",
    "Failure",
    "FailurePattern",
    "Analysis",
    "analyze",
    "analyze_store",
    "failures_of",
    "primary_model",
    "is_skipped",
    "verdict_of",
)

NO_MODEL = "(none)"
NO_VARIANT = "(none)"


def primary_model(record: ExecutionRecord) -> str:
    """The model that produced the primary candidate: the first model the execution used."""
    return record.models_used[0] if record.models_used else NO_MODEL


def is_skipped(record: ExecutionRecord) -> bool:
    """Whether ``record``'s verification was skipped as reliable (adaptive verification)."""
    v = record.verification_results
    return v is not None and bool(v.details.get("skipped"))


def verdict_of(record: ExecutionRecord) -> bool | None:
    """The decided verdict of ``record``; ``None`` when pending, absent or skipped."""
    return None if is_skipped(record) else record.passed


@attrs.frozen
class GroupStats:
    """The figures of one (model, prompt variant, task version) group, or of all records."""

    model: str
    prompt_variant: str
    task_version: str
    executions: int
    errors: int
    """Executions that failed (status ``error``)."""
    verified: int
    """Executions with a decided verdict (passed or failed; skipped verification excluded)."""
    passed: int
    pass_rate: float | None
    pass_interval: tuple[float, float] | None
    """Wilson 95% interval of the pass rate."""
    feedback_count: int
    feedback_mean_score: float | None
    feedback_correct_pct: float | None
    """Share (0..100) of feedback marked correct, among feedback with a correct/incorrect mark."""
    latency_p50_s: float | None
    latency_p95_s: float | None
    tokens_total: int
    tokens_mean: float
    cost_total_usd: float
    cost_per_success_usd: float | None
    """Total cost divided by the verified successes (``None`` without any)."""
    fallback_rate: float
    cache_hit_rate: float


@attrs.frozen
class TrendPoint:
    """One model's executions on one UTC day."""

    day: str
    model: str
    executions: int
    verified: int
    passed: int
    pass_rate: float | None
    cost_usd: float


@attrs.frozen
class Failure:
    """One failure found in one record."""

    kind: str
    """``schema``, ``rule``, ``verifier``, ``consensus`` or ``error``."""
    key: str
    """The normalised description: records with the same kind and key failed the same way."""
    path: str | None = None
    """The output's JSON path concerned, when known (``$.location``)."""
    error: str | None = None
    """A short error class: ``required``, ``type``, ``enum``, a rule name, ..."""
    text: str = ""
    """The original text (an example)."""


@attrs.frozen
class FailurePattern:
    """Records that failed the same way."""

    kind: str
    key: str
    count: int
    share: float
    """``count`` over the executions analysed."""
    path: str | None
    error: str | None
    variants: Mapping[str, int]
    """How many of the failures each prompt variant had."""
    models: Mapping[str, int]
    examples: tuple[Mapping[str, str], ...]
    """Up to three ``{"execution_id", "text"}`` examples."""


@attrs.frozen
class Analysis:
    """Everything ``tlm analyze`` shows for one task and period."""

    task_id: str
    since: str | None
    until: str | None
    version: str | None
    overall: GroupStats
    groups: tuple[GroupStats, ...]
    trend: tuple[TrendPoint, ...]
    failures: tuple[FailurePattern, ...]
    variant_executions: Mapping[str, int]
    """Executions per prompt variant (to turn failure counts into per-variant rates)."""

    @property
    def executions(self) -> int:
        """How many records were analysed."""
        return self.overall.executions

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data (``--json``)."""
        data: dict[str, Any] = attrs.asdict(self, recurse=True)
        return data


# --- failure signatures ---------------------------------------------------------------------

_PROBLEM_LINE = re.compile(r"^\s+(?:[\w.-]+: )?(\$[^\s:]*): (.*)$")
_REQUIRED = re.compile(r"^'([^']+)' is a required property$")
_RULE = re.compile(r"^rule ([\w.-]+):")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_INDEX = re.compile(r"\[\d+\]")
_SPACE = re.compile(r"\s+")
_SCHEMA_KINDS: tuple[tuple[re.Pattern[str], str, str], ...] = (
    (re.compile(r" is not of type (.+)$"), "type", "wrong type (expected {0})"),
    (re.compile(r" is not one of "), "enum", "value not among the allowed ones"),
    (re.compile(r" is too short$"), "min", "too short"),
    (re.compile(r" is too long$"), "max", "too long"),
    (re.compile(r" is less than (?:or equal to )?"), "minimum", "below the minimum"),
    (re.compile(r" is greater than (?:or equal to )?"), "maximum", "above the maximum"),
    (re.compile(r" does not match "), "pattern", "does not match the pattern"),
    (re.compile(r"Additional properties are not allowed"), "additional", "unexpected field(s)"),
    (re.compile(r"(?:non-unique|has non-unique elements)"), "unique", "duplicate items"),
)


def _normalise(text: str, limit: int = 120) -> str:
    text = _SPACE.sub(" ", text.strip().lower()).rstrip(".")
    text = _NUMBER.sub("N", text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _join(path: str, field: str) -> str:
    return f"{path}.{field}" if re.fullmatch(r"[A-Za-z_]\w*", field) else f"{path}[{field!r}]"


def _problem_failure(path: str, message: str) -> Failure:
    generic = _INDEX.sub("[*]", path)
    required = _REQUIRED.match(message)
    if required:
        field_path = _join(generic, required.group(1))
        return Failure(
            "schema", f"{field_path}: required field missing", field_path, "required", message
        )
    rule = _RULE.match(message)
    if rule:
        return Failure(
            "rule", f"rule {rule.group(1)} at {generic}", generic, rule.group(1), message
        )
    for pattern, error, description in _SCHEMA_KINDS:
        found = pattern.search(message)
        if found:
            what = description.format(*found.groups())
            return Failure("schema", f"{generic}: {what}", generic, error, message)
    if "not valid json" in message.lower() or ("json" in message.lower() and path == "$"):
        return Failure("schema", "$: not valid JSON", "$", "json", message)
    return Failure("schema", f"{generic}: {_normalise(message, 80)}", generic, "other", message)


def failures_of(record: ExecutionRecord) -> list[Failure]:
    """How ``record`` failed: output problems, verifier issues, disagreement, or the error."""
    found: list[Failure] = []
    error = record.error
    if error is not None:
        lines = [m for m in (_PROBLEM_LINE.match(line) for line in error.message.splitlines()) if m]
        if lines and error.type.endswith("OutputInvalid"):
            found.extend(_problem_failure(m.group(1), m.group(2)) for m in lines)
        else:
            first = error.message.splitlines()[0] if error.message else ""
            found.append(Failure("error", f"{error.type}: {_normalise(first, 80)}", text=first))
    verdict = record.verification_results
    if verdict is not None and verdict.passed is False:
        details = verdict.details
        issues = details.get("issues") if isinstance(details, Mapping) else None
        if isinstance(issues, Sequence) and not isinstance(issues, str) and issues:
            for issue in issues:
                text = str(issue)
                found.append(
                    Failure("verifier", f"{verdict.method_used}: {_normalise(text)}", text=text)
                )
        elif verdict.method_used == "consensus":
            clusters = details.get("clusters") if isinstance(details, Mapping) else None
            count = len(clusters) if isinstance(clusters, Sequence) else 0
            text = f"no quorum: {count} disagreeing cluster(s)" if count else "no quorum"
            found.append(Failure("consensus", "consensus: the models disagreed", text=text))
        else:
            reason = ""
            if isinstance(details, Mapping):
                reason = str(details.get("error") or details.get("reason") or "")
            key = f"{verdict.method_used}: {_normalise(reason) if reason else 'failed'}"
            found.append(Failure("verifier", key, text=reason or "verification failed"))
    return found


# --- figures --------------------------------------------------------------------------------


def _group_stats(
    records: Sequence[ExecutionRecord], model: str, variant: str, version: str
) -> GroupStats:
    n = len(records)
    decided = [p for p in map(verdict_of, records) if p is not None]
    passed = sum(1 for p in decided if p)
    scores = [f.score for r in records for f in r.feedback if f.score is not None]
    marks = [f.correct for r in records for f in r.feedback if f.correct is not None]
    feedback_count = sum(len(r.feedback) for r in records)
    latencies = [r.performance.execution_time for r in records]
    tokens = sum(r.performance.tokens_used for r in records)
    cost = sum(r.performance.cost for r in records)
    return GroupStats(
        model=model,
        prompt_variant=variant,
        task_version=version,
        executions=n,
        errors=sum(1 for r in records if r.status == "error"),
        verified=len(decided),
        passed=passed,
        pass_rate=passed / len(decided) if decided else None,
        pass_interval=wilson_interval(passed, len(decided)) if decided else None,
        feedback_count=feedback_count,
        feedback_mean_score=sum(scores) / len(scores) if scores else None,
        feedback_correct_pct=100.0 * sum(marks) / len(marks) if marks else None,
        latency_p50_s=percentile(latencies, 50),
        latency_p95_s=percentile(latencies, 95),
        tokens_total=tokens,
        tokens_mean=tokens / n if n else 0.0,
        cost_total_usd=cost,
        cost_per_success_usd=cost / passed if passed else None,
        fallback_rate=sum(1 for r in records if r.fallback) / n if n else 0.0,
        cache_hit_rate=sum(1 for r in records if r.cache_hit) / n if n else 0.0,
    )


def _patterns(records: Sequence[ExecutionRecord], top: int) -> tuple[FailurePattern, ...]:
    grouped: dict[tuple[str, str], list[tuple[ExecutionRecord, Failure]]] = defaultdict(list)
    for record in records:
        seen: set[tuple[str, str]] = set()
        for failure in failures_of(record):
            key = (failure.kind, failure.key)
            if key in seen:  # one record counts once per pattern
                continue
            seen.add(key)
            grouped[key].append((record, failure))
    n = len(records) or 1
    patterns = [
        FailurePattern(
            kind=kind,
            key=key,
            count=len(items),
            share=len(items) / n,
            path=items[0][1].path,
            error=items[0][1].error,
            variants=dict(Counter(r.prompt_variant or NO_VARIANT for r, _ in items)),
            models=dict(Counter(primary_model(r) for r, _ in items)),
            examples=tuple(
                {"execution_id": r.execution_id, "text": f.text[:200]} for r, f in items[:3]
            ),
        )
        for (kind, key), items in grouped.items()
    ]
    patterns.sort(key=lambda p: (-p.count, p.kind, p.key))
    return tuple(patterns[:top])


def analyze(
    records: Iterable[ExecutionRecord],
    *,
    task_id: str,
    since: datetime | None = None,
    until: datetime | None = None,
    version: str | None = None,
    top: int = 10,
) -> Analysis:
    """Analyse ``records`` of ``task_id`` (other tasks' records and other versions are ignored)."""
    chosen = [
        r
        for r in records
        if r.task_id == task_id and (version is None or r.task_version == version)
    ]
    groups: dict[tuple[str, str, str], list[ExecutionRecord]] = defaultdict(list)
    days: dict[tuple[str, str], list[ExecutionRecord]] = defaultdict(list)
    for record in chosen:
        model = primary_model(record)
        groups[(model, record.prompt_variant or NO_VARIANT, record.task_version)].append(record)
        days[(record.timestamp[:10], model)].append(record)
    trend = []
    for (day, model), items in sorted(days.items()):
        decided = [p for p in map(verdict_of, items) if p is not None]
        passed = sum(1 for p in decided if p)
        trend.append(
            TrendPoint(
                day=day,
                model=model,
                executions=len(items),
                verified=len(decided),
                passed=passed,
                pass_rate=passed / len(decided) if decided else None,
                cost_usd=sum(r.performance.cost for r in items),
            )
        )
    return Analysis(
        task_id=task_id,
        since=None if since is None else format_timestamp(since),
        until=None if until is None else format_timestamp(until),
        version=version,
        overall=_group_stats(chosen, "*", "*", version or "*"),
        groups=tuple(
            _group_stats(items, *key)
            for key, items in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))
        ),
        trend=tuple(trend),
        failures=_patterns(chosen, top),
        variant_executions=dict(Counter(r.prompt_variant or NO_VARIANT for r in chosen)),
    )


def analyze_store(
    store: ExecutionStore,
    task_id: str,
    *,
    period: timedelta | None = None,
    version: str | None = None,
    now: datetime | None = None,
    top: int = 10,
) -> Analysis:
    """:func:`analyze` over the store's records of ``task_id`` in the last ``period``."""
    until = now or datetime.now(UTC)
    since = None if period is None else until - period
    records = store.iter_query(task_id=task_id, since=since, version=version)
    return analyze(records, task_id=task_id, since=since, until=None, version=version, top=top)
