"""Analysis: per task, the figures of ``tlm analyze`` as charts and tables, the current rankings
and the prompt suggestions."""

from __future__ import annotations

from datetime import timedelta

import anyio.to_thread
from aiohttp import web

from tlm.ui.analysis import load_analysis
from tlm.ui.render import render
from tlm.ui.state import console_of

__all__ = ("routes",)

routes = web.RouteTableDef()
PERIODS: dict[str, timedelta | None] = {
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
    "90d": timedelta(days=90),
    "all": None,
}


@routes.get("/analysis")
async def analysis_index(request: web.Request) -> web.Response:
    """The first task's analysis (or a note that there is no task)."""
    task_ids = console_of(request).registry.task_ids()
    if not task_ids:
        return render(request, "analysis.html", nav="analysis", tasks=(), result=None)
    raise web.HTTPSeeOther(f"/analysis/{task_ids[0]}")


@routes.get("/analysis/{task_id}")
async def analysis_page(request: web.Request) -> web.Response:
    """Pass rate with 95% intervals by day, cost and latency per model and variant, failures."""
    console = console_of(request)
    task_id = request.match_info["task_id"]
    period_text = request.query.get("period", "7d")
    if period_text not in PERIODS:
        period_text = "7d"
    period = PERIODS[period_text]
    result = await anyio.to_thread.run_sync(
        lambda: load_analysis(console.queries, console.rankings, task_id, period=period)
    )
    return render(
        request,
        "analysis.html",
        nav="analysis",
        tasks=console.registry.task_ids(),
        task_id=task_id,
        periods=PERIODS,
        period=period_text,
        result=result,
    )
