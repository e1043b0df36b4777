"""Reviews: the human review queue; approve, reject or edit an output.

Decisions go through :class:`~tlm.verify.review_queue.ReviewQueue` exactly as ``tlm review`` does:
the queue records the decision (the waiting execution, polling the queue, wakes up) and its hook
records it as human feedback on the execution. An edited output must be JSON valid against the
task's output schema before it is accepted.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial
from typing import Any

import anyio.to_thread
import jsonschema
from aiohttp import web

from tlm.errors import DefinitionError, StoreError
from tlm.ui.render import is_htmx, render, render_fragment
from tlm.ui.state import Console, console_of
from tlm.verify.review_queue import AmbiguousReviewId, Review, ReviewNotFound

__all__ = ("routes", "output_problems")

routes = web.RouteTableDef()
MAX_OUTPUT_CHARS = 1_000_000
PENDING_SHOWN = 100
"""Pending reviews listed at most (oldest first); the count says when there are more."""
DECIDED_SHOWN = 20
"""Decided reviews listed under "Recently decided"."""


def _output_schema(console: Console, review: Review) -> Any:
    try:
        return console.registry.get(review.task_id, f"={review.task_version}").output.schema
    except DefinitionError:
        return None


def output_problems(text: str, schema: Any) -> tuple[Any, list[str]]:
    """The edited output parsed, and its problems against ``schema`` (JSON path: message)."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        return None, [f"not valid JSON: {exc}"]
    if not isinstance(schema, dict):
        return value, []
    validator = jsonschema.Draft202012Validator(schema)
    problems = [
        f"{error.json_path}: {error.message}"
        for error in sorted(validator.iter_errors(value), key=lambda e: e.json_path)
    ]
    return value, problems


def _pending(console: Console) -> tuple[list[Review], bool]:
    """The oldest :data:`PENDING_SHOWN` pending reviews, and whether there are more."""
    pending = console.reviews.list(status="pending", limit=PENDING_SHOWN + 1)
    return pending[:PENDING_SHOWN], len(pending) > PENDING_SHOWN


def _decided(console: Console) -> list[Review]:
    """The newest :data:`DECIDED_SHOWN` decided reviews, newest first."""
    found: list[Review] = []
    for status in ("approved", "rejected", "edited"):
        found += console.reviews.list(status=status, limit=DECIDED_SHOWN, newest_first=True)
    found.sort(key=lambda r: r.created_at, reverse=True)
    return found[:DECIDED_SHOWN]


@routes.get("/reviews")
async def review_page(request: web.Request) -> web.Response:
    """The queue with the first pending review (or the one asked for) open."""
    console = console_of(request)
    pending, more = await anyio.to_thread.run_sync(_pending, console)
    wanted = request.query.get("id")
    current: Review | None = None
    if wanted:
        try:
            current = await anyio.to_thread.run_sync(console.reviews.get, wanted)
        except (ReviewNotFound, AmbiguousReviewId):
            raise web.HTTPNotFound(text=f"no review {wanted!r}") from None
    elif pending:
        current = pending[0]
    decided = await anyio.to_thread.run_sync(_decided, console)
    return render(
        request,
        "reviews.html",
        nav="reviews",
        pending=pending,
        more=more,
        current=current,
        output=console.redacted(current.output) if current else None,
        input=console.redacted(current.input) if current else None,
        schema=_output_schema(console, current) if current else None,
        decided=decided,
        problems=[],
    )


@routes.get("/reviews/items")
async def review_items(request: web.Request) -> web.Response:
    """The pending list alone (polled by the page, so new reviews appear without reloading)."""
    console = console_of(request)
    pending, more = await anyio.to_thread.run_sync(_pending, console)
    html = render_fragment(
        request,
        "review_items.html",
        pending=pending,
        more=more,
        current_id=request.query.get("current"),
    )
    return web.Response(text=html, content_type="text/html")


@routes.post("/reviews/{review_id}/validate")
async def validate_output(request: web.Request) -> web.Response:
    """Problems of the edited output against the task's output schema (an htmx fragment)."""
    console = console_of(request)
    try:
        review_id = request.match_info["review_id"]
        review = await anyio.to_thread.run_sync(console.reviews.get, review_id)
    except (ReviewNotFound, AmbiguousReviewId) as exc:
        raise web.HTTPNotFound(text=str(exc)) from None
    form = await request.post()
    text = str(form.get("output", ""))[:MAX_OUTPUT_CHARS]
    _, problems = output_problems(text, _output_schema(console, review))
    html = render_fragment(request, "review_problems.html", problems=problems)
    return web.Response(text=html, content_type="text/html")


@routes.post("/reviews/{review_id}/decide")
async def decide(request: web.Request) -> web.Response:
    """Approve, reject (a note is required) or edit (the output must fit the schema)."""
    console = console_of(request)
    review_id = request.match_info["review_id"]
    try:
        review = await anyio.to_thread.run_sync(console.reviews.get, review_id)
    except (ReviewNotFound, AmbiguousReviewId) as exc:
        raise web.HTTPNotFound(text=str(exc)) from None
    form = await request.post()
    action = str(form.get("action", ""))
    note = str(form.get("note", "")).strip()[:4000] or None
    reviewer = str(form.get("reviewer", "")).strip()[:200] or "console"
    problems: list[str] = []
    queue = console.reviews
    call: Callable[[], Any] | None = None
    if action == "approve":
        call = partial(queue.approve, review.id, note=note, reviewer=reviewer)
    elif action == "reject":
        if note is None:
            problems.append("a rejection needs a note saying what is wrong")
        call = partial(queue.reject, review.id, note=note or "", reviewer=reviewer)
    elif action == "edit":
        text = str(form.get("output", ""))[:MAX_OUTPUT_CHARS]
        value, problems = output_problems(text, _output_schema(console, review))
        call = partial(queue.edit, review.id, value, note=note, reviewer=reviewer)
    else:
        problems.append(f"unknown action {action!r}")
    if call is not None and not problems:
        try:
            await anyio.to_thread.run_sync(call)
        except (StoreError, ValueError) as exc:
            problems.append(str(exc))
    if problems:
        if is_htmx(request):
            html = render_fragment(request, "review_problems.html", problems=problems)
            return web.Response(
                text=html, content_type="text/html", headers={"HX-Retarget": "#review-problems"}
            )
        raise web.HTTPBadRequest(text="; ".join(problems))
    location = "/reviews"
    if is_htmx(request):
        return web.Response(status=204, headers={"HX-Redirect": location})
    raise web.HTTPSeeOther(location)
