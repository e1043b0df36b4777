"""Executions: the filtered, keyset-paginated log, and one execution with its span waterfall,
prompt, response, verification details and feedback controls (the feedback ``tlm feedback``
writes)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import anyio.to_thread
from aiohttp import web

from tlm.durations import parse_since
from tlm.errors import StoreError
from tlm.telemetry.records import ExecutionRecord, format_timestamp
from tlm.telemetry.redact import sanitize_message
from tlm.ui.queries import ExecutionFilter
from tlm.ui.render import is_htmx, render, render_fragment
from tlm.ui.state import console_of
from tlm.ui.waterfall import waterfall

__all__ = ("routes", "parse_filter")

routes = web.RouteTableDef()
PAGE_SIZE = 50
_VERDICTS = ("", "pass", "fail", "pending", "none")
_FEEDBACK = ("", "any", "none", "correct", "incorrect")
_STATUSES = ("", "ok", "error")


def _when(text: str, now: datetime) -> tuple[str, str | None]:
    text = text.strip()
    if not text:
        return "", None
    try:
        return format_timestamp(parse_since(text, now=now)), None
    except ValueError as exc:
        return "", str(exc)


def parse_filter(query: Any, now: datetime | None = None) -> tuple[ExecutionFilter, list[str]]:
    """The filter a query string asks for, and what in it could not be understood."""
    now = now or datetime.now(UTC)
    problems: list[str] = []
    since, problem = _when(str(query.get("since", "")), now)
    problems += [f"since: {problem}"] if problem else []
    until, problem = _when(str(query.get("until", "")), now)
    problems += [f"until: {problem}"] if problem else []
    verdict = str(query.get("verdict", ""))
    feedback = str(query.get("feedback", ""))
    status = str(query.get("status", ""))
    return (
        ExecutionFilter(
            task=str(query.get("task", "")).strip(),
            version=str(query.get("version", "")).strip(),
            model=str(query.get("model", "")).strip(),
            status=status if status in _STATUSES else "",
            verdict=verdict if verdict in _VERDICTS else "",  # type: ignore[arg-type]
            feedback=feedback if feedback in _FEEDBACK else "",  # type: ignore[arg-type]
            since=since,
            until=until,
            text=str(query.get("q", "")).strip()[:200],
        ),
        problems,
    )


@routes.get("/executions")
async def execution_list(request: web.Request) -> web.Response:
    """Executions newest first, filtered; ``after``/``before`` are keyset cursors."""
    console = console_of(request)
    flt, problems = parse_filter(request.query)
    after = request.query.get("after") or None
    before = request.query.get("before") or None
    page = await anyio.to_thread.run_sync(
        lambda: console.queries.page(flt, size=PAGE_SIZE, after=after, before=before)
    )
    keep = {
        k: v for k, v in request.query.items() if k not in ("after", "before") and v.strip() != ""
    }
    context: dict[str, Any] = {
        "page": page,
        "query": keep,
        "problems": problems,
        "tasks": console.registry.task_ids(),
        "models": console.config.models,
        "verdicts": _VERDICTS,
        "feedbacks": _FEEDBACK,
        "statuses": _STATUSES,
    }
    if is_htmx(request) and request.headers.get("HX-Target") == "execution-rows":
        html = render_fragment(request, "execution_rows.html", **context)
        return web.Response(text=html, content_type="text/html")
    return render(request, "executions.html", nav="executions", **context)


async def _record_or_404(request: web.Request) -> ExecutionRecord:
    console = console_of(request)
    execution_id = request.match_info["execution_id"]
    record = await anyio.to_thread.run_sync(console.store.get, execution_id)
    if record is None:
        raise web.HTTPNotFound(text=f"no execution with id {execution_id!r}")
    return record


@routes.get("/executions/{execution_id}")
async def execution_page(request: web.Request) -> web.Response:
    """One execution: waterfall, prompt and response (redacted), verification, feedback."""
    console = console_of(request)
    record = await _record_or_404(request)
    verification = record.verification_results
    return render(
        request,
        "execution.html",
        nav="executions",
        record=record,
        input=console.redacted(record.input),
        output=console.redacted(record.output),
        details=console.redacted(dict(verification.details)) if verification else None,
        error=sanitize_message(record.error.message, 4000) if record.error else None,
        bars=waterfall(record.spans),
        feedback_problem=None,
    )


def _score(text: str) -> float | None:
    text = text.strip()
    if not text:
        return None
    score = float(text)
    if score != score or score in (float("inf"), float("-inf")):
        raise ValueError("the score must be a finite number")
    return score


@routes.post("/executions/{execution_id}/feedback")
async def give_feedback(request: web.Request) -> web.Response:
    """Record human feedback, as ``tlm feedback ID --correct/--incorrect --score --note``."""
    console = console_of(request)
    execution_id = request.match_info["execution_id"]
    form = await request.post()
    mark = str(form.get("correct", ""))
    correct = {"correct": True, "incorrect": False}.get(mark)
    note = str(form.get("note", "")).strip()[:4000] or None
    problem: str | None = None
    try:
        score = _score(str(form.get("score", "")))
        await anyio.to_thread.run_sync(
            lambda: console.store.add_feedback(
                execution_id, score=score, correct=correct, note=note, source="human"
            )
        )
    except ValueError as exc:
        problem = "give a mark, a score or a note" if "needs" in str(exc) else str(exc)
    except StoreError as exc:
        problem = str(exc)
    record = await _record_or_404(request)
    if is_htmx(request):
        html = render_fragment(request, "feedback.html", record=record, feedback_problem=problem)
        return web.Response(text=html, content_type="text/html")
    if problem is not None:
        raise web.HTTPBadRequest(text=problem)
    raise web.HTTPSeeOther(f"/executions/{execution_id}")
