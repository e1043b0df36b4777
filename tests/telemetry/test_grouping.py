"""Session, user, tags and metadata: from ExecuteOptions and the CLI into spans and records.

Also: the store migrates a version-1 database (the new columns are added, old rows read back),
the light tracer keeps span events, and the engine records messages on model-call spans only
when content capture is on (the store keeps the prompt either way).
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
from pathlib import Path

import anyio
import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.engine.conftest import ScriptedModels, catalog_data, make_task
from tests.interop import scenario
from tlm.catalog import Catalog
from tlm.definition.registry import DefinitionRegistry
from tlm.engine import Engine, EngineConfig, ExecuteOptions
from tlm.engine.result import coerce_options
from tlm.store import ExecutionStore
from tlm.store.sqlite import MIGRATIONS
from tlm.telemetry.light import LightTracerProvider
from tlm.telemetry.records import ExecutionRecord
from tlm.testing import FakeOpenAIServer

from .fakes import run_execution


def _engine(tmp_path: Path, models: ScriptedModels, **kwargs: object) -> Engine:
    models.handlers["*"] = lambda request: json.dumps({"title": "Chef"})
    return Engine(
        EngineConfig(data_dir=tmp_path / "data", models=("model-a",), otlp_endpoint=""),
        registry=DefinitionRegistry([make_task()]),
        catalog=Catalog.from_data(catalog_data(("model-a",))),
        providers={"model-a": models},
        **kwargs,  # type: ignore[arg-type]
    )


async def test_options_group_an_execution_in_its_spans_and_its_record(tmp_path: Path) -> None:
    exporter = InMemorySpanExporter()
    engine = _engine(tmp_path, ScriptedModels(), span_processors=[SimpleSpanProcessor(exporter)])
    options = coerce_options(
        {
            "session_id": "s-42",
            "user_id": "u-7",
            "tags": ["nightly", "eu"],
            "metadata": {"team": "search", "run": "3"},
        }
    )
    assert options.tags == ("nightly", "eu")
    async with engine:
        result = await engine.execute("title_extraction", {"posting": "Chef"}, options=options)
        engine.flush()
        record = engine.store.get(result.execution_id) if engine.store else None
    assert record is not None
    assert (record.session_id, record.user_id) == ("s-42", "u-7")
    assert record.tags == ("nightly", "eu")
    assert record.metadata == {"team": "search", "run": "3"}
    assert ExecutionRecord.from_json(record.to_json()) == record
    root = next(s for s in exporter.get_finished_spans() if s.name.startswith("tlm.execute"))
    attrs = dict(root.attributes or {})
    assert attrs["session.id"] == "s-42"
    assert attrs["user.id"] == "u-7"
    assert attrs["tag.tags"] == ("nightly", "eu")
    assert json.loads(str(attrs["metadata"])) == {"team": "search", "run": "3"}


async def test_without_options_nothing_is_grouped(tmp_path: Path) -> None:
    async with _engine(tmp_path, ScriptedModels()) as engine:
        result = await engine.execute("title_extraction", {"posting": "Chef"})
        engine.flush()
        record = engine.store.get(result.execution_id) if engine.store else None
    assert record is not None
    assert (record.session_id, record.user_id, record.tags, record.metadata) == (None, None, (), {})


@pytest.mark.parametrize("capture", [True, False])
async def test_the_engine_records_messages_only_when_capture_is_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capture: bool
) -> None:
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", str(capture).lower())
    exporter = InMemorySpanExporter()
    engine = _engine(tmp_path, ScriptedModels(), span_processors=[SimpleSpanProcessor(exporter)])
    async with engine:
        result = await engine.execute("title_extraction", {"posting": "Chef wanted"})
        engine.flush()
        record = engine.store.get(result.execution_id) if engine.store else None
    call = next(s for s in exporter.get_finished_spans() if s.name.startswith("chat "))
    attrs = dict(call.attributes or {})
    assert ("gen_ai.input.messages" in attrs) is capture
    assert ("gen_ai.output.messages" in attrs) is capture
    if capture:
        assert "Chef wanted" in str(attrs["gen_ai.input.messages"])
    assert record is not None
    assert record.prompt is not None
    assert "Chef wanted" in record.prompt  # the local store keeps content regardless


def test_the_light_tracer_keeps_span_events(tmp_path: Path) -> None:
    with ExecutionStore(tmp_path / "tlm.db") as store:
        provider = LightTracerProvider(store)
        tracer = provider.get_tracer("tlm")
        span = tracer.start_span("tlm.execute t")
        span.add_event("gen_ai.evaluation.result", {"gen_ai.evaluation.score.label": "fail"})
        span.add_event("second")
        events = span.events
        span.end()
        span.add_event("after the end")
        assert [e.name for e in events] == ["gen_ai.evaluation.result", "second"]
        assert dict(events[0].attributes or {}) == {"gen_ai.evaluation.score.label": "fail"}
        assert len(span.events) == 2
        run_execution(provider.get_tracer("tlm"), 0)
        provider.force_flush()
        # The bare root above (no execution id) is kept too, as a failure record.
        assert store.count() == 2


def test_a_version_1_store_gains_the_new_columns_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "tlm.db"
    conn = sqlite3.connect(path)
    for statement in MIGRATIONS[0]:
        conn.execute(statement)
    conn.execute(
        "INSERT INTO executions (execution_id, task_id, task_version, timestamp, status, input, "
        "models_used, execution_time, tokens_used, cost, attempts, cache_hit) "
        "VALUES ('old', 't', '1.0.0', '2026-01-01T00:00:00.000000Z', 'ok', '{}', '[]', 1.0, 3, "
        "0.0, 1, 0)"
    )
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    with ExecutionStore(path) as store:
        old = store.get("old")
        assert old is not None
        assert (old.session_id, old.tags, old.metadata) == (None, (), {})
    columns = {row[1] for row in sqlite3.connect(path).execute("PRAGMA table_info(executions)")}
    assert {"session_id", "user_id", "tags", "metadata"} <= columns
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)


async def test_the_cli_takes_session_user_tags_and_metadata(tmp_path: Path) -> None:
    async with FakeOpenAIServer(scenario.answer) as server:
        definitions = tmp_path / "definitions"
        task_dir = definitions / "tasks" / "title_extraction"
        task_dir.mkdir(parents=True)
        (task_dir / "1.0.0.json").write_text(json.dumps(scenario.task_document()))
        (definitions / "models.json").write_text(json.dumps(scenario.catalog_data(server.base_url)))
        env = {
            **os.environ,
            "TLM_DEFINITIONS": str(definitions),
            "TLM_DATA_DIR": str(tmp_path / "data"),
            "TLM_MODELS": f"{scenario.PRIMARY},{scenario.REVIEWER}",
            "TLM_CACHE": "false",
            "TLM_CONFIG": str(tmp_path / "absent.toml"),
            # The project's cards patch the packaged ones, which keep their key variable.
            "OPENAI_API_KEY": "sk-test-not-a-real-key",
        }
        env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
        command = [
            sys.executable,
            "-c",
            "from tlm.cli import main; main()",
            "execute",
            "title_extraction",
            "--input",
            json.dumps({"posting": "Senior Engineer wanted in Berlin"}),
            "--session-id",
            "cli-session",
            "--user-id",
            "ana",
            "--tag",
            "cli",
            "--tag",
            "smoke",
            "--metadata",
            "ticket=OPS-1",
            "--metadata",
            "query=a=b",
            "--json",
        ]
        done = await anyio.run_process(command, env=env, check=False)
    assert done.returncode == 0, done.stderr.decode()
    execution_id = json.loads(done.stdout)["execution_id"]
    with ExecutionStore(tmp_path / "data" / "tlm.db") as store:
        record = store.get(execution_id)
    assert record is not None
    assert (record.session_id, record.user_id) == ("cli-session", "ana")
    assert record.tags == ("cli", "smoke")
    assert record.metadata == {"ticket": "OPS-1", "query": "a=b"}


async def test_the_cli_refuses_metadata_without_a_value(tmp_path: Path) -> None:
    command = [
        sys.executable,
        "-c",
        "from tlm.cli import main; main()",
        "execute",
        "anything",
        "--input",
        "{}",
        "--metadata",
        "no-equals-sign",
    ]
    done = await anyio.run_process(command, check=False, cwd=tmp_path)
    assert done.returncode == 2
    assert "--metadata" in done.stderr.decode()
    assert "KEY=VALUE" in done.stderr.decode()


def test_execute_options_default_to_no_grouping() -> None:
    options = ExecuteOptions()
    assert (options.session_id, options.user_id, options.tags, dict(options.metadata)) == (
        None,
        None,
        (),
        {},
    )
