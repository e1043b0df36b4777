"""``tlm codegen`` (and ``--check``), ``tlm workflow-runs``, and loading a workflow file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tlm.cli import main
from tlm.cli.workflow import load_workflow
from tlm.definition.registry import DefinitionRegistry
from tlm.workflow import WorkflowRun, WorkflowStore
from tlm.workflow.codegen import class_name, constant_name, generate_module
from tlm.workflow.record import StepRun

from .conftest import definitions

ROOT = Path(__file__).resolve().parents[2]


def test_the_shipped_module_is_up_to_date() -> None:
    result = CliRunner().invoke(
        main,
        [
            "codegen",
            "--check",
            "--definitions",
            str(ROOT / "definitions"),
            "--output",
            str(ROOT / "dsl" / "tasks.py"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "up to date" in result.output


def test_check_fails_on_a_stale_module_and_writing_fixes_it(tmp_path: Path) -> None:
    out = tmp_path / "tasks.py"
    out.write_text(
        (ROOT / "dsl" / "tasks.py")
        .read_text(encoding="utf-8")
        .replace("job_posting: str", "job_posting: int")
    )
    args = ["codegen", "--definitions", str(ROOT / "definitions"), "--output", str(out)]
    stale = CliRunner().invoke(main, [*args, "--check"])
    assert stale.exit_code == 1
    assert "-    job_posting: int" in stale.output
    assert "+    job_posting: str" in stale.output
    assert CliRunner().invoke(main, args).exit_code == 0
    assert CliRunner().invoke(main, [*args, "--check"]).exit_code == 0


def test_generated_models_follow_the_schemas() -> None:
    source = generate_module(DefinitionRegistry(definitions()))
    namespace: dict[str, Any] = {}
    exec(compile(source, "generated", "exec", dont_inherit=True), namespace)
    extract = namespace["T_EXTRACT"]
    assert (extract.id, extract.version) == ("t_extract", "1.0.0")
    assert namespace["TDecomposeInput"].__required_keys__ == frozenset({"skill_name"})
    assert namespace["TDecomposeInput"].__optional_keys__ == frozenset({"context"})
    assert 'level: Literal["junior", "senior"]' in source
    assert class_name("job-detail extraction") == "JobDetailExtraction"
    assert constant_name("9lives") == "T_9LIVES"


def test_workflow_runs_lists_and_shows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TLM_DATA_DIR", str(tmp_path))
    store = WorkflowStore(tmp_path / "workflows.db")
    run = WorkflowRun(
        run_id="abc123def456",
        workflow="demo",
        status="failed",
        started_at="2026-01-01T00:00:00+00:00",
        latency_s=1.5,
        cost_usd=0.25,
        steps=(StepRun("extract", "task", "failed", 0.0, 1.5, 0.25, error="boom"),),
        error="ProviderError: boom",
    )
    store.write(run)
    listed = CliRunner().invoke(main, ["workflow-runs"])
    assert listed.exit_code == 0, listed.output
    assert "abc123def456" in listed.output
    assert "demo" in listed.output
    shown = CliRunner().invoke(main, ["workflow-runs", "abc123"])
    assert shown.exit_code == 0, shown.output
    assert "extract" in shown.output
    assert "ProviderError: boom" in shown.output
    missing = CliRunner().invoke(main, ["workflow-runs", "zzz"])
    assert missing.exit_code == 1


def test_the_store_migrates_once_and_refuses_a_newer_schema(tmp_path: Path) -> None:
    import sqlite3

    from tlm.errors import StoreError

    path = tmp_path / "workflows.db"
    assert WorkflowStore(path).list() == []
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA user_version").fetchone()[0] == 1
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        connection.execute("PRAGMA user_version = 99")
    with pytest.raises(StoreError, match="newer"):
        WorkflowStore(path).list()


def test_load_workflow_finds_the_one_workflow_in_a_file() -> None:
    workflow = load_workflow(ROOT / "dsl" / "job_assessment.py", None)
    assert workflow.name == "job_assessment"
