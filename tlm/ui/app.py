"""The console's aiohttp application and the server ``tlm ui`` runs.

:func:`create_app` wires the pages, the packaged static files, the Jinja2 environment and the
guard (:mod:`tlm.ui.security`); :func:`serve` binds it, prints the address (with the access token
when the bind is not loopback-only) and runs until cancelled.
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

import anyio
from aiohttp import web

from tlm.ui import render
from tlm.ui.pages import analysis, editor, executions, playground, reviews, tasks, workflows
from tlm.ui.security import TOKEN_ENV, Guard, guard_middleware, is_loopback, token_required
from tlm.ui.state import CONSOLE, Console

__all__ = ("STATIC_DIR", "create_app", "make_guard", "serve")

STATIC_DIR = Path(__file__).parent / "static"


async def _home(request: web.Request) -> web.Response:
    raise web.HTTPSeeOther("/tasks")


WARM_UP_FROM = 5_000
"""Executions from which the console sums the past days in the background when it starts
(below that, a first analysis page sums them quickly enough itself)."""


def create_app(console: Console, guard: Guard | None = None) -> web.Application:
    """The application over ``console``; ``guard`` defaults to a loopback-only one (no token)."""
    app = web.Application(client_max_size=4 * 1024 * 1024)
    app.middlewares.append(guard_middleware(guard or Guard()))  # type: ignore[arg-type]
    app[CONSOLE] = console
    render.install(app)
    app.router.add_get("/", _home)
    for module in (tasks, editor, playground, executions, reviews, analysis, workflows):
        app.router.add_routes(module.routes)
    app.router.add_static("/static", STATIC_DIR)

    async def warm_up(app: web.Application) -> None:
        queries = app[CONSOLE].queries
        if queries.warms_up and queries.rows_estimate() >= WARM_UP_FROM:
            queries.warm_up(app[CONSOLE].registry.task_ids())

    async def close_console(app: web.Application) -> None:
        await app[CONSOLE].aclose()

    app.on_startup.append(warm_up)
    app.on_cleanup.append(close_console)
    return app


def make_guard(host: str, port: int, *, require_token: bool = False) -> Guard:
    """The guard for a bind to ``host``: a token (``TLM_UI_TOKEN`` or a new one) unless loopback.

    On a loopback bind only loopback ``Host`` names are accepted (DNS rebinding).
    """
    need = require_token or token_required(host)
    token = (os.environ.get(TOKEN_ENV) or secrets.token_urlsafe(24)) if need else None
    allowed: frozenset[str] = frozenset()
    if is_loopback(host):
        allowed = frozenset({"127.0.0.1", "localhost", "::1", host.strip("[]").lower()})
    return Guard(token=token, allowed_hosts=allowed)


async def serve(
    console: Console,
    *,
    host: str = "127.0.0.1",
    port: int = 8765,
    require_token: bool = False,
    out: TextIO = sys.stdout,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve the console until cancelled; prints its URL (with ``?token=`` when one is needed)."""
    guard = make_guard(host, port, require_token=require_token)
    app = create_app(console, guard)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = int(runner.addresses[0][1]) if runner.addresses else port
        shown = f"[{host}]" if ":" in host else host
        url = f"http://{shown}:{bound}/"
        if guard.token is not None:
            url += f"?token={guard.token}"
            print(f"TLM console on {url}", file=out)
            print("(a non-loopback address: every request needs this token)", file=out)
        else:
            print(f"TLM console on {url}", file=out)
        out.flush()
        if on_ready is not None:
            on_ready(url)
        await anyio.sleep_forever()
    finally:
        await runner.cleanup()
