"""The review queue has its own schema row on PostgreSQL (``review queue`` in ``tlm_schema``).

A database written before (its reviews table made by the execution log's step 2, no row of its
own) keeps its reviews and gains the row; on a new database the queue and the execution log
open in either order; ``tlm db status`` reports the queue on its own line.
"""

from __future__ import annotations

import time
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from tlm.cli import main
from tlm.store import pg_base
from tlm.store.backend import open_store
from tlm.store.pg_schema import PG_EXECUTIONS
from tlm.store.review_schema import PG_REVIEWS
from tlm.verify.review_queue import open_review_queue


def _versions(url: str) -> dict[str, int]:
    with psycopg.connect(url, autocommit=True) as conn:
        return pg_base.versions(conn)


def test_a_database_from_before_keeps_its_reviews_and_gains_its_row(
    pg_url: str, tmp_path: Path
) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        pg_base.migrate(conn, (PG_EXECUTIONS,), "before")  # what the previous TLM created
        conn.execute(
            "INSERT INTO reviews (id, execution_id, task_id, task_version, queue, input, output,"
            " created_at) VALUES ('r-old', 'e-old', 'extract', '1.0.0', 'default', '{}',"
            " '{\"ok\": true}', %s)",
            (time.time(),),
        )
    assert "review queue" not in _versions(pg_url)
    queue = open_review_queue(tmp_path, pg_url)
    assert [r.id for r in queue.list()] == ["r-old"]
    new = queue.enqueue("e-new", "extract", "1.0.0", {"n": 1}, {"ok": False})
    assert [r.id for r in queue.list()] == ["r-old", new]
    assert _versions(pg_url) == {"executions": PG_EXECUTIONS.version, "review queue": 1}


@pytest.mark.parametrize("queue_first", [True, False])
def test_the_queue_and_the_execution_log_open_in_either_order(
    pg_url: str, tmp_path: Path, queue_first: bool
) -> None:
    if queue_first:
        queue = open_review_queue(tmp_path, pg_url)
        assert _versions(pg_url) == {"review queue": PG_REVIEWS.version}
        open_store(tmp_path, pg_url).close()
    else:
        open_store(tmp_path, pg_url).close()
        queue = open_review_queue(tmp_path, pg_url)
    review = queue.enqueue("e1", "extract", "1.0.0", {"n": 1}, {"ok": True})
    assert queue.approve(review).action == "approve"
    assert _versions(pg_url) == {
        "executions": PG_EXECUTIONS.version,
        "review queue": PG_REVIEWS.version,
    }


def test_db_status_reports_the_review_queue_on_its_own_line(pg_url: str, tmp_path: Path) -> None:
    runner = CliRunner()
    args = ["--data-dir", str(tmp_path), "--database", pg_url]
    before = runner.invoke(main, ["db", "status", *args])
    assert before.exit_code == 0, before.output
    assert "review queue: version 0 of 1 (1 migration(s) pending" in before.output
    upgraded = runner.invoke(main, ["db", "upgrade", *args])
    assert upgraded.exit_code == 0, upgraded.output
    after = runner.invoke(main, ["db", "status", *args])
    assert "review queue: version 1 of 1 (up to date)" in after.output
    assert f"executions: version {PG_EXECUTIONS.version} of {PG_EXECUTIONS.version}" in (
        after.output
    )
