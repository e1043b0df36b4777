"""``tlm update-rankings`` also learns the input-aware selector and the learned cascades."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
from click.testing import CliRunner

from tests.learn.records import record, store_records
from tlm.cli import main
from tlm.definition.loader import parse_definition
from tlm.definition.registry import DefinitionRegistry
from tlm.learn.updates import load_cascade_plans, load_selector, update_learning
from tlm.store.sqlite import ExecutionStore
from tlm.telemetry.records import ExecutionRecord, format_timestamp


def voted(prompt: str, right: str, wrong: str, **kwargs: Any) -> ExecutionRecord:
    """A cascade record: ``right`` and ``wrong`` disagreed; ``right``'s answer was accepted."""
    details = {
        "votes": [
            {"model": wrong, "cluster": 0, "cost_usd": 0.001},
            {"model": right, "cluster": 1, "cost_usd": 0.01},
        ],
        "representative": right,
    }
    made = record(model=wrong, method="cascade", passed=True, details=details, **kwargs)
    recently = format_timestamp(datetime.now(UTC) - timedelta(hours=1))
    return attrs.evolve(made, prompt=prompt, timestamp=recently)


def records() -> list[ExecutionRecord]:
    out = []
    for i in range(40):
        if i % 2:
            out.append(voted(f"gardening apples {i}", "model-a", "model-b"))
        else:
            out.append(voted(f"quantum physics {i}", "model-b", "model-a"))
    return out


def test_update_rankings_command_writes_the_selector(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with ExecutionStore(data_dir / "tlm.db") as store:
        store_records(store, records())
    result = CliRunner().invoke(
        main, ["update-rankings", "--data-dir", str(data_dir)], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    assert "input-aware selector: learned outcomes per task: title_extraction (80)" in result.output
    selector = load_selector(data_dir, policy="greedy")
    garden = {
        p.model: p.quality
        for p in selector.predict("title_extraction", "gardening apples 99", ["model-a", "model-b"])
    }
    physics = {
        p.model: p.quality
        for p in selector.predict("title_extraction", "quantum physics 98", ["model-a", "model-b"])
    }
    assert garden["model-a"] > garden["model-b"]
    assert physics["model-b"] > physics["model-a"]


def test_update_learning_plans_learned_cascades(tmp_path: Path) -> None:
    document = {
        "id": "title_extraction",
        "name": "Title",
        "description": "Extract a title.",
        "version": "1.0.0",
        "input": {"schema": {"type": "object"}},
        "output": {"schema": {"type": "object"}},
        "prompts": [
            {
                "id": "p",
                "text": "Title?",
                "template_variables": [],
                "usage_conditions": {"default": True},
            }
        ],
        "verification": {
            "method": "cascade",
            "parameters": {
                "ladder": "learned",
                "models": ["model-b", "model-a"],
                "target_quality": 0.9,
            },
        },
    }
    registry = DefinitionRegistry((parse_definition(document, source="t"),))
    data_dir = tmp_path / "data"
    with ExecutionStore(data_dir / "tlm.db") as store:
        store_records(store, records())
        _, plans = update_learning(store, data_dir, period=None, registry=registry)
    assert set(plans) == {"title_extraction"}
    loaded = load_cascade_plans(data_dir)
    assert loaded["title_extraction"].ladder == plans["title_extraction"].ladder
    assert {m for rung in loaded["title_extraction"].ladder for m in rung} <= {"model-a", "model-b"}


def test_executions_show_prints_why_the_model_was_chosen(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    explained = attrs.evolve(
        record(execution_id="chosen-one"),
        selection={"chosen": "model-c", "reason": "model-c: highest greedy P(success)"},
    )
    with ExecutionStore(data_dir / "tlm.db") as store:
        store_records(store, [explained])
    result = CliRunner().invoke(
        main,
        ["executions", "show", "chosen-one", "--data-dir", str(data_dir)],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if line.startswith("selection"))
    assert '"chosen": "model-c"' in line
