"""``tlm analyze``, ``tlm update-rankings`` and ``tlm suggest-prompts`` through click's runner."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest
from anyio.from_thread import start_blocking_portal
from click.testing import CliRunner

from tests.engine.conftest import base_task, catalog_data
from tests.learn.records import MISSING_LOCATION, human, record, store_records
from tlm.cli import main
from tlm.store.sqlite import ExecutionStore
from tlm.telemetry.records import ExecutionRecord, format_timestamp
from tlm.testing import FakeOpenAIServer
from tlm.testing.replies import chat_completion


def recent(r: ExecutionRecord, hours: float) -> ExecutionRecord:
    when = datetime.now(UTC) - timedelta(hours=hours)
    return attrs.evolve(r, timestamp=format_timestamp(when))


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    records = [recent(record(model="model-a", passed=True, latency=1.0), 1) for _ in range(6)]
    records += [
        recent(record(model="model-a", variant="structured", verified=False,
                      error=MISSING_LOCATION), 30)
        for _ in range(3)
    ]  # fmt: skip
    records += [recent(record(model="model-b", passed=False), 50) for _ in range(2)]
    records += [recent(record(model="model-b", passed=True, feedback=[human(correct=True)]), 2)]
    records += [recent(record(model="model-a", passed=False), 24 * 20)]  # outside 7d
    with ExecutionStore(folder / "tlm.db") as store:
        store_records(store, records)
    return folder


def run(*args: str, env: dict[str, str] | None = None) -> Any:
    result = CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
    return result


def test_analyze_tables(data_dir: Path) -> None:
    result = run("analyze", "title_extraction", "--period", "7d", "--data-dir", str(data_dir))
    assert result.exit_code == 0, result.output
    out = result.output
    assert "title_extraction: 12 execution(s)" in out
    assert "By model, prompt variant and version" in out
    assert "Day by day" in out
    assert "$.location: required field missing" in out
    assert "model-b" in out


def test_analyze_json_and_plot(data_dir: Path, tmp_path: Path) -> None:
    png = tmp_path / "report.png"
    result = run("analyze", "title_extraction", "--json", "--plot", str(png),
                 "--data-dir", str(data_dir))  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["overall"]["executions"] == 12
    groups = {(g["model"], g["prompt_variant"]): g for g in data["groups"]}
    assert groups[("model-a", "standard")]["pass_rate"] == 1.0
    assert groups[("model-b", "standard")]["feedback_correct_pct"] == 100.0
    assert data["failures"][0]["key"] == "$.location: required field missing"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 10_000


def test_analyze_errors(tmp_path: Path, data_dir: Path) -> None:
    missing = run("analyze", "t", "--data-dir", str(tmp_path / "none"))
    assert missing.exit_code == 1
    assert "no execution store" in missing.output
    bad = run("analyze", "t", "--period", "soon", "--data-dir", str(data_dir))
    assert bad.exit_code == 2
    assert "not a duration" in bad.output


def test_update_rankings_writes_the_file(data_dir: Path) -> None:
    result = run("update-rankings", "--period", "30d", "--half-life", "7d",
                 "--data-dir", str(data_dir))  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads((data_dir / "rankings.json").read_text())
    task = data["tasks"]["title_extraction"]
    assert set(task["ranking"]) == {"model-a", "model-b"}
    assert task["models"]["model-a"]["samples"] == 10
    assert task["models"]["model-b"]["human_feedback"] == 1
    assert data["provenance"]["records"] == 13
    assert "written to" in result.output
    out = data_dir / "other.json"
    again = run("update-rankings", "--out", str(out), "--data-dir", str(data_dir))
    assert again.exit_code == 0
    assert out.is_file()


def test_suggest_prompts(data_dir: Path) -> None:
    result = run("suggest-prompts", "title_extraction", "--data-dir", str(data_dir))
    assert result.exit_code == 0, result.output
    assert (
        "[structured] a required field `location` is missing in 100% of runs of variant "
        "structured" in result.output
    )
    assert run("suggest-prompts", "x", "--write", "--data-dir", str(data_dir)).exit_code == 2


def test_suggest_prompts_rewrite_and_write(data_dir: Path, tmp_path: Path) -> None:
    definitions = tmp_path / "definitions"
    folder = definitions / "tasks" / "title_extraction"
    folder.mkdir(parents=True)
    (folder / "1.0.0.json").write_text(json.dumps(base_task()))
    new_text = "Extract the job title and the location (null if none) from: {{posting}}"
    server = FakeOpenAIServer(
        [chat_completion(json.dumps({"text": new_text, "rationale": "location was missing"}))]
    )
    with start_blocking_portal() as portal, portal.wrap_async_context_manager(server):
        catalog = catalog_data()
        for card in catalog["models"]:
            card["base_url"] = server.base_url
        (definitions / "models.json").write_text(json.dumps(catalog))
        env = {
            "TLM_DEFINITIONS": str(definitions),
            "TLM_MODELS": "model-a",
            "TLM_DATA_DIR": str(data_dir),
            "TLM_CONFIG": str(tmp_path / "absent.toml"),
        }
        shown = run("suggest-prompts", "title_extraction", "--rewrite", "--variant", "standard",
                    env=env)  # fmt: skip
        assert shown.exit_code == 0, shown.output
        assert new_text in shown.output
        assert "Not written" in shown.output
        assert not (folder / "1.1.0.json").exists()
        server.push(chat_completion(json.dumps({"text": new_text, "rationale": "r"})))
        written = run("suggest-prompts", "title_extraction", "--rewrite", "--variant",
                      "standard", "--write", env=env)  # fmt: skip
    assert written.exit_code == 0, written.output
    document = json.loads((folder / "1.1.0.json").read_text())
    assert document["version"] == "1.1.0"
    assert document["prompts"][-1]["text"] == new_text
    assert document["prompts"][-1]["usage_conditions"] == {"when": "false"}
    prompt = server.bodies[0]["messages"][-1]["content"]
    assert "Extract the job title from: {{posting}}" in prompt
