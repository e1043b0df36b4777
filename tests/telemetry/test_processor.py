"""Span → record: the design document's fields, failures, no loss under load or a slow store."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import anyio
import attrs
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from tlm.store import ExecutionStore
from tlm.telemetry import get_tracer
from tlm.telemetry.processor import ExecutionRecordProcessor
from tlm.telemetry.records import ExecutionRecord, Performance, VerificationResults

from .fakes import arun_execution, run_execution


class ListSink:
    def __init__(self) -> None:
        self.records: list[ExecutionRecord] = []

    def write(self, record: ExecutionRecord, /) -> None:
        self.records.append(record)

    def flush(self, timeout: float | None = None) -> bool:
        return True


def _tracer(sink: ListSink | ExecutionStore) -> tuple[trace.Tracer, TracerProvider]:
    provider = TracerProvider()
    provider.add_span_processor(ExecutionRecordProcessor(sink))
    return get_tracer(provider), provider


DESIGN_FIELDS = {
    "task_id",
    "task_version",
    "input",
    "output",
    "models_used",
    "verification_results",
    "performance",
    "timestamp",
    "feedback",
}


def test_record_has_the_design_documents_fields() -> None:
    names = {f.name for f in attrs.fields(ExecutionRecord)}
    assert names >= DESIGN_FIELDS
    assert {"execution_id", "prompt_variant", "attempts", "error"} <= names
    assert [f.name for f in attrs.fields(VerificationResults)] == [
        "method_used",
        "passed",
        "confidence",
        "details",
    ]
    assert [f.name for f in attrs.fields(Performance)] == ["execution_time", "tokens_used", "cost"]


def test_one_record_per_execution_with_values_from_its_spans() -> None:
    sink = ListSink()
    tracer, _ = _tracer(sink)
    app = TracerProvider().get_tracer("app")  # a foreign span around: not a record
    with app.start_as_current_span("request"):
        run_execution(tracer, 2)
    (record,) = sink.records
    assert record.execution_id == "ex-extract-000002"
    assert record.task_id == "extract"
    assert record.task_version == "1.0.0"
    assert record.input == {"text": "input 2", "secret": "[REDACTED]"}
    assert record.output == {"value": 2}
    assert record.models_used == ("small-model",)
    assert record.verification_results == VerificationResults("consensus", True, 0.8, {})
    assert record.performance.tokens_used == 15
    assert record.performance.cost == pytest.approx(0.001)
    assert record.performance.execution_time > 0
    assert record.timestamp.endswith("Z")
    assert "T" in record.timestamp
    assert record.status == "ok"
    assert record.error is None
    assert record.prompt_variant == "default"
    assert record.prompt == "Extract: input 2"
    assert record.system_prompt == "You extract."
    assert record.trace_id is not None
    assert len(record.trace_id) == 32
    assert ExecutionRecord.from_json(record.to_json()) == record


def test_a_failed_execution_is_a_record_too() -> None:
    sink = ListSink()
    tracer, _ = _tracer(sink)
    run_execution(tracer, 1, fail=True)
    (record,) = sink.records
    assert record.status == "error"
    assert record.error is not None
    assert record.error.type == "ProviderUnavailable"
    assert "overloaded" in record.error.message
    assert record.output is None
    assert record.models_used == ("small-model",)  # from the failed model-call span
    assert record.verification_results is None


def test_nested_executions_are_separate_records() -> None:
    sink = ListSink()
    tracer, _ = _tracer(sink)
    from tlm.telemetry import execution_span

    with execution_span(tracer, task_id="outer", task_version="1", execution_id="o", input={}):
        run_execution(tracer, 0, task_id="inner")
    assert [r.task_id for r in sink.records] == ["inner", "outer"]
    outer = sink.records[1]
    assert outer.models_used == ()
    assert outer.performance.tokens_used == 0


async def test_20000_concurrent_executions_give_20000_records(tmp_path: Path) -> None:
    n = 20_000
    with ExecutionStore(tmp_path / "tlm.db", queue_size=1024, batch_size=512) as store:
        tracer, provider = _tracer(store)
        async with anyio.create_task_group() as tg:
            for i in range(n):
                tg.start_soon(arun_execution, tracer, i)
        assert provider.force_flush()
        assert store.count() == n
        # the loop's thread never blocks on the full queue (issue #14: back-pressure is awaited,
        # never a blocking call): records past the bound are queued and counted, none dropped
        assert store.max_pending <= 1024 + 512 + store.overflowed
        assert store.overflowed < n
        ids = {r.execution_id for r in store.iter_query()}
        assert len(ids) == n


class GatedStore(ExecutionStore):
    """A store whose commits wait for a gate: the slowest possible writer."""

    gate: threading.Event

    def _commit(self, conn, records):  # type: ignore[no-untyped-def]
        self.gate.wait()
        super()._commit(conn, records)


def test_a_slow_store_applies_back_pressure_and_loses_nothing(tmp_path: Path) -> None:
    queue_size, batch_size, n = 8, 4, 200
    store = GatedStore(tmp_path / "tlm.db", queue_size=queue_size, batch_size=batch_size)
    store.gate = threading.Event()
    tracer, _ = _tracer(store)
    producer = threading.Thread(target=lambda: [run_execution(tracer, i) for i in range(n)])
    producer.start()
    deadline = time.monotonic() + 30
    while store.pending < queue_size and time.monotonic() < deadline:
        time.sleep(0.001)  # waiting for the buffer to fill, not timing anything
    assert store.pending >= queue_size
    # the writer is stuck: at most one batch plus a full buffer were accepted, the producer waits
    assert producer.is_alive()
    assert store.pending <= queue_size + batch_size
    store.gate.set()
    producer.join()
    store.flush()
    assert store.count() == n
    assert store.max_pending <= queue_size + batch_size
    store.close()
