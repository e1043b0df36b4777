"""TLM's spans as Arize Phoenix shows them, read back through Phoenix's REST API.

The scenario (:mod:`.scenario`) sends a success, a failed verification and a provider error over
OTLP/HTTP to a real Phoenix, once with content capture on and once off, each into its own
Phoenix project. Phoenix reads the GenAI conventions itself (span kinds from
``gen_ai.operation.name``, messages from ``gen_ai.input.messages``); TLM adds OpenInference's span
kinds for its own spans (CHAIN, EVALUATOR), ``input.value``/``output.value`` and ``llm.cost.*``.
Phoenix 20.26.1 does not turn span events into annotations: a verdict shows as the
``gen_ai.evaluation.result`` event on the execution's span and as the EVALUATOR span's output.
"""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tlm.store import ExecutionStore

from .scenario import (
    COMPLETION_TOKENS,
    PRICES,
    PRIMARY,
    PROMPT_TOKENS,
    REVIEWER,
    WIRE,
    run_scenario,
)

pytestmark = pytest.mark.interop

Span = dict[str, Any]


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as reply:
        return json.load(reply)


def _spans(phoenix: str, project: str, trace_ids: list[str], expected: int) -> list[Span]:
    """The project's spans of ``trace_ids``, once Phoenix has ingested ``expected`` of them."""
    query = urllib.parse.urlencode([("trace_id", t) for t in trace_ids] + [("limit", 1000)])
    url = f"{phoenix}/v1/projects/{project}/spans?{query}"
    deadline = time.monotonic() + 60
    spans: list[Span] = []
    while time.monotonic() < deadline:
        try:
            spans = _get(url)["data"]
        except OSError:  # the project appears with its first span
            spans = []
        if len(spans) >= expected:
            return spans
        time.sleep(0.5)
    raise AssertionError(f"Phoenix has {len(spans)} of {expected} spans of {trace_ids}")


def _cost(model: str) -> float:
    price_in, price_out = PRICES[model]
    return (PROMPT_TOKENS * price_in + COMPLETION_TOKENS * price_out) / 1e6


async def _send(
    phoenix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, capture: bool
) -> tuple[str, dict[str, list[Span]]]:
    """Run the scenario into a fresh project; the spans of each case, by case."""
    project = f"tlm-interop-{'capture' if capture else 'no-capture'}-{time.time_ns()}"
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", str(capture).lower())
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", f"openinference.project.name={project}")
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "none")  # Phoenix takes traces only
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    outcomes = await run_scenario(phoenix, tmp_path / "data", session_id=f"session-{project}")
    with ExecutionStore(tmp_path / "data" / "tlm.db") as store:
        traces: dict[str, str] = {}
        for outcome in outcomes:
            assert outcome.execution_id is not None, outcome
            record = store.get(outcome.execution_id)
            assert record is not None
            assert record.trace_id is not None
            assert record.session_id == f"session-{project}"
            traces[outcome.case] = record.trace_id
    assert {o.case: o.status for o in outcomes} == {
        "success": "verified",
        "failed_verification": "failed",
        "provider_error": "failed",
    }
    # success: root, primary call, verifier, reviewer call; failed verification: the same;
    # provider error: root and one failed call per model tried
    spans = _spans(phoenix, project, list(traces.values()), expected=4 + 4 + 3)
    by_case = {
        case: [s for s in spans if s["context"]["trace_id"] == trace_id]
        for case, trace_id in traces.items()
    }
    return project, by_case


def _one(spans: list[Span], kind: str, name_prefix: str = "") -> Span:
    found = [s for s in spans if s["span_kind"] == kind and s["name"].startswith(name_prefix)]
    assert len(found) == 1, [(s["name"], s["span_kind"]) for s in spans]
    return found[0]


def _evaluations(span: Span) -> list[dict[str, Any]]:
    return [e["attributes"] for e in span["events"] if e["name"] == "gen_ai.evaluation.result"]


async def test_phoenix_shows_prompts_replies_verdicts_tokens_and_cost(
    phoenix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, cases = await _send(phoenix, tmp_path, monkeypatch, capture=True)

    success = cases["success"]
    root = _one(success, "CHAIN", "tlm.execute")
    assert root["parent_id"] is None
    assert root["attributes"]["gen_ai.operation.name"] == "invoke_workflow"
    assert json.loads(root["attributes"]["input.value"]) == {
        "posting": "Senior Engineer wanted in Berlin"
    }
    assert json.loads(root["attributes"]["output.value"]) == {"title": "Senior Engineer"}
    assert root["attributes"]["tag.tags"] == ["interop"]
    assert root["attributes"]["session.id"].startswith("session-tlm-interop")
    (verdict,) = _evaluations(root)
    assert verdict["gen_ai.evaluation.name"] == "hierarchical"
    assert verdict["gen_ai.evaluation.score.label"] == "pass"
    assert verdict["gen_ai.evaluation.score.value"] == pytest.approx(0.95)

    primary = _one(success, "LLM", f"chat {WIRE[PRIMARY]}")
    attrs = primary["attributes"]
    assert attrs["gen_ai.request.model"] == WIRE[PRIMARY]
    assert attrs["llm.model_name"] == WIRE[PRIMARY]
    assert attrs["tlm.request.model"] == PRIMARY
    assert attrs["server.address"] == "127.0.0.1"
    assert isinstance(attrs["server.port"], int)
    assert attrs["gen_ai.output.type"] == "json"
    assert attrs["llm.token_count.prompt"] == PROMPT_TOKENS
    assert attrs["llm.token_count.completion"] == COMPLETION_TOKENS
    assert attrs["llm.token_count.total"] == PROMPT_TOKENS + COMPLETION_TOKENS
    assert attrs["llm.cost.total"] == pytest.approx(_cost(PRIMARY))
    assert attrs["llm.cost.prompt"] + attrs["llm.cost.completion"] == pytest.approx(_cost(PRIMARY))
    # Phoenix turned gen_ai.input.messages / gen_ai.output.messages into its own messages
    assert attrs["llm.input_messages.1.message.role"] == "user"
    assert "Senior Engineer wanted in Berlin" in attrs["llm.input_messages.1.message.content"]
    assert attrs["llm.output_messages.0.message.role"] == "assistant"
    assert json.loads(attrs["llm.output_messages.0.message.content"]) == {
        "title": "Senior Engineer"
    }
    assert json.loads(attrs["output.value"]) == {"title": "Senior Engineer"}

    evaluator = _one(success, "EVALUATOR", "tlm.verify")
    assert json.loads(evaluator["attributes"]["output.value"])["label"] == "pass"
    reviewer = _one(success, "LLM", f"chat {WIRE[REVIEWER]}")
    assert reviewer["parent_id"] == evaluator["context"]["span_id"]
    assert reviewer["attributes"]["llm.cost.total"] == pytest.approx(_cost(REVIEWER))

    failed = cases["failed_verification"]
    root = _one(failed, "CHAIN", "tlm.execute")
    assert root["status_code"] == "ERROR"
    assert root["attributes"]["error.type"] == "VerificationFailed"
    (verdict,) = _evaluations(root)
    assert verdict["gen_ai.evaluation.score.label"] == "fail"
    assert "seniority" in verdict["gen_ai.evaluation.explanation"]
    assert verdict["gen_ai.response.id"]  # the reply it judged
    assert json.loads(_one(failed, "EVALUATOR")["attributes"]["output.value"]) == {
        "method": "hierarchical",
        "passed": False,
        "label": "fail",
        "confidence": 0.95,
    }
    assert root["attributes"]["tlm.cost.usd"] == pytest.approx(_cost(PRIMARY) + _cost(REVIEWER))

    broken = cases["provider_error"]
    root = _one(broken, "CHAIN", "tlm.execute")
    assert root["status_code"] == "ERROR"
    assert root["attributes"]["error.type"] == "ProviderUnavailable"
    assert _evaluations(root) == []  # nothing was verified: no score at all
    calls = [s for s in broken if s["span_kind"] == "LLM"]
    assert calls
    assert all(s["status_code"] == "ERROR" for s in calls)
    assert all(s["attributes"]["error.type"] == "ProviderUnavailable" for s in calls)
    assert all("llm.token_count.prompt" not in s["attributes"] for s in calls)


async def test_without_capture_phoenix_gets_no_prompt_or_reply(
    phoenix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, cases = await _send(phoenix, tmp_path, monkeypatch, capture=False)
    every = [span for spans in cases.values() for span in spans]
    text = json.dumps(every)
    for content in ("Senior Engineer", "Head Chef", "Night porter", "seniority"):
        assert content not in text
    for span in every:
        attrs = span["attributes"]
        assert not any(k.startswith(("gen_ai.input.", "gen_ai.output.messages")) for k in attrs)
        assert not any(k.startswith(("llm.input_messages", "llm.output_messages")) for k in attrs)
        assert "input.value" not in attrs or span["span_kind"] != "CHAIN"
    # what is not content still arrives: kinds, tokens, cost and the verdicts
    root = _one(cases["failed_verification"], "CHAIN", "tlm.execute")
    (verdict,) = _evaluations(root)
    assert verdict["gen_ai.evaluation.score.label"] == "fail"
    assert "gen_ai.evaluation.explanation" not in verdict
    primary = _one(cases["success"], "LLM", f"chat {WIRE[PRIMARY]}")
    assert primary["attributes"]["llm.token_count.prompt"] == PROMPT_TOKENS
    assert primary["attributes"]["llm.cost.total"] == pytest.approx(_cost(PRIMARY))
