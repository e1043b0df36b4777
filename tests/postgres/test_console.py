"""The console (``tlm ui``) on PostgreSQL: every replica's executions, reviews, runs, rankings.

Two replicas record into one database from their own data directories; a console opened with a
third, empty data directory and ``database`` set serves them all through its HTTP routes (keyset
pages, filters, text search, detail, feedback, task summaries, the analysis page with ``tlm
analyze``'s figures, reviews, workflow runs) and never creates a SQLite file.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from tests.postgres.test_state_contract import rankings, run_of
from tests.ui.support import FAKE_MODEL, make_definitions
from tlm.engine.config import load_config
from tlm.learn.analysis import analyze_store
from tlm.learn.rankings_store import open_rankings
from tlm.store.backend import open_store
from tlm.telemetry.records import (
    ErrorInfo,
    ExecutionRecord,
    Performance,
    VerificationResults,
    format_timestamp,
)
from tlm.ui.app import create_app
from tlm.ui.queries_pg import PostgresExecutionQueries
from tlm.ui.security import Guard
from tlm.ui.state import Console
from tlm.verify.review_queue import open_review_queue
from tlm.workflow.store import open_workflow_store

TASK = "title_extraction"
NOW = datetime.now(UTC).replace(microsecond=0)
_CSRF = re.compile(r'name="csrf_token" value="([0-9a-f]+)"')


def record(replica: str, index: int) -> ExecutionRecord:
    failed = index % 4 == 0
    return ExecutionRecord(
        execution_id=f"{replica}{index:031d}",
        task_id=TASK,
        task_version="1.0.0",
        input={"posting": f"Posting {replica}-{index}: Chef wanted"},
        output={"title": "Chef"} if not failed else None,
        models_used=(FAKE_MODEL,) if index % 3 else ("other-model",),
        verification_results=VerificationResults("consensus", not failed, 0.8, {}),
        performance=Performance(0.1 * (index % 7 + 1), 100, 0.001),
        timestamp=format_timestamp(NOW - timedelta(hours=index, minutes=ord(replica))),
        status="error" if failed else "ok",
        error=ErrorInfo("OutputInvalid", f"no title in {replica}-{index}") if failed else None,
    )


@pytest.fixture
async def site(pg_url: str, tmp_path: Path) -> AsyncIterator[tuple[TestClient[Any, Any], Console]]:
    for replica in ("a", "b"):  # two replicas, each with its own data directory
        store = open_store(tmp_path / replica, pg_url)
        for index in range(30):
            store.write(record(replica, index))
        assert store.flush(30)
        store.close()
    queue = open_review_queue(tmp_path / "a", pg_url)
    queue.enqueue(f"a{1:031d}", TASK, "1.0.0", {"posting": "x"}, {"title": "Reviewed-by-b"})
    workflows = open_workflow_store(tmp_path / "b", pg_url)
    workflows.write(run_of("run-from-replica-b", at=format_timestamp(NOW)))
    workflows.close()
    saved = open_rankings(tmp_path / "b", pg_url)
    saved.save(rankings(0.9, task=TASK))
    saved.close()
    definitions = make_definitions(tmp_path / "definitions")
    config = load_config(
        env={"TLM_MODELS": FAKE_MODEL, "TLM_DATABASE_URL": pg_url},
        data_dir=tmp_path / "console",
        definitions=definitions,
        catalog=definitions / "models.json",
    )
    console = Console(config)
    async with TestClient(TestServer(create_app(console, Guard()))) as client:
        yield client, console
    assert not (tmp_path / "console" / "tlm.db").exists()
    assert not (tmp_path / "console" / "workflows.db").exists()


async def page_ids(client: TestClient[Any, Any], query: str) -> tuple[list[str], str | None]:
    response = await client.get(f"/executions?{query}")
    assert response.status == 200
    html = await response.text()
    ids = list(dict.fromkeys(re.findall(r'/executions/([ab]\d{31})"', html)))
    older = re.search(r"after=([^\"&]+)", html)
    return ids, None if older is None else older.group(1)


async def test_the_console_lists_every_replicas_executions(
    site: tuple[TestClient[Any, Any], Console],
) -> None:
    client, console = site
    assert isinstance(console.queries, PostgresExecutionQueries)
    first, older = await page_ids(client, "")
    assert len(first) == 50
    assert older is not None
    second, _ = await page_ids(client, f"after={older}")
    assert len(second) == 10
    every = first + second
    assert len(set(every)) == 60
    assert {i[0] for i in every} == {"a", "b"}
    expected = sorted(every, key=lambda i: record(i[0], int(i[1:])).timestamp, reverse=True)
    assert every == expected  # newest first across both replicas

    failed, _ = await page_ids(client, f"task={TASK}&status=error")
    assert sorted(failed) == sorted(f"{r}{i:031d}" for r in "ab" for i in range(0, 30, 4))
    by_model, _ = await page_ids(client, "model=other-model")
    assert sorted(by_model) == sorted(f"{r}{i:031d}" for r in "ab" for i in range(0, 30, 3))
    searched, _ = await page_ids(client, "q=Posting+b-17:")
    assert searched == [f"b{17:031d}"]


async def test_detail_feedback_tasks_analysis_reviews_workflows(
    site: tuple[TestClient[Any, Any], Console], pg_url: str
) -> None:
    client, console = site
    execution_id = f"b{5:031d}"
    detail = await client.get(f"/executions/{execution_id}")
    assert detail.status == 200
    assert "Posting b-5: Chef wanted" in await detail.text()

    form = await (await client.get(f"/tasks/{TASK}/edit")).text()
    token = _CSRF.search(form)
    assert token is not None
    origin = str(client.make_url("/")).rstrip("/")
    posted = await client.post(
        f"/executions/{execution_id}/feedback",
        data={"csrf_token": token.group(1), "correct": "incorrect", "note": "from the console"},
        headers={"Origin": origin, "HX-Request": "true"},
    )
    assert posted.status == 200
    replica = open_store(Path("unused"), pg_url)
    kept = replica.get(execution_id)
    assert kept is not None
    assert [f.note for f in kept.feedback] == ["from the console"]

    summary = console.queries.task_summary(TASK, format_timestamp(NOW - timedelta(days=7)))
    assert summary.executions == 60
    assert summary.errors == 16
    assert summary.verified == 60
    assert summary.passed == 44

    page = await client.get(f"/analysis/{TASK}?period=30d")
    assert page.status == 200
    html = await page.text()
    assert "model-a" in html  # the rankings saved by replica b
    figures = console.queries.analysis(TASK, since=None)
    reference = analyze_store(replica, TASK)
    assert figures == reference
    assert figures.overall.executions == 60
    assert figures.overall.feedback_count == 1
    assert console.queries.analysis(TASK, since=None) is figures  # unchanged: kept
    replica.add_feedback(f"a{2:031d}", correct=True)
    again = console.queries.analysis(TASK, since=None)
    assert again.overall.feedback_count == 2  # feedback from another process: recomputed
    replica.close()

    reviews = await client.get("/reviews")
    assert "Reviewed-by-b" in await reviews.text()
    runs = await client.get("/workflows")
    assert "run-from-replica-b" in await runs.text()
    run = await client.get("/workflows/run-from-replica-b")
    assert run.status == 200
