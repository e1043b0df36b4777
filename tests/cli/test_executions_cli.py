"""``tlm executions``, ``tlm export`` and ``tlm feedback`` against a real store."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from tlm.cli import main
from tlm.cli.executions import parse_since
from tlm.store import ExecutionStore, default_db_path
from tlm.telemetry.records import (
    ExecutionRecord,
    Performance,
    VerificationResults,
    format_timestamp,
)

NOW = datetime.now(UTC)


def _record(
    i: int, *, passed: bool | None, task_id: str = "extract", age_days: int = 0
) -> ExecutionRecord:
    return ExecutionRecord(
        execution_id=f"e{i}",
        task_id=task_id,
        task_version="1.0.0",
        input={"text": f"in {i}"},
        output={"value": i},
        models_used=("m1",),
        verification_results=None
        if passed is None
        else VerificationResults("consensus", passed, 0.9, {}),
        performance=Performance(0.1, 12, 0.0005),
        timestamp=format_timestamp(NOW - timedelta(days=age_days, minutes=i)),
        prompt=f"Extract: in {i}",
        system_prompt="You extract." if i == 0 else None,
    )


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    with ExecutionStore(default_db_path(tmp_path)) as store:
        store.write(_record(0, passed=True))
        store.write(_record(1, passed=False))
        store.write(_record(2, passed=True, task_id="other"))
        store.write(_record(3, passed=None, age_days=30))
    return tmp_path


def run(*args: str, env: dict[str, str] | None = None) -> str:
    result = CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_list_and_show(data_dir: Path) -> None:
    out = run("executions", "list", "--data-dir", str(data_dir))
    assert "4 execution(s)" in out
    out = run(
        "executions", "list", "--task", "extract", "--since", "7d", "--data-dir", str(data_dir)
    )
    assert "e0" in out
    assert "e1" in out
    assert "e2" not in out
    assert "e3" not in out
    assert "2 execution(s)" in out
    shown = json.loads(run("executions", "show", "e1", "--json", "--data-dir", str(data_dir)))
    assert shown["verification_results"]["passed"] is False
    assert shown["performance"] == {"execution_time": 0.1, "tokens_used": 12, "cost": 0.0005}
    text = run("executions", "show", "e1", env={"TLM_DATA_DIR": str(data_dir)})
    assert "execution_id" in text
    assert "e1" in text


def test_feedback_from_the_command_line(data_dir: Path) -> None:
    out = run(
        "feedback", "e0", "--score", "0.8", "--incorrect", "--note", "typo in title",
        "--data-dir", str(data_dir),
    )  # fmt: skip
    assert "feedback recorded for e0" in out
    with ExecutionStore(default_db_path(data_dir)) as store:
        record = store.get("e0")
    assert record is not None
    (fb,) = record.feedback
    assert (fb.source, fb.score, fb.correct, fb.note) == ("human", 0.8, False, "typo in title")


def test_feedback_errors_are_clear(data_dir: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["feedback", "nope", "--score", "1", "--data-dir", str(data_dir)])
    assert result.exit_code == 1
    assert "no execution with id 'nope'" in result.output
    result = runner.invoke(main, ["feedback", "e0", "--data-dir", str(data_dir)])
    assert result.exit_code == 2
    assert "give --score" in result.output
    empty = tmp_path / "empty"
    result = runner.invoke(main, ["executions", "list", "--data-dir", str(empty)])
    assert result.exit_code == 1
    assert "no execution store at" in result.output
    result = runner.invoke(main, ["export", "--since", "soon", "--data-dir", str(data_dir)])
    assert result.exit_code == 2
    assert "neither a duration" in result.output


def test_export_jsonl(data_dir: Path, tmp_path: Path) -> None:
    lines = run("export", "--format", "jsonl", "--data-dir", str(data_dir)).splitlines()
    records = [ExecutionRecord.from_dict(json.loads(line)) for line in lines]
    assert [r.execution_id for r in records] == ["e3", "e2", "e1", "e0"]
    out = tmp_path / "out.jsonl"
    run(
        "export",
        "--task",
        "extract",
        "--since",
        "7d",
        "--out",
        str(out),
        "--data-dir",
        str(data_dir),
    )
    assert [json.loads(x)["execution_id"] for x in out.read_text().splitlines()] == ["e1", "e0"]


def test_export_finetune_keeps_only_verified_executions(data_dir: Path) -> None:
    lines = run("export", "--finetune", "--task", "extract", "--data-dir", str(data_dir))
    (example,) = [json.loads(line) for line in lines.splitlines()]
    assert example == {
        "messages": [
            {"role": "system", "content": "You extract."},
            {"role": "user", "content": "Extract: in 0"},
            {"role": "assistant", "content": '{"value": 0}'},
        ]
    }


def test_parse_since() -> None:
    now = datetime(2025, 1, 8, tzinfo=UTC)
    assert parse_since("7d", now=now) == datetime(2025, 1, 1, tzinfo=UTC)
    assert parse_since("12h", now=now) == datetime(2025, 1, 7, 12, tzinfo=UTC)
    assert parse_since("2025-01-02") == datetime(2025, 1, 2, tzinfo=UTC)
