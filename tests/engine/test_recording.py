"""Every execution, failed ones included, becomes spans and one record in the store."""

from __future__ import annotations

from pathlib import Path

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from tests.engine.conftest import MODELS, ScriptedModels, catalog_data, make_task, reply
from tlm.catalog import Catalog
from tlm.definition.registry import DefinitionRegistry
from tlm.engine import Engine, EngineConfig
from tlm.errors import ConfigurationError, InputInvalid


def build(tmp_path: Path, models: ScriptedModels, exporter: InMemorySpanExporter) -> Engine:
    return Engine(
        EngineConfig(data_dir=tmp_path / "data", models=MODELS, redact=("secret",)),
        registry=DefinitionRegistry([make_task()]),
        catalog=Catalog.from_data(catalog_data()),
        providers=dict.fromkeys(MODELS, models),
        span_processors=[SimpleSpanProcessor(exporter)],
    )


async def test_spans_nest_and_carry_the_conventions(tmp_path: Path, models: ScriptedModels) -> None:
    exporter = InMemorySpanExporter()
    models.handlers["*"] = reply({"title": "Chef"})
    async with build(tmp_path, models, exporter) as engine:
        result = await engine.execute("title_extraction", {"posting": "Chef wanted"})
    spans = {span.name: span for span in exporter.get_finished_spans()}
    root = spans["tlm.execute title_extraction"]
    call = spans["chat model-a"]
    assert call.kind is SpanKind.CLIENT
    assert call.parent is not None
    assert call.parent.span_id == root.context.span_id
    assert "tlm.verify none" not in spans  # nothing beyond schema and rules ran
    assert call.attributes is not None
    assert call.attributes["gen_ai.request.model"] == "model-a"
    assert call.attributes["gen_ai.usage.input_tokens"] == 100
    assert call.attributes["gen_ai.provider.name"] == "fake"
    assert root.attributes is not None
    assert root.attributes["tlm.execution.id"] == result.execution_id
    assert root.attributes["tlm.prompt.variant"] == "standard"
    assert root.attributes["tlm.verification.method"] == "none"
    assert root.attributes["tlm.verification.passed"] is True


async def test_success_and_failure_are_both_recorded(
    tmp_path: Path, models: ScriptedModels
) -> None:
    exporter = InMemorySpanExporter()
    models.handlers["*"] = reply({"title": "Chef"})
    async with build(tmp_path, models, exporter) as engine:
        ok = await engine.execute("title_extraction", {"posting": "Chef", "secret": "s3cr3t"})
        with pytest.raises(InputInvalid) as caught:
            await engine.execute("title_extraction", {"posting": ""})
        engine.flush()
        assert engine.store is not None
        good = engine.store.get(ok.execution_id)
        bad = engine.store.get(str(caught.value.execution_id))
    assert good is not None
    assert good.task_id == "title_extraction"
    assert good.task_version == "1.0.0"
    assert good.output == {"title": "Chef"}
    assert good.input == {"posting": "Chef", "secret": "[REDACTED]"}
    assert good.models_used == ("model-a",)
    assert good.performance.cost == pytest.approx(ok.cost_usd)
    assert good.performance.tokens_used == 150
    assert good.verification_results is not None
    assert good.verification_results.method_used == "none"
    assert bad is not None
    assert bad.error is not None
    assert "InputInvalid" in str(bad.error)
    assert bad.output is None


async def test_a_verifier_run_is_a_child_span_and_its_verdict_an_evaluation_event(
    tmp_path: Path, models: ScriptedModels
) -> None:
    async def approve(payload: object) -> dict[str, object]:
        return {"passed": True, "confidence": 0.75}

    exporter = InMemorySpanExporter()
    models.handlers["*"] = reply({"title": "Chef"})
    task = make_task(
        verification={
            "method": "external",
            "parameters": {"function": "approve"},
            "fallback_strategy": "fail",
        }
    )
    engine = Engine(
        EngineConfig(data_dir=tmp_path / "data", models=MODELS),
        registry=DefinitionRegistry([task]),
        catalog=Catalog.from_data(catalog_data()),
        providers=dict.fromkeys(MODELS, models),
        span_processors=[SimpleSpanProcessor(exporter)],
        functions={"approve": approve},
    )
    async with engine:
        await engine.execute("title_extraction", {"posting": "Chef wanted"})
    spans = {span.name: span for span in exporter.get_finished_spans()}
    root = spans["tlm.execute title_extraction"]
    verify = spans["tlm.verify external"]
    assert verify.parent is not None
    assert verify.parent.span_id == root.context.span_id
    assert verify.attributes is not None
    assert verify.attributes["tlm.verification.confidence"] == 0.75
    assert not any(key.startswith("gen_ai.evaluation") for key in verify.attributes)
    (event,) = [e for e in root.events if e.name == "gen_ai.evaluation.result"]
    assert event.attributes is not None
    assert event.attributes["gen_ai.evaluation.name"] == "external"
    assert event.attributes["gen_ai.evaluation.score.value"] == 0.75
    assert event.attributes["gen_ai.evaluation.score.label"] == "pass"


async def test_redacted_fields_stay_out_of_the_recorded_prompt(
    tmp_path: Path, models: ScriptedModels
) -> None:
    models.handlers["*"] = reply({"title": "Chef"})
    engine = Engine(
        EngineConfig(data_dir=tmp_path / "data", models=MODELS, redact=("posting",)),
        registry=DefinitionRegistry([make_task()]),
        catalog=Catalog.from_data(catalog_data()),
        providers=dict.fromkeys(MODELS, models),
    )
    async with engine:
        result = await engine.execute("title_extraction", {"posting": "Chef at Alice's"})
        assert engine.store is not None
        record = engine.store.get(result.execution_id)
    assert models.requests[0].messages[-1].content.endswith("Chef at Alice's")  # sent as is
    assert record is not None
    assert record.prompt == "Extract the job title from: [REDACTED]"
    assert record.input == {"posting": "[REDACTED]"}
    assert record.system_prompt is not None
    assert record.system_prompt.startswith("Answer with one JSON value")


async def test_a_configuration_error_at_run_time_is_raised_and_recorded(tmp_path: Path) -> None:
    data = catalog_data()
    for card in data["models"]:
        card["api_key_env"] = "TLM_TEST_KEY_THAT_IS_NOT_SET"
    engine = Engine(
        EngineConfig(data_dir=tmp_path / "data", models=MODELS, env={}),
        registry=DefinitionRegistry([make_task()]),
        catalog=Catalog.from_data(data),
    )
    async with engine:
        with pytest.raises(ConfigurationError, match="TLM_TEST_KEY_THAT_IS_NOT_SET") as caught:
            await engine.execute("title_extraction", {"posting": "Chef"})
        assert engine.store is not None
        records = engine.store.query(task_id="title_extraction")
    assert len(records) == 1
    assert records[0].error is not None
    assert records[0].error.type == "ConfigurationError"
    assert str(caught.value) in records[0].error.message
