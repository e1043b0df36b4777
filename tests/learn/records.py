"""Build execution records for learning tests (written through the real store)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs

from tlm.store.sqlite import ExecutionStore
from tlm.telemetry.records import (
    ErrorInfo,
    ExecutionRecord,
    Feedback,
    Performance,
    VerificationResults,
    format_timestamp,
    parse_timestamp,
)

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)

_counter = iter(range(1_000_000))


def record(
    *,
    task: str = "title_extraction",
    model: str = "model-a",
    variant: str | None = "standard",
    version: str = "1.0.0",
    passed: bool | None = True,
    method: str = "consensus",
    details: Mapping[str, Any] | None = None,
    ago: timedelta = timedelta(hours=1),
    latency: float = 1.0,
    tokens: int = 100,
    cost: float = 0.01,
    error: tuple[str, str] | None = None,
    fallback: str | None = None,
    cache_hit: bool = False,
    feedback: Sequence[Feedback] = (),
    verified: bool = True,
    execution_id: str | None = None,
) -> ExecutionRecord:
    """One record; ``verified=False`` leaves out verification results."""
    return ExecutionRecord(
        execution_id=execution_id or f"e{next(_counter):05d}",
        task_id=task,
        task_version=version,
        input={"posting": "x"},
        output=None if error else {"title": "t"},
        models_used=(model,) if model else (),
        verification_results=(
            VerificationResults(method, passed, 0.9, dict(details or {})) if verified else None
        ),
        performance=Performance(latency, tokens, cost),
        timestamp=format_timestamp(NOW - ago),
        feedback=tuple(feedback),
        prompt_variant=variant,
        error=None if error is None else ErrorInfo(*error),
        status="error" if error else "ok",
        cache_hit=cache_hit,
        fallback=fallback,
    )


def store_records(store: ExecutionStore, records: Sequence[ExecutionRecord]) -> None:
    """Write ``records`` and then their feedback (the store keeps feedback apart)."""
    for r in records:
        store.write(attrs.evolve(r, feedback=()))
    store.flush()
    for r in records:
        for f in r.feedback:
            store.add_feedback(
                r.execution_id,
                score=f.score,
                correct=f.correct,
                note=f.note,
                source=f.source,
                at=parse_timestamp(f.at),
            )


def human(correct: bool | None = None, score: float | None = None) -> Feedback:
    return Feedback("human", format_timestamp(NOW), score=score, correct=correct)


def system(correct: bool | None = None, score: float | None = None) -> Feedback:
    return Feedback("system", format_timestamp(NOW), score=score, correct=correct)


MISSING_LOCATION = (
    "OutputInvalid",
    "invalid output for task 'title_extraction':\n"
    "  output: $: 'location' is a required property\n"
    "  output: $.skills[2]: 42 is not of type 'string'",
)
