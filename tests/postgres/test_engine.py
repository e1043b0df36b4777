"""The engine with ``database = "postgresql://..."``: records and reviews in the shared database."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.engine.conftest import MODELS, ScriptedModels, catalog_data, make_task, reply
from tlm.catalog import Catalog
from tlm.cli import main
from tlm.definition.registry import DefinitionRegistry
from tlm.engine import Engine, EngineConfig
from tlm.engine.config import load_config
from tlm.errors import ConfigurationError
from tlm.store.backend import open_store
from tlm.store.postgres import PostgresExecutionStore
from tlm.verify.review_queue_pg import PostgresReviewQueue

TASK = "title_extraction"


def engine_on(url: str, data_dir: Path, models: ScriptedModels) -> Engine:
    return Engine(
        EngineConfig(data_dir=data_dir, models=MODELS, database=url),
        registry=DefinitionRegistry((make_task(),)),
        catalog=Catalog.from_data(catalog_data()),
        providers=dict.fromkeys(MODELS, models),
    )


async def test_two_engines_record_into_one_database_and_read_each_other(
    pg_url: str, tmp_path: Path
) -> None:
    models = ScriptedModels()
    models.handlers["*"] = reply({"title": "Chef"})
    ids: list[str] = []
    async with (
        engine_on(pg_url, tmp_path / "a", models) as first,
        engine_on(pg_url, tmp_path / "b", models) as second,
    ):
        assert isinstance(first.store, PostgresExecutionStore)
        assert isinstance(first.review_queue, PostgresReviewQueue)
        for i in range(10):
            engine = first if i % 2 else second
            result = await engine.execute(TASK, {"posting": f"Chef wanted {i}"})
            ids.append(result.execution_id)
        assert second.store is not None
        # durable: each execution returned once committed, so the other replica sees it at once
        assert {r.execution_id for r in second.store.query(task_id=TASK)} == set(ids)
    assert not (tmp_path / "a" / "tlm.db").exists()  # nothing went to the SQLite files


def test_the_cli_reads_every_replica_through_the_database_setting(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.postgres.records import make_record

    store = open_store(tmp_path / "replica", pg_url)
    store.write(make_record("from-replica-1"))
    store.close()
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tlm.toml").write_text(f'[tlm]\ndatabase = "{pg_url}"\n')
    monkeypatch.delenv("TLM_DATABASE_URL", raising=False)
    assert load_config().database == pg_url
    result = CliRunner().invoke(main, ["executions", "list", "--data-dir", str(tmp_path / "x")])
    assert result.exit_code == 0, result.output
    assert "efrom-replica-1" in result.output


def test_a_database_url_that_is_not_postgresql_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TLM_DATABASE_URL", "sqlite:///tmp/x.db")
    with pytest.raises(ConfigurationError, match="TLM_DATABASE_URL: database: expected a URL"):
        load_config()
