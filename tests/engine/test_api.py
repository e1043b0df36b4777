"""``tlm.execute`` with no set-up call, and ``tlm.run``, end to end over a real socket.

Configuration comes from the environment: a catalog of fake models served by tlm.testing's
OpenAI-compatible server, the models to use, and a data directory.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest

import tlm
from tlm.testing import FakeOpenAIServer, chat_completion

REPO = Path(__file__).resolve().parents[2]


def write_catalog(path: Path, base_url: str) -> None:
    models = [
        {
            "id": model,
            "provider": "fake",
            "api": "openai",
            "provider_model": model,
            "base_url": base_url,
            "context_window": 32_768,
            "input_price_per_mtok": 3.0,
            "output_price_per_mtok": 15.0,
            "structured_output": "json_schema",
            "prior_quality": quality,
        }
        for model, quality in (("wire-a", 0.9), ("wire-b", 0.8))
    ]
    path.write_text(json.dumps({"version": 1, "models": models}))


def answer(body: dict[str, Any]) -> dict[str, Any]:
    """Reply like a model would, for every shipped task: echo the skill the prompt names."""
    prompt = body["messages"][-1]["content"]
    skills = ["Statistics", "Linear Algebra", "Python"] if "Machine Learning" in prompt else []
    return chat_completion(
        json.dumps({"elementary_skills": skills, "relationships": []}),
        model=body["model"],
        prompt_tokens=200,
        completion_tokens=40,
    )


@pytest.fixture
def configured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TLM_DATA_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("TLM_MODELS", "wire-a,wire-b")
    monkeypatch.setenv("TLM_CATALOG", str(tmp_path / "models.json"))
    monkeypatch.setenv("TLM_DEFINITIONS", str(REPO / "definitions"))  # the repository's tasks
    return tmp_path


async def test_execute_needs_no_setup_call(configured: Path) -> None:
    async with FakeOpenAIServer(answer) as server:
        write_catalog(configured / "models.json", server.base_url)
        try:
            result = await tlm.execute(
                "skill_decomposition",
                {"skill_name": "Machine Learning"},
                options={"cache": False},
            )
            await tlm.feedback(result.execution_id, correct=True, note="looks right")
        finally:
            await tlm.aclose()
        requests = len(server.requests)
    assert result.output["elementary_skills"] == ["Statistics", "Linear Algebra", "Python"]
    assert result.task_id == "skill_decomposition"
    assert result.models_used[0] == "wire-a"
    # 200 input tokens at $3/M and 40 output tokens at $15/M per call, over every call made
    assert result.cost_usd == pytest.approx(requests * (200 * 3 + 40 * 15) / 1e6)
    assert (configured / "state" / "tlm.db").is_file()
    store = tlm.Engine(tlm.load_config())
    async with store as engine:
        assert engine.store is not None
        record = engine.store.get(result.execution_id)
    assert record is not None
    assert [f.note for f in record.feedback] == ["looks right"]


def test_run_is_a_synchronous_helper(configured: Path) -> None:
    async def main() -> tlm.ExecutionResult:
        async with FakeOpenAIServer(answer) as server:
            write_catalog(configured / "models.json", server.base_url)
            return await anyio.to_thread.run_sync(
                lambda: tlm.run("skill_decomposition", {"skill_name": "Machine Learning"})
            )

    result = anyio.run(main)
    assert result.output["elementary_skills"][0] == "Statistics"
