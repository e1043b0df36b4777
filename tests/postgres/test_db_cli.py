"""``tlm db status`` / ``tlm db upgrade`` on PostgreSQL and on the SQLite files."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from tlm.cli import main
from tlm.store.cache_tables import CACHE_PG, CACHE_SQLITE
from tlm.store.pg_base import versions
from tlm.store.pg_schema import PG_MIGRATIONS, schema_version
from tlm.store.registry import REPOSITORIES, postgres_schemas
from tlm.store.review_schema import REVIEWS_SQLITE


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.chdir(tmp_path)  # no tlm.toml above: defaults plus what the test sets
    monkeypatch.delenv("TLM_DATABASE_URL", raising=False)
    monkeypatch.delenv("TLM_DATA_DIR", raising=False)
    return CliRunner()


def test_postgres_status_then_upgrade_from_the_environment(
    runner: CliRunner, pg_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    secret_url = pg_url.replace("postgres@", "postgres:s3cret@")  # trust auth ignores it
    monkeypatch.setenv("TLM_DATABASE_URL", secret_url)
    known = len(PG_MIGRATIONS)
    before = runner.invoke(main, ["db", "status"])
    assert before.exit_code == 0, before.output
    assert f"executions: version 0 of {known} ({known} migration(s) pending" in before.output
    assert f"result cache: version 0 of {CACHE_PG.version} (1 migration(s) pending" in (
        before.output
    )
    assert "batches.db (batch state): not created yet" in before.output  # stays local
    assert "tlm.db" not in before.output  # the execution log is in the database
    assert "s3cret" not in before.output
    assert ":***@" in before.output
    upgraded = runner.invoke(main, ["db", "upgrade"])
    assert upgraded.exit_code == 0, upgraded.output
    assert f"executions: schema version 0 -> {known}" in upgraded.output
    assert f"result cache: schema version 0 -> {CACHE_PG.version}" in upgraded.output
    assert "s3cret" not in upgraded.output
    with psycopg.connect(pg_url) as conn:
        assert schema_version(conn) == known
        assert versions(conn) == {schema.name: schema.version for schema in postgres_schemas()}
        assert {"executions", "result cache", "workflow runs", "rollouts", "rankings"} <= set(
            versions(conn)
        )
        assert conn.execute("SELECT count(*) FROM result_cache").fetchone() == (0,)
    assert (tmp_path / ".tlm" / "batches.db").is_file()
    assert not (tmp_path / ".tlm" / "tlm.db").exists()
    after = runner.invoke(main, ["db", "status"])
    assert f"executions: version {known} of {known} (up to date)" in after.output
    assert f"result cache: version {CACHE_PG.version} of {CACHE_PG.version} (up to date)" in (
        after.output
    )
    again = runner.invoke(main, ["db", "upgrade"])
    assert f"executions: schema version {known} -> {known}" in again.output


def test_sqlite_status_then_upgrade_covers_every_file(runner: CliRunner, tmp_path: Path) -> None:
    data = tmp_path / "state"
    before = runner.invoke(main, ["db", "status", "--data-dir", str(data)])
    assert before.exit_code == 0, before.output
    for repository in REPOSITORIES:
        assert f"{repository.file} ({repository.what}): not created yet" in before.output
    upgraded = runner.invoke(main, ["db", "upgrade", "--data-dir", str(data)])
    assert upgraded.exit_code == 0, upgraded.output
    after = runner.invoke(main, ["db", "status", "--data-dir", str(data)])
    for repository in REPOSITORIES:
        path = data / repository.file
        assert f"{path}: schema version 0 -> {repository.sqlite.version}" in upgraded.output
        with sqlite3.connect(path) as conn:
            assert conn.execute("PRAGMA user_version").fetchone() == (repository.sqlite.version,)
        known = repository.sqlite.version
        assert (
            f"{repository.file} ({repository.what}): version {known} of {known} (up to date)"
            in (after.output)
        )


def test_sqlite_files_behind_are_reported_and_upgraded(runner: CliRunner, tmp_path: Path) -> None:
    data = tmp_path / "state"
    data.mkdir()
    with sqlite3.connect(data / "reviews.db") as conn:  # a review queue from version 1
        for statement in REVIEWS_SQLITE.steps[0]:
            conn.execute(statement)
        conn.execute("PRAGMA user_version = 1")
    with sqlite3.connect(data / "cache.db") as conn:  # a cache from before versioning
        conn.execute(CACHE_SQLITE.steps[0][0])
        conn.execute("INSERT INTO results VALUES ('k', 't', '1', '1', '{}', 0, NULL)")
    status = runner.invoke(main, ["db", "status", "--data-dir", str(data)])
    assert "reviews.db (review queue): version 1 of 2 (1 migration(s) pending" in status.output
    assert "cache.db (result cache): version 0 of 1 (1 migration(s) pending" in status.output
    upgraded = runner.invoke(main, ["db", "upgrade", "--data-dir", str(data)])
    assert upgraded.exit_code == 0, upgraded.output
    assert f"{data / 'reviews.db'}: schema version 1 -> 2" in upgraded.output
    with sqlite3.connect(data / "cache.db") as conn:
        assert conn.execute("SELECT key FROM results").fetchall() == [("k",)]
    with sqlite3.connect(data / "reviews.db") as conn:
        columns = [row[1] for row in conn.execute("PRAGMA table_info(reviews)")]
    assert "output_spec" in columns


def test_a_damaged_file_is_named_and_the_others_still_reported(
    runner: CliRunner, tmp_path: Path
) -> None:
    data = tmp_path / "state"
    data.mkdir()
    (data / "batches.db").write_bytes(b"not a database at all " * 300)
    status = runner.invoke(main, ["db", "status", "--data-dir", str(data)])
    assert status.exit_code == 1
    assert "batches.db (batch state):" in status.output
    assert "batches.db: the batch state is corrupted" in status.output
    assert "tlm.db (executions and feedback): not created yet" in status.output
    upgraded = runner.invoke(main, ["db", "upgrade", "--data-dir", str(data)])
    assert upgraded.exit_code == 1
    assert "batches.db: the batch state is corrupted" in upgraded.output


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
