"""Server-side rendering: the Jinja2 environment (autoescaping on) and its formatting filters.

Everything a template shows is escaped; JSON goes into pages through ``|pretty`` inside an escaped
``<pre>`` or through ``|tojson`` (which also escapes ``<``, ``>``, ``&`` and ``'``). No template
marks model or user content ``|safe``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from tlm.ui.security import CSRF_FIELD, CSRF_HEADER, CSRF_KEY

__all__ = ("create_environment", "install", "render", "render_fragment", "is_htmx")

_ENV_KEY = web.AppKey("tlm_ui_jinja", object)


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False, default=str)


def _jsontext(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _when(value: str | float | None) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, int | float):
        moment = datetime.fromtimestamp(value, tz=UTC)
    else:
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _usd(value: float | None) -> str:
    if value is None:
        return "-"
    if value == 0:
        return "$0"
    return f"${value:.4f}" if value >= 0.01 else f"${value:.6f}"


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def create_environment() -> Any:
    """The Jinja2 environment over the packaged templates, autoescaping every template."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("tlm.ui", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        jsontext=_jsontext, pretty=_pretty, when=_when, usd=_usd, seconds=_seconds, pct=_pct
    )
    env.globals.update(csrf_field=CSRF_FIELD, csrf_header=CSRF_HEADER)
    return env


def install(app: web.Application) -> None:
    """Attach the environment to ``app``."""
    app[_ENV_KEY] = create_environment()


def is_htmx(request: web.Request) -> bool:
    """Whether htmx sent ``request`` (it wants a fragment, not a page)."""
    return request.headers.get("HX-Request") == "true"


def _context(request: web.Request, context: dict[str, Any]) -> dict[str, Any]:
    return {
        "csrf_token": request.get(CSRF_KEY, ""),
        "path": request.path,
        "nav": context.pop("nav", ""),
        **context,
    }


def render_fragment(request: web.Request, template: str, **context: Any) -> str:
    """``template`` rendered as text."""
    env: Any = request.app[_ENV_KEY]
    text: str = env.get_template(template).render(_context(request, context))
    return text


def render(
    request: web.Request, template: str, *, status: int = 200, **context: Any
) -> web.Response:
    """``template`` rendered as an HTML response."""
    return web.Response(
        text=render_fragment(request, template, **context),
        status=status,
        content_type="text/html",
        charset="utf-8",
    )
