"""Workflows: recorded runs, and one run's step tree with each step linked to its execution."""

from __future__ import annotations

import re
from typing import Any

import anyio.to_thread
from aiohttp import web

from tlm.ui.render import render
from tlm.ui.state import console_of
from tlm.workflow.record import StepRun

__all__ = ("routes", "step_tree")

routes = web.RouteTableDef()
_INDEX = re.compile(r"\[\d+\]")


def step_tree(steps: tuple[StepRun, ...]) -> list[dict[str, Any]]:
    """Steps in start order, each with its depth (a mapped item sits under its step's name)."""
    rows: list[dict[str, Any]] = []
    groups: set[str] = set()
    for step in sorted(steps, key=lambda s: (s.started_s, s.path)):
        depth = len(_INDEX.findall(step.path))
        parent = _INDEX.sub("", step.path)
        if depth and parent not in groups:
            groups.add(parent)
            rows.append({"group": parent, "depth": depth - 1, "step": None})
        rows.append({"group": None, "depth": depth, "step": step})
    return rows


@routes.get("/workflows")
async def run_list(request: web.Request) -> web.Response:
    """The latest runs, newest first."""
    console = console_of(request)
    runs = await anyio.to_thread.run_sync(lambda: console.workflows.list(limit=100))
    return render(request, "workflows.html", nav="workflows", runs=runs)


@routes.get("/workflows/{run_id}")
async def run_page(request: web.Request) -> web.Response:
    """One run and its steps."""
    console = console_of(request)
    try:
        run = await anyio.to_thread.run_sync(console.workflows.get, request.match_info["run_id"])
    except KeyError as exc:
        raise web.HTTPNotFound(text=str(exc)) from None
    return render(
        request,
        "workflow.html",
        nav="workflows",
        run=run,
        rows=step_tree(run.steps),
        output=console.redacted(run.output),
    )
