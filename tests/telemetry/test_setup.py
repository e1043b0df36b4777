"""The tracer provider: records in the store, OTLP/HTTP export over a real socket, content rules."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio.to_thread
import pytest
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from tlm.store import ExecutionStore
from tlm.telemetry import get_tracer
from tlm.telemetry.setup import capture_content_from_env, create_tracer_provider

from .fakes import run_execution


class Receiver:
    """A tiny OTLP/HTTP collector: POST /v1/traces with protobuf bodies."""

    def __init__(self) -> None:
        self.spans: dict[str, dict[str, Any]] = {}
        self.parents: dict[str, bytes] = {}
        self.ids: dict[bytes, str] = {}
        self.raw: list[bytes] = []

    async def handle(self, request: web.Request) -> web.Response:
        assert request.content_type == "application/x-protobuf"
        body = await request.read()
        self.raw.append(body)
        message = ExportTraceServiceRequest()
        message.ParseFromString(body)
        for resource_spans in message.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                assert scope_spans.scope.name == "tlm"
                for span in scope_spans.spans:
                    self.spans[span.name] = {a.key: _value(a.value) for a in span.attributes}
                    self.parents[span.name] = span.parent_span_id
                    self.ids[span.span_id] = span.name
        reply = ExportTraceServiceResponse().SerializeToString()
        return web.Response(body=reply, content_type="application/x-protobuf")


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return tuple(_value(v) for v in value.array_value.values)
    return getattr(value, kind) if kind else None


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/v1/traces", rec.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield rec, f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def _export_one(
    tmp_path: Path, endpoint: str, monkeypatch: pytest.MonkeyPatch, capture: str | None
) -> ExecutionStore:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
    if capture is None:
        monkeypatch.delenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", raising=False)
    else:
        monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", capture)
    store = ExecutionStore(tmp_path / "tlm.db")
    provider = create_tracer_provider(store=store)
    run_execution(get_tracer(provider), 4)
    # the batch exporter posts from its own thread; the receiver runs on this loop
    await anyio.to_thread.run_sync(provider.shutdown)
    return store


async def test_spans_reach_an_otlp_receiver_without_content_by_default(
    receiver: tuple[Receiver, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rec, endpoint = receiver
    store = await _export_one(tmp_path, endpoint, monkeypatch, capture=None)
    assert set(rec.spans) == {"tlm.execute extract", "chat small-model", "tlm.verify consensus"}
    root_id = next(i for i, n in rec.ids.items() if n == "tlm.execute extract")
    assert rec.parents["chat small-model"] == root_id
    assert rec.parents["tlm.verify consensus"] == root_id
    call = rec.spans["chat small-model"]
    assert call["gen_ai.operation.name"] == "chat"
    assert call["gen_ai.provider.name"] == "fake"
    assert call["gen_ai.request.model"] == "small-model"
    assert call["gen_ai.usage.input_tokens"] == 10
    assert call["gen_ai.response.finish_reasons"] == ("stop",)
    root = rec.spans["tlm.execute extract"]
    assert root["tlm.task.id"] == "extract"
    assert root["tlm.verification.passed"] is True
    for content in ("tlm.input", "tlm.output", "tlm.prompt", "tlm.prompt.system"):
        assert content not in root
    assert not any(b"hunter2" in body or b"input 4" in body for body in rec.raw)
    # ... while the local store keeps the content (with configured fields redacted)
    record = store.get("ex-extract-000004")
    assert record is not None
    assert record.input == {"text": "input 4", "secret": "[REDACTED]"}
    assert record.prompt == "Extract: input 4"
    store.close()


async def test_content_is_exported_when_the_opt_in_variable_allows(
    receiver: tuple[Receiver, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rec, endpoint = receiver
    store = await _export_one(tmp_path, endpoint, monkeypatch, capture="true")
    root = rec.spans["tlm.execute extract"]
    assert json.loads(root["tlm.input"]) == {"text": "input 4", "secret": "[REDACTED]"}
    assert json.loads(root["tlm.output"]) == {"value": 4}
    assert not any(b"hunter2" in body for body in rec.raw)
    store.close()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, False),
        ("false", False),
        ("NO_CONTENT", False),
        ("true", True),
        ("SPAN_ONLY", True),
        ("span_and_event", True),
    ],
)
def test_capture_content_opt_in_values(value: str | None, expected: bool) -> None:
    env = {} if value is None else {"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": value}
    assert capture_content_from_env(env) is expected


def test_without_an_endpoint_nothing_is_exported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    with ExecutionStore(tmp_path / "tlm.db") as store:
        provider = create_tracer_provider(store=store)
        run_execution(get_tracer(provider), 1)
        provider.shutdown()
        assert store.count() == 1
