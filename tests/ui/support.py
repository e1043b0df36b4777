"""Shared material for the console tests: definitions, a catalog of fake models, seeded stores."""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.ui_pages import seed
from tlm.store.sqlite import ExecutionStore
from tlm.telemetry.records import (
    ExecutionRecord,
    Performance,
    VerificationResults,
    format_timestamp,
)
from tlm.verify.review_queue import ReviewQueue
from tlm.workflow.record import StepRun, WorkflowRun
from tlm.workflow.store import WorkflowStore

REPO = Path(__file__).resolve().parents[2]
FAKE_MODEL = "fake-model"
INJECTION = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'
INJECTION_ID = "feedc0de00000000000000000000beef"


def title_task(
    task_id: str, verification: Mapping[str, Any], *, version: str = "1.0.0"
) -> dict[str, Any]:
    """A small task: the title of a job posting."""
    return {
        "id": task_id,
        "name": task_id.replace("_", " ").title(),
        "description": "Extract the job title from a posting.",
        "version": version,
        "input": {
            "schema": {
                "type": "object",
                "properties": {"posting": {"type": "string", "minLength": 1}},
                "required": ["posting"],
            },
            "examples": [{"posting": "Senior Engineer wanted in Berlin"}],
            "validations": [],
        },
        "output": {
            "schema": {
                "type": "object",
                "properties": {"title": {"type": "string"}},
                "required": ["title"],
            },
            "examples": [{"title": "Senior Engineer"}],
            "validations": [],
        },
        "prompts": [
            {
                "id": "standard",
                "text": "Extract the job title from: {{posting}}",
                "template_variables": ["posting"],
                "usage_conditions": {"default": True},
            },
            {
                "id": "terse",
                "text": "Title only: {{posting}}",
                "template_variables": ["posting"],
                "usage_conditions": {"when": "options.terse == true"},
            },
        ],
        "verification": dict(verification),
        "model_ranking_criteria": {
            "quality_priority": 1.0,
            "speed_priority": 0.0,
            "context_size": "small",
        },
        "cache": {"enabled": False},
    }


def write_task(tasks: Path, document: Mapping[str, Any]) -> Path:
    """Write ``document`` as ``<tasks>/<id>/<version>.json``."""
    target = tasks / str(document["id"]) / f"{document['version']}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return target


def make_definitions(root: Path, base_url: str = "http://127.0.0.1:9/v1") -> Path:
    """A definitions directory: the shipped tasks, two test tasks and a fake-model catalog."""
    shutil.copytree(REPO / "definitions" / "tasks", root / "tasks")
    write_task(root / "tasks", title_task("title_extraction", {"method": "none"}))
    write_task(
        root / "tasks",
        title_task(
            "title_review",
            {
                "method": "human",
                "parameters": {"queue": "default", "wait": True, "timeout_s": 120},
                "fallback_strategy": "fail",
            },
        ),
    )
    write_catalog(root / "models.json", base_url)
    return root


def write_catalog(path: Path, base_url: str) -> None:
    """A catalog with one fake OpenAI-compatible model at ``base_url``."""
    card = {
        "id": FAKE_MODEL,
        "provider": "fake",
        "api": "openai",
        "provider_model": "wire-fake",
        "base_url": base_url,
        "context_window": 32_768,
        "input_price_per_mtok": 1.0,
        "output_price_per_mtok": 2.0,
        "structured_output": "json_schema",
        "prior_quality": 0.9,
        "prior_latency_s": 1.0,
    }
    path.write_text(json.dumps({"version": 1, "models": [card]}), encoding="utf-8")


def injection_record() -> ExecutionRecord:
    """An execution whose input, output, prompt and verification notes try to run script."""
    return ExecutionRecord(
        execution_id=INJECTION_ID,
        task_id="title_extraction",
        task_version="1.0.0",
        input={"posting": INJECTION},
        output={"title": INJECTION},
        models_used=(FAKE_MODEL,),
        verification_results=VerificationResults(
            "hierarchical", False, 0.2, {"issues": [INJECTION], "reason": INJECTION}
        ),
        performance=Performance(0.25, 100, 0.0001),
        timestamp=format_timestamp(datetime.now(UTC)),
        prompt_variant="standard",
        attempts=1,
        prompt=f"Extract the job title from: {INJECTION}",
        spans=(
            {"name": f"tlm.execute {INJECTION}", "parent": None, "start_ms": 0.0,
             "duration_ms": 250.0, "status": "ok", "kind": "internal", "attributes": {}},
            {"name": "chat fake-model", "parent": 0, "start_ms": 5.0, "duration_ms": 200.0,
             "status": "ok", "kind": "client", "attributes": {"gen_ai.usage.input_tokens": 80}},
        ),
    )  # fmt: skip


def seed_data(data_dir: Path, n: int = 150) -> list[str]:
    """Synthetic executions, the injection record with feedback, reviews and workflow runs."""
    ids = seed(data_dir, n)
    with ExecutionStore(data_dir / "tlm.db") as store:
        store.write(injection_record())
        store.flush()
        store.add_feedback(INJECTION_ID, correct=False, note=INJECTION)
    queue = ReviewQueue.in_data_dir(data_dir)
    queue.enqueue(ids[0], "title_extraction", "1.0.0", {"posting": INJECTION}, {"title": INJECTION})
    decided = queue.enqueue(ids[1], "title_extraction", "1.0.0", {"posting": "x"}, {"title": "y"})
    queue.approve(decided, note="fine", reviewer="tester")
    WorkflowStore(data_dir / "workflows.db").write(
        WorkflowRun(
            run_id="run0000000000001",
            workflow="job_assessment",
            status="succeeded",
            started_at=format_timestamp(datetime.now(UTC)),
            latency_s=1.5,
            cost_usd=0.002,
            steps=(
                StepRun("job_detail_extraction", "task", "succeeded", 0.0, 0.6, 0.001,
                        "job_detail_extraction", "1.0.0", ids[2], "verified"),
                StepRun("skill_decomposition[0]", "task", "succeeded", 0.6, 0.4, 0.0005,
                        "skill_decomposition", "1.0.0", ids[3], "verified"),
                StepRun("skill_decomposition[1]", "task", "failed", 0.6, 0.5, 0.0005,
                        "skill_decomposition", "1.0.0", ids[4], None, "OutputInvalid"),
            ),
            output={"summary": INJECTION},
        )
    )  # fmt: skip
    return ids
