"""OTLP export as a backend sees it: endpoints, service name, dialects, content in events, metrics.

A small OTLP/HTTP collector on 127.0.0.1 (its own thread: exporters post from the engine's
thread too, at shutdown) records every POST by path; spans and metrics are decoded from the real
protobuf bodies.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anyio.to_thread
import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from tlm.catalog import Catalog
from tlm.definition.registry import DefinitionRegistry
from tlm.engine import Engine, EngineConfig
from tlm.telemetry import get_tracer
from tlm.telemetry.setup import create_meter_provider, create_tracer_provider, otlp_signal_url

from .fakes import run_execution

_OTEL = (
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_METRICS_EXPORTER",
    "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT",
)


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return tuple(_value(v) for v in value.array_value.values)
    return getattr(value, kind) if kind else None


class Collector:
    """Records what arrives: span dicts, resource attributes, metric names, request paths."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.spans: dict[str, dict[str, Any]] = {}
        self.resources: list[dict[str, Any]] = []
        self.metrics: dict[str, Any] = {}
        self.lock = threading.Lock()

    def take(self, path: str, body: bytes) -> bytes:
        with self.lock:
            self.paths.append(path)
            if "metrics" in path:
                return self._metrics(body)
            return self._traces(body)

    def _metrics(self, body: bytes) -> bytes:
        metrics = ExportMetricsServiceRequest()
        metrics.ParseFromString(body)
        for resource_metrics in metrics.resource_metrics:
            for scope in resource_metrics.scope_metrics:
                for metric in scope.metrics:
                    self.metrics[metric.name] = metric
        reply: bytes = ExportMetricsServiceResponse().SerializeToString()
        return reply

    def _traces(self, body: bytes) -> bytes:
        message = ExportTraceServiceRequest()
        message.ParseFromString(body)
        for resource_spans in message.resource_spans:
            self.resources.append(
                {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            )
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    self.spans[span.name] = {
                        "attributes": {a.key: _value(a.value) for a in span.attributes},
                        "events": [
                            (e.name, {a.key: _value(a.value) for a in e.attributes})
                            for e in span.events
                        ],
                    }
        reply: bytes = ExportTraceServiceResponse().SerializeToString()
        return reply


@pytest.fixture
def collector(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Collector, str]]:
    for name in _OTEL:
        monkeypatch.delenv(name, raising=False)
    state = Collector()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            reply = state.take(self.path, body)
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


async def _export(tmp_path: Path, **kwargs: Any) -> None:
    provider = create_tracer_provider(store=None, **kwargs)
    run_execution(get_tracer(provider), 2)
    await anyio.to_thread.run_sync(provider.shutdown)


def test_signal_urls_follow_the_otlp_exporter_specification() -> None:
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318/otel/"}
    assert otlp_signal_url("traces", None, env) == "http://c:4318/otel/v1/traces"
    assert otlp_signal_url("metrics", None, env) == "http://c:4318/otel/v1/metrics"
    env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = "http://c:9/ingest/spans"
    assert otlp_signal_url("traces", None, env) == "http://c:9/ingest/spans"  # as given
    assert otlp_signal_url("metrics", None, env) == "http://c:4318/otel/v1/metrics"
    assert otlp_signal_url("traces", "http://x:1", env) == "http://x:1/v1/traces"
    assert otlp_signal_url("metrics", "http://x:1/v1/traces", env) == "http://x:1/v1/metrics"
    assert otlp_signal_url("traces", "", env) is None
    assert otlp_signal_url("traces", None, {}) is None


async def test_a_signal_specific_traces_endpoint_is_used_as_given(
    collector: tuple[Collector, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state, base = collector
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", f"{base}/custom/ingest")
    await _export(tmp_path)
    assert state.paths
    assert set(state.paths) == {"/custom/ingest"}


@pytest.mark.parametrize(
    ("env", "service"),
    [
        ({}, "tlm"),
        ({"OTEL_SERVICE_NAME": "checkout"}, "checkout"),
        ({"OTEL_RESOURCE_ATTRIBUTES": "service.name=billing,team=x"}, "billing"),
    ],
)
async def test_the_service_is_named_tlm_unless_the_environment_names_it(
    collector: tuple[Collector, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
    service: str,
) -> None:
    state, base = collector
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    await _export(tmp_path, otlp_endpoint=base)
    assert {r["service.name"] for r in state.resources} == {service}


async def test_exported_spans_carry_the_backends_dialects_and_no_content_by_default(
    collector: tuple[Collector, str], tmp_path: Path
) -> None:
    state, base = collector
    await _export(tmp_path, otlp_endpoint=base, capture_content=False)
    root = state.spans["tlm.execute extract"]
    assert root["attributes"]["openinference.span.kind"] == "CHAIN"
    assert root["attributes"]["langfuse.observation.type"] == "chain"
    assert "input.value" not in root["attributes"]  # derived from content: not without it
    assert "langfuse.trace.input" not in root["attributes"]
    (event,) = root["events"]
    assert event[0] == "gen_ai.evaluation.result"
    assert event[1]["gen_ai.evaluation.score.label"] == "pass"
    call = state.spans["chat small-model"]["attributes"]
    assert call["openinference.span.kind"] == "LLM"
    assert call["llm.token_count.prompt"] == 10
    assert call["llm.token_count.total"] == 15
    assert call["llm.cost.total"] == pytest.approx(0.001)
    assert json.loads(call["langfuse.observation.usage_details"]) == {
        "input": 10,
        "output": 5,
        "total": 15,
    }
    assert json.loads(call["langfuse.observation.cost_details"]) == {"total": 0.001}
    assert state.spans["tlm.verify consensus"]["attributes"]["openinference.span.kind"] == (
        "EVALUATOR"
    )


async def test_with_capture_the_dialects_carry_input_and_output(
    collector: tuple[Collector, str], tmp_path: Path
) -> None:
    state, base = collector
    await _export(tmp_path, otlp_endpoint=base, capture_content=True)
    root = state.spans["tlm.execute extract"]["attributes"]
    assert json.loads(root["input.value"]) == {"text": "input 2", "secret": "[REDACTED]"}
    assert root["input.mime_type"] == "application/json"
    assert json.loads(root["output.value"]) == {"value": 2}
    assert json.loads(root["langfuse.trace.output"]) == {"value": 2}


async def test_no_dialects_when_compat_is_off(
    collector: tuple[Collector, str], tmp_path: Path
) -> None:
    state, base = collector
    await _export(tmp_path, otlp_endpoint=base, capture_content=True, dialects=())
    for span in state.spans.values():
        assert not any(
            key.startswith(("openinference.", "llm.", "langfuse.", "input.", "output."))
            for key in span["attributes"]
        )


def test_no_meter_provider_without_an_endpoint_or_with_metrics_turned_off() -> None:
    assert create_meter_provider(None, environ={}) is None
    assert (
        create_meter_provider("http://127.0.0.1:9", environ={"OTEL_METRICS_EXPORTER": "none"})
        is None
    )


async def test_an_engine_exports_genai_client_metrics_over_otlp(
    collector: tuple[Collector, str], tmp_path: Path
) -> None:
    from tests.engine.conftest import ScriptedModels, catalog_data, make_task

    state, base = collector
    models = ScriptedModels()
    models.handlers["*"] = lambda request: json.dumps({"title": "Chef"})
    engine = Engine(
        EngineConfig(data_dir=tmp_path / "data", models=("model-a",), otlp_endpoint=base),
        registry=DefinitionRegistry([make_task()]),
        catalog=Catalog.from_data(catalog_data(("model-a",))),
        providers={"model-a": models},
    )
    async with engine:
        await engine.execute("title_extraction", {"posting": "Chef wanted"})
    # closing the engine flushed its meter provider into the collector
    assert "/v1/metrics" in state.paths
    duration = state.metrics["gen_ai.client.operation.duration"]
    assert duration.unit == "s"
    point = duration.histogram.data_points[0]
    assert list(point.explicit_bounds)[:3] == [0.01, 0.02, 0.04]
    tokens = state.metrics["gen_ai.client.token.usage"]
    sums = {
        {a.key: _value(a.value) for a in p.attributes}["gen_ai.token.type"]: p.sum
        for p in tokens.histogram.data_points
    }
    assert sums == {"input": 100, "output": 50}
    assert state.metrics["tlm.executions"].sum.data_points[0].as_int == 1


def test_telemetry_compat_comes_from_the_config_file_and_the_environment(tmp_path: Path) -> None:
    from tlm.engine.config import load_config
    from tlm.errors import ConfigurationError

    assert load_config(env={}).telemetry_compat == ("openinference", "langfuse")
    toml = tmp_path / "tlm.toml"
    toml.write_text('[tlm]\ntelemetry_compat = ["langfuse"]\n')
    assert load_config(toml, env={}).telemetry_compat == ("langfuse",)
    toml.write_text("[tlm]\ntelemetry_compat = []\n")
    assert load_config(toml, env={}).telemetry_compat == ()
    assert load_config(env={"TLM_TELEMETRY_COMPAT": "openinference"}).telemetry_compat == (
        "openinference",
    )
    toml.write_text('[tlm]\ntelemetry_compat = ["zipkin"]\n')
    with pytest.raises(ConfigurationError, match="zipkin"):
        load_config(toml, env={})
