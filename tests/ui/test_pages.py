"""Every page answers, shows what it should, and escapes everything it shows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from tests.ui.conftest import Site, make_console
from tests.ui.support import INJECTION, INJECTION_ID, make_definitions
from tlm.ui.app import create_app
from tlm.ui.security import Guard

PAGES = [
    ("/tasks", "title_extraction"),
    ("/tasks/title_extraction", "Extract the job title from: {{posting}}"),
    ("/tasks/job_detail_extraction/diff?a=1.0.0&b=1.1.0", "v1.0.0"),
    ("/tasks/title_extraction/edit", "Save as a new version"),
    ("/tasks/title_extraction/playground", "fake-model"),
    ("/executions", "Older"),
    ("/executions/" + INJECTION_ID, "Span tree"),
    ("/reviews", "Approve"),
    ("/analysis/job_detail_extraction?period=30d", "Pass rate by day"),
    ("/workflows", "run0000000000001"),
    ("/workflows/run0000000000001", "skill_decomposition[1]"),
]


@pytest.mark.parametrize(("path", "expected"), PAGES, ids=[p for p, _ in PAGES])
async def test_page_renders_with_security_headers(site: Site, path: str, expected: str) -> None:
    response = await site.client.get(path)
    text = await response.text()
    assert response.status == 200, text
    assert expected in text
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize(
    "path",
    [f"/executions/{INJECTION_ID}", "/reviews", "/workflows/run0000000000001",
     "/executions?q=window.__pwned", "/analysis/title_extraction?period=all"],
)  # fmt: skip
async def test_model_and_user_content_is_escaped(site: Site, path: str) -> None:
    text = await (await site.client.get(path)).text()
    assert "<script>window.__pwned" not in text
    assert "<img src=x" not in text
    if "q=" in path:
        assert INJECTION_ID in text  # the search finds the record and lists it
    else:
        assert "&lt;script&gt;window.__pwned" in text


async def test_injection_record_shows_every_field_as_text(site: Site) -> None:
    text = await (await site.client.get(f"/executions/{INJECTION_ID}")).text()

    def escaped(raw: str) -> str:
        return raw.replace("<", "&lt;").replace(">", "&gt;").replace('"', "&#34;")

    as_text = text.count(escaped(INJECTION))  # prompt, span name, feedback note
    in_json = text.count(escaped(json.dumps(INJECTION)[1:-1]))  # input, output, details x2
    assert as_text >= 3
    assert in_json >= 4


async def test_unknown_things_are_404(site: Site) -> None:
    for path in ("/tasks/nope", "/executions/nope", "/workflows/nope", "/reviews?id=nope"):
        assert (await site.client.get(path)).status == 404, path


async def test_task_list_counts_recent_executions(site: Site) -> None:
    text = await (await site.client.get("/tasks")).text()
    # 150 seeded records over 30 days, 25 per shipped task; about 7/30 of them are recent
    assert "job_detail_extraction" in text
    assert "Playground" in text


async def test_static_assets_are_served(site: Site) -> None:
    for path in (
        "/static/app.js",
        "/static/app.css",
        "/static/vendor/htmx-2.0.11.min.js",
        "/static/vendor/uPlot-1.6.32.iife.min.js",
    ):
        response = await site.client.get(path)
        assert response.status == 200, path
        assert len(await response.read()) > 1000


async def test_every_page_works_on_an_empty_data_directory(tmp_path: Path) -> None:
    definitions = make_definitions(tmp_path / "definitions")
    console = make_console(tmp_path / "empty", definitions)
    async with TestClient(TestServer(create_app(console, Guard()))) as client:
        for path in (
            "/tasks",
            "/executions",
            "/executions?q=x&verdict=fail",
            "/reviews",
            "/analysis/title_extraction?period=all",
            "/workflows",
            "/tasks/title_extraction/diff",
            "/tasks/title_extraction/playground",
        ):
            response = await client.get(path)
            assert response.status == 200, (path, await response.text())
        assert "No executions match." in await (await client.get("/executions")).text()
        assert "Nothing to review" in await (await client.get("/reviews")).text()
