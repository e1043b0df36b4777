"""``tlm executions`` and ``tlm analyze`` see every replica: two processes record into one
PostgreSQL at the same time, each from its own data directory; the CLI, run from a third
directory with ``TLM_DATABASE_URL``, lists and analyses the records of both."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from tlm.cli import main

REPO = Path(__file__).resolve().parents[2]
WRITER = """
import sys
from datetime import UTC, datetime, timedelta
from tlm.store.backend import open_store
from tlm.telemetry.records import ExecutionRecord, Performance, VerificationResults
from tlm.telemetry.records import format_timestamp

replica, url, data_dir = sys.argv[1], sys.argv[2], sys.argv[3]
now = datetime.now(UTC)
store = open_store(data_dir, url)
for i in range(40):
    store.write(ExecutionRecord(
        execution_id=f"{replica}-{i:04d}", task_id="extract", task_version="1.0.0",
        input={"text": f"{replica} {i}"}, output={"value": i},
        models_used=(f"model-{replica}",),
        verification_results=VerificationResults("consensus", i % 5 != 0, 0.8, {}),
        performance=Performance(0.5, 30, 0.002),
        timestamp=format_timestamp(now - timedelta(minutes=i)),
    ))
assert store.flush(60)
store.close()
"""


def cli(*args: str, url: str, cwd: Path) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TLM_")}
    env.update(PYTHONPATH=str(REPO), TLM_DATABASE_URL=url)
    done = subprocess.run(
        [sys.executable, "-m", "tlm", *args], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr + done.stdout
    return done.stdout


def test_executions_and_analyze_see_both_replicas(pg_url: str, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, replica, pg_url, str(tmp_path / replica)], env=env
        )
        for replica in ("one", "two")
    ]
    assert [w.wait(timeout=120) for w in writers] == [0, 0]
    cwd = tmp_path / "operator"
    cwd.mkdir()
    listed = cli("executions", "list", "--task", "extract", "--limit", "200", url=pg_url, cwd=cwd)
    for replica in ("one", "two"):
        assert all(f"{replica}-{i:04d}" in listed for i in range(40))
    analysis = json.loads(
        cli("analyze", "extract", "--period", "1d", "--json", url=pg_url, cwd=cwd)
    )
    assert analysis["overall"]["executions"] == 80
    assert analysis["overall"]["passed"] == 64
    models = {g["model"]: g["executions"] for g in analysis["groups"]}
    assert models == {"model-one": 40, "model-two": 40}
    assert not (cwd / ".tlm" / "tlm.db").exists()


def test_workflow_runs_command_reads_the_shared_database(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.postgres.test_state_contract import run_of
    from tlm.workflow.store import open_workflow_store

    store = open_workflow_store(tmp_path / "replica", pg_url)
    store.write(run_of("run-of-another-host"))
    store.close()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TLM_DATABASE_URL", pg_url)
    monkeypatch.setenv("TLM_DATA_DIR", str(tmp_path / "empty"))
    listed = CliRunner().invoke(main, ["workflow-runs"])
    assert listed.exit_code == 0, listed.output
    assert "run-of-another-host"[:12] in listed.output
    shown = CliRunner().invoke(main, ["workflow-runs", "run-of-another"])
    assert shown.exit_code == 0, shown.output
    assert "score[0]" in shown.output
    assert not (tmp_path / "empty" / "workflows.db").exists()
