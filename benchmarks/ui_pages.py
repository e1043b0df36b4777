"""(f) The console's pages with 100,000 executions in the store: server time per page.

The store is seeded with synthetic records of the shipped tasks (several models, prompt variants
and versions, passes, failures with schema problems, errors, feedback, span trees) spread over
30 days, a review queue and workflow runs; then each page's handler is timed server-side (the
request through the aiohttp application in process: routing, guard, queries, template) with
aiohttp's test client, median of repeats. Target: every page at most 100 ms.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tlm.store.sqlite import ExecutionStore
from tlm.telemetry.records import (
    ErrorInfo,
    ExecutionRecord,
    Feedback,
    Performance,
    VerificationResults,
    format_timestamp,
)

__all__ = (
    "TASKS",
    "MODELS",
    "TARGET_MS",
    "synthetic_records",
    "seed",
    "seed_reviews_and_runs",
    "measure_pages",
    "analysis_without_cache",
    "NO_CACHE",
    "PAGES",
)

TARGET_MS = 100.0
"""The issue's target: every page's server time at most 100 ms."""

TASKS = (
    "job_detail_extraction",
    "skill_decomposition",
    "seniority_classification",
    "compensation_extraction",
    "requirement_skill_matching",
    "self_assessment_feedback",
)
MODELS = ("qwen2.5-coder-0.5b-instruct", "smollm2-135m-instruct", "gpt-4o-mini")
VARIANTS = ("standard", "structured")
_SCHEMA_PROBLEM = (
    "OutputInvalid: the output has 1 problem(s):\n  $: 'location' is a required property"
)


def _spans(
    latency_ms: float, model: str, method: str, passed: bool | None
) -> tuple[dict[str, Any], ...]:
    call = latency_ms * 0.7
    return (
        {"name": "tlm.execute t", "parent": None, "start_ms": 0.0, "duration_ms": latency_ms,
         "status": "ok", "kind": "internal", "attributes": {"tlm.prompt.variant": "standard"}},
        {"name": f"chat {model}", "parent": 0, "start_ms": 1.0, "duration_ms": call,
         "status": "ok", "kind": "client",
         "attributes": {"gen_ai.request.model": model, "gen_ai.usage.input_tokens": 420,
                        "gen_ai.usage.output_tokens": 96, "tlm.cost.usd": 0.0002}},
        {"name": f"tlm.verify {method}", "parent": 0, "start_ms": call + 2,
         "duration_ms": latency_ms - call - 3,
         "status": "ok", "kind": "internal",
         "attributes": {"tlm.verification.method": method,
                        "tlm.verification.passed": bool(passed)}},
    )  # fmt: skip


def synthetic_records(
    n: int, *, now: datetime | None = None, days: float = 30.0, seed: int = 7
) -> Iterator[ExecutionRecord]:
    """``n`` plausible records, oldest first, over the last ``days`` days."""
    rng = random.Random(seed)
    end = now or datetime.now(UTC)
    start = end - timedelta(days=days)
    step = (end - start) / max(n, 1)
    for i in range(n):
        task = TASKS[i % len(TASKS)]
        model = MODELS[rng.randrange(len(MODELS))]
        variant = VARIANTS[rng.randrange(2)]
        roll = rng.random()
        error = roll < 0.04
        passed = None if error else roll > 0.22
        latency = rng.lognormvariate(0.3, 0.5)
        method = "consensus" if i % 3 else "hierarchical"
        details: dict[str, Any] = {}
        if passed is False:
            details = {"issues": [f"the location is missing in posting {i % 17}"]}
        feedback: tuple[Feedback, ...] = ()
        if i % 25 == 0:
            feedback = (Feedback("human", format_timestamp(end), 0.8, bool(passed), "checked"),)
        yield ExecutionRecord(
            execution_id=f"{i:08x}{rng.getrandbits(64):016x}",
            task_id=task,
            task_version="1.0.0" if i % 5 else "1.1.0",
            input={"job_posting": f"Senior engineer #{i} in Berlin, Python and SQL, remote ok."},
            output=None if error else {"title": f"Engineer {i}", "skills": ["python", "sql"]},
            models_used=(model,),
            verification_results=None
            if error
            else VerificationResults(method, passed, 0.9 if passed else 0.4, details),
            performance=Performance(latency, 516, 0.0002 + 0.0001 * (model == "gpt-4o-mini")),
            timestamp=format_timestamp(start + step * i),
            feedback=feedback,
            prompt_variant=variant,
            attempts=1,
            error=ErrorInfo("OutputInvalid", _SCHEMA_PROBLEM) if error else None,
            status="error" if error else "ok",
            prompt=f"Extract the details of this job posting:\n\nSenior engineer #{i}",
            spans=_spans(latency * 1000, model, method, passed),
        )


def seed_reviews_and_runs(data_dir: Path, ids: list[str], *, reviews: int, runs: int) -> None:
    """``reviews`` decided reviews and 20 pending ones; ``runs`` workflow runs of 5 steps."""
    from tlm.verify.review_queue import ReviewQueue
    from tlm.workflow.record import StepRun, WorkflowRun
    from tlm.workflow.store import WorkflowStore

    queue = ReviewQueue.in_data_dir(data_dir)
    for i in range(reviews + 20):
        output = {"title": f"Engineer {i}", "skills": ["python", "sql"]}
        review = queue.enqueue(ids[i % len(ids)], TASKS[0], "1.0.0", {"job_posting": "..."}, output)
        if i < reviews:
            queue.approve(review, note="ok", reviewer="bench")
    store = WorkflowStore(data_dir / "workflows.db")
    for i in range(runs):
        steps = tuple(
            StepRun(f"{TASKS[1]}[{k}]", "task", "succeeded", 0.1 * k, 0.5, 0.0002, TASKS[1],
                    "1.0.0", ids[(i * 5 + k) % len(ids)], "verified")
            for k in range(5)
        )  # fmt: skip
        store.write(
            WorkflowRun(f"run{i:013d}", "job_assessment", "succeeded",
                        format_timestamp(datetime.now(UTC)), 2.5, 0.001, steps)
        )  # fmt: skip


def seed(data_dir: Path, n: int, *, now: datetime | None = None) -> list[str]:
    """Write ``n`` synthetic records (with their feedback) into ``<data_dir>/tlm.db``."""
    ids: list[str] = []
    with ExecutionStore(data_dir / "tlm.db", queue_size=4096, batch_size=4096) as store:
        pending_feedback = []
        for record in synthetic_records(n, now=now):
            store.write(record)
            ids.append(record.execution_id)
            if record.feedback:
                pending_feedback.append((record.execution_id, record.feedback[0]))
        store.flush()
        for execution_id, given in pending_feedback:
            store.add_feedback(
                execution_id, score=given.score, correct=given.correct, note=given.note
            )
    return ids


PAGES = (
    "/tasks",
    "/tasks/job_detail_extraction",
    "/tasks/job_detail_extraction/diff",
    "/tasks/job_detail_extraction/edit",
    "/tasks/job_detail_extraction/playground",
    "/executions",
    "/executions?task=job_detail_extraction&verdict=fail",
    "/executions?model=gpt-4o-mini&feedback=any",
    "/executions?q=Berlin",
    "/executions?q=no-such-text-anywhere",
    "/executions/{execution_id}",
    "/reviews",
    "/reviews/items",
    "/analysis/job_detail_extraction?period=7d",
    "/analysis/job_detail_extraction?period=30d",
    "/workflows",
    "/workflows/run0000000000007",
)
"""The pages timed (``{execution_id}`` is filled with a seeded id)."""


async def _timed_session(
    data_dir: Path, definitions: Path, pages: list[tuple[str, str]], repeats: int
) -> dict[str, list[float]]:
    """One console over ``data_dir``: each ``(label, url)`` loaded once (its first load, kept
    for the analysis pages) then ``repeats`` times."""
    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    from tlm.engine.config import load_config
    from tlm.ui.app import create_app
    from tlm.ui.state import Console

    console = Console(load_config(data_dir=data_dir, definitions=definitions))
    app = create_app(console)
    server_ms: list[float] = []

    @web.middleware
    async def timed(request: web.Request, handler: Any) -> web.StreamResponse:
        began = time.perf_counter()
        try:
            response: web.StreamResponse = await handler(request)
            return response
        finally:
            server_ms.append((time.perf_counter() - began) * 1000)

    app.middlewares.insert(0, timed)  # outermost: the guard, the handler and the template
    samples: dict[str, list[float]] = {}
    async with TestClient(TestServer(app)) as client:
        for label, url in pages:
            server_ms.clear()
            response = await client.get(url)  # the first load (and a check that the page works)
            if response.status != 200:
                raise RuntimeError(f"{url}: HTTP {response.status}: {await response.text()}")
            if url.startswith("/analysis"):  # the first load reads or fills the day cache
                samples[f"{label} (first load)"] = list(server_ms)
            server_ms.clear()
            for _ in range(repeats):
                response = await client.get(url)
                await response.read()
            samples[label] = list(server_ms)
    return samples


def analysis_without_cache(data_dir: Path, task_id: str, days: int, repeats: int) -> list[float]:
    """Milliseconds to compute an analysis with no day cache at all, on a new connection each
    time (what a first analysis page costs when the console's warm-up has not run)."""
    from tlm.ui.queries import ExecutionQueries

    times = []
    for _ in range(repeats):
        queries = ExecutionQueries(data_dir / "tlm.db", keep_days=False)
        since = format_timestamp(datetime.now(UTC) - timedelta(days=days))
        began = time.perf_counter()
        queries.analysis(task_id, since=since)
        times.append((time.perf_counter() - began) * 1000)
        queries.close()
    return times


NO_CACHE = "analysis computed without any day cache (not a page),"
"""The label of the figures :func:`analysis_without_cache` gives (reported, not a target)."""
RESTART_PAGES = (
    "/analysis/job_detail_extraction?period=30d",
    "/analysis/job_detail_extraction?period=7d",
)
"""Loaded first by a second console over the same data directory (a restart)."""


async def measure_pages(
    data_dir: Path, definitions: Path, execution_id: str, *, repeats: int
) -> dict[str, list[float]]:
    """Server milliseconds per page request, ``repeats`` times each after a first load (for the
    analysis pages the first load is reported too: the console's start-up warm-up may or may
    not have summed the past days by then); then the analysis pages first in a restarted console
    (its day cache file kept, its memory empty)."""
    pages = [(page, page.format(execution_id=execution_id)) for page in PAGES]
    samples = await _timed_session(data_dir, definitions, pages, repeats)
    restart = [(f"{page} after a restart", page) for page in RESTART_PAGES]
    samples.update(await _timed_session(data_dir, definitions, restart, repeats))
    for days in (7, 30):  # not a page: what a first load would cost before the warm-up ran
        samples[f"{NO_CACHE} {days}d"] = analysis_without_cache(
            data_dir, "job_detail_extraction", days, repeats
        )
    return samples
