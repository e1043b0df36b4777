"""Records for the backend tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tlm.telemetry.records import (
    ExecutionRecord,
    Performance,
    VerificationResults,
    format_timestamp,
)

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def make_record(i: int | str, *, task_id: str = "extract", minute: int = 0) -> ExecutionRecord:
    return ExecutionRecord(
        execution_id=f"e{i}",
        task_id=task_id,
        task_version="1.0.0",
        input={"text": f"in {i}"},
        output={"value": str(i)},
        models_used=("m1", "m2"),
        verification_results=VerificationResults("consensus", True, 0.75, {"votes": 2}),
        performance=Performance(0.5, 30, 0.002),
        timestamp=format_timestamp(T0 + timedelta(minutes=minute)),
        attempts=1,
    )
