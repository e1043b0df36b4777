"""dsl/job_assessment.py on the shipped definitions, with scripted models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dsl.job_assessment import JOB_ASSESSMENT, JobAssessmentInput
from tests.engine.conftest import ScriptedModels, catalog_data
from tlm.catalog import Catalog
from tlm.definition.registry import DefinitionRegistry
from tlm.engine import Engine, EngineConfig
from tlm.errors import BadRequest
from tlm.providers.base import ChatRequest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "dsl" / "examples" / "job_assessment.json"
MODELS = ("model-a", "model-b")


def shipped() -> DefinitionRegistry:
    return DefinitionRegistry.from_directory(ROOT / "definitions")


def test_the_job_assessment_workflow_compiles_against_the_shipped_tasks() -> None:
    compiled = JOB_ASSESSMENT.compile(shipped())
    assert {d.id for d in compiled.definitions} == {
        "job_detail_extraction",
        "skill_decomposition",
        "requirement_skill_matching",
        "self_assessment_feedback",
    }


def answer(request: ChatRequest) -> str:
    """Replies by the task's output schema; the requirement mentioning Kafka fails."""
    properties = (request.output_schema or {}).get("properties", {})
    prompt = request.messages[-1].content
    if "passed" in properties:  # a reviewer
        return json.dumps({"passed": True, "confidence": 0.9, "issues": [], "suggestions": []})
    if "job_title" in properties:
        return json.dumps(
            {
                "job_title": "Senior Backend Engineer",
                "responsibilities": ["Build services"],
                "requirements": ["5+ years of Python", "Kafka or RabbitMQ", "Strong SQL"],
            }
        )
    if "elementary_skills" in properties:
        if "Kafka" in prompt:
            raise BadRequest("scripted", provider="fake", model=request.model, status=400)
        word = "Python" if "Python" in prompt else "SQL"
        return json.dumps({"elementary_skills": [f"{word} basics", f"{word} depth", "Testing"]})
    if "match_level" in properties:
        return json.dumps(
            {
                "match_level": "strong",
                "score": 0.8,
                "matched_skills": ["Python"],
                "missing_aspects": [],
                "rationale": "Six years of Python.",
            }
        )
    return json.dumps(
        {
            "calibration": "overrated",
            "suggested_rating": 3,
            "feedback": "Docker is solid; Kubernetes in production is not shown in your account.",
            "strengths": ["Docker"],
            "improvement_steps": ["Run a service on Kubernetes"],
        }
    )


async def test_the_job_assessment_runs_end_to_end(tmp_path: Path) -> None:
    models = ScriptedModels(handlers={"*": answer})
    config = EngineConfig(data_dir=tmp_path, models=MODELS, cache=False)
    value: JobAssessmentInput = json.loads(EXAMPLE.read_text(encoding="utf-8"))
    async with Engine(
        config,
        registry=shipped(),
        catalog=Catalog.from_data(catalog_data(MODELS)),
        providers=dict.fromkeys(MODELS, models),
    ) as engine:
        result = await JOB_ASSESSMENT.run(engine, value)
    output: Any = result.output
    skill_map = output["skill_map"]
    assert skill_map["undecomposed"] == ["Kafka or RabbitMQ"]
    assert [r["requirement"] for r in skill_map["requirements"]] == [
        "5+ years of Python",
        "Strong SQL",
    ]
    assert skill_map["skills"]["Testing"] == ["5+ years of Python", "Strong SQL"]
    assert len(output["matches"]) == 2
    assert output["overall_score"] == 0.8
    assert output["self_assessment_feedback"][0]["feedback"]["calibration"] == "overrated"
    run = result.run
    assert run.step("skill_decomposition[1]").status == "skipped"
    assert run.count("failed") == 0
    assert {s.task_id for s in run.steps if s.kind == "task"} == {
        "job_detail_extraction",
        "skill_decomposition",
        "requirement_skill_matching",
        "self_assessment_feedback",
    }
