"""``tlm db status`` / ``tlm db upgrade`` on PostgreSQL and on the SQLite files."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from tlm.cli import main
from tlm.store.pg_schema import PG_MIGRATIONS, schema_version


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.chdir(tmp_path)  # no tlm.toml above: defaults plus what the test sets
    monkeypatch.delenv("TLM_DATABASE_URL", raising=False)
    monkeypatch.delenv("TLM_DATA_DIR", raising=False)
    return CliRunner()


def test_postgres_status_then_upgrade_from_the_environment(
    runner: CliRunner, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret_url = pg_url.replace("postgres@", "postgres:s3cret@")  # trust auth ignores it
    monkeypatch.setenv("TLM_DATABASE_URL", secret_url)
    known = len(PG_MIGRATIONS)
    before = runner.invoke(main, ["db", "status"])
    assert before.exit_code == 0, before.output
    assert f"version 0 of {known} ({known} migration(s) pending" in before.output
    assert "s3cret" not in before.output
    assert ":***@" in before.output
    upgraded = runner.invoke(main, ["db", "upgrade"])
    assert upgraded.exit_code == 0, upgraded.output
    assert f"schema version 0 -> {known}" in upgraded.output
    with psycopg.connect(pg_url) as conn:
        assert schema_version(conn) == known
    after = runner.invoke(main, ["db", "status"])
    assert f"version {known} of {known} (up to date)" in after.output


def test_sqlite_status_then_upgrade(runner: CliRunner, tmp_path: Path) -> None:
    data = tmp_path / "state"
    before = runner.invoke(main, ["db", "status", "--data-dir", str(data)])
    assert before.exit_code == 0, before.output
    assert "tlm.db: not created yet" in before.output
    upgraded = runner.invoke(main, ["db", "upgrade", "--data-dir", str(data)])
    assert upgraded.exit_code == 0, upgraded.output
    assert (data / "tlm.db").is_file()
    assert (data / "reviews.db").is_file()
    after = runner.invoke(main, ["db", "status", "--data-dir", str(data)])
    assert "tlm.db: version" in after.output
    assert "(up to date)" in after.output


def test_a_database_that_is_not_postgresql_is_refused(runner: CliRunner) -> None:
    result = runner.invoke(main, ["db", "status", "--database", "mysql://u:pw@h/db"])
    assert result.exit_code != 0
    assert "postgresql://" in result.output
    assert "pw" not in result.output


def test_an_unreachable_database_is_a_clear_error(runner: CliRunner) -> None:
    result = runner.invoke(main, ["db", "status", "--database", "postgresql://x:pw@127.0.0.1:1/db"])
    assert result.exit_code == 1
    assert "cannot connect to PostgreSQL" in result.output
    assert "pw@" not in result.output
