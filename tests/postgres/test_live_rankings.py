"""A running engine follows ``tlm update-rankings`` run by another process, without a restart.

Both backends: ``rankings.json`` in the data directory (SQLite) and the rankings row of the shared
PostgreSQL database. The engine starts with no rankings (catalog priors: ``model-a`` first); then
records saying ``model-a`` and ``model-c`` fail and ``model-b`` passes are stored, a real
``tlm update-rankings`` subprocess learns from them, and the same engine's next selections put
``model-b`` first.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio

from tests.engine.conftest import MODELS, ScriptedModels, catalog_data, make_task, reply
from tlm.catalog import Catalog
from tlm.definition.registry import DefinitionRegistry
from tlm.engine import Engine, EngineConfig
from tlm.learn.live import LiveEstimates
from tlm.store.backend import open_store
from tlm.telemetry.records import (
    ExecutionRecord,
    Performance,
    VerificationResults,
    format_timestamp,
)

TASK = "title_extraction"
REPO = Path(__file__).resolve().parents[2]


def evidence(model: str, passed: bool, index: int) -> ExecutionRecord:
    return ExecutionRecord(
        execution_id=f"learned-{model}-{index}",
        task_id=TASK,
        task_version="1.0.0",
        input={"posting": f"Posting {index}"},
        output={"title": "Chef"},
        models_used=(model,),
        verification_results=VerificationResults("consensus", passed, 0.9, {}),
        performance=Performance(1.0, 100, 0.002),
        timestamp=format_timestamp(datetime.now(UTC) - timedelta(minutes=10 + index)),
    )


def update_rankings(data_dir: Path, database: str | None, cwd: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TLM_")}
    env["PYTHONPATH"] = str(REPO)
    if database is not None:
        env["TLM_DATABASE_URL"] = database
    done = subprocess.run(
        [sys.executable, "-m", "tlm", "update-rankings", "--data-dir", str(data_dir)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr + done.stdout
    assert "1 task(s) from 61 record(s)" in done.stdout


async def test_a_running_engine_uses_rankings_updated_by_another_process(
    backend: str | None, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    models = ScriptedModels()
    models.handlers["*"] = reply({"title": "Chef"})
    config = EngineConfig(
        data_dir=data_dir,
        models=MODELS,
        database=backend,
        env={**os.environ, "TLM_RANKINGS_REFRESH_S": "0.2"},
    )
    engine = Engine(
        config,
        registry=DefinitionRegistry((make_task(),)),
        catalog=Catalog.from_data(catalog_data()),
        providers=dict.fromkeys(MODELS, models),
    )
    async with engine:
        before = await engine.execute(TASK, {"posting": "Chef wanted"})
        assert before.models_used[0] == "model-a"  # priors: no rankings yet
        store = open_store(data_dir, backend)
        for index in range(20):
            for model in MODELS:
                store.write(evidence(model, model == "model-b", index))
        assert store.flush(30)
        store.close()

        await anyio.to_thread.run_sync(update_rankings, data_dir, backend, tmp_path)
        if backend is None:
            assert (data_dir / "rankings.json").is_file()
        else:
            assert not (data_dir / "rankings.json").exists()  # in the database

        deadline = time.monotonic() + 15
        chosen: list[str] = []
        while time.monotonic() < deadline:
            result = await engine.execute(TASK, {"posting": f"Chef wanted {len(chosen)}"})
            chosen.append(result.models_used[0])
            if chosen[-1] == "model-b":
                break
            await anyio.sleep(0.1)
        assert chosen[-1] == "model-b", chosen
        for index in range(5):  # and it stays so: the learned ranking is in use
            result = await engine.execute(TASK, {"posting": f"Pilot wanted {index}"})
            assert result.models_used[0] == "model-b"
        live = engine._estimates  # no selector.json: the live rankings themselves
        assert isinstance(live, LiveEstimates)
        assert live.reloads == 1
