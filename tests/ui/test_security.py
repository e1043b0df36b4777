"""The guard: token on non-loopback binds, CSRF and origin on writes, host names, headers."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from tests.ui.conftest import Site, make_console
from tests.ui.support import INJECTION_ID
from tlm.ui.app import create_app, make_guard
from tlm.ui.security import TOKEN_COOKIE, TOKEN_ENV, Guard, is_loopback, token_required


@pytest.mark.parametrize(
    ("host", "needed"),
    [("127.0.0.1", False), ("localhost", False), ("::1", False), ("[::1]", False),
     ("127.0.0.2", False), ("0.0.0.0", True), ("::", True), ("192.168.1.10", True),
     ("10.0.0.1", True), ("example.org", True), ("", True)],
)  # fmt: skip
def test_only_loopback_binds_go_without_a_token(host: str, needed: bool) -> None:
    assert token_required(host) is needed
    assert is_loopback(host) is not needed


def test_non_loopback_guard_takes_the_token_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(TOKEN_ENV, "from-the-env-123")
    assert make_guard("0.0.0.0", 8765).token == "from-the-env-123"
    monkeypatch.delenv(TOKEN_ENV)
    generated = make_guard("0.0.0.0", 8765).token
    assert generated is not None
    assert len(generated) >= 24
    assert make_guard("127.0.0.1", 8765).token is None
    assert make_guard("127.0.0.1", 8765, require_token=True).token is not None


async def test_a_token_guard_refuses_requests_without_the_token(
    seeded: tuple[Path, Path, list[str]],
) -> None:
    data_dir, definitions, _ = seeded
    app = create_app(make_console(data_dir, definitions), Guard(token="s3cret-token"))
    async with TestClient(TestServer(app)) as client:
        refused = await client.get("/executions")
        assert refused.status == 401
        assert (await client.get("/static/app.js")).status == 401
        assert "access token" in await refused.text()
        assert (await client.get("/executions?token=wrong")).status == 401
        bearer = await client.get("/tasks", headers={"Authorization": "Bearer s3cret-token"})
        assert bearer.status == 200
        entry = await client.get("/tasks?token=s3cret-token", allow_redirects=False)
        assert entry.status == 303
        assert entry.headers["Location"] == "/tasks"  # the token leaves the address bar
        assert entry.cookies[TOKEN_COOKIE]["httponly"]
        assert (await client.get("/tasks")).status == 200  # the cookie carries it from now on


async def test_writes_need_the_csrf_token(site: Site) -> None:
    path = f"/executions/{INJECTION_ID}/feedback"
    form = {"correct": "correct", "note": "ok"}
    origin = {"Origin": site.origin}
    await site.client.get("/tasks")  # a session cookie, but no token in the form
    missing = await site.client.post(path, data=form, headers=origin)
    assert missing.status == 403
    wrong = await site.client.post(path, data={**form, "csrf_token": "0" * 64}, headers=origin)
    assert wrong.status == 403
    record = site.console.store.get(INJECTION_ID)
    assert record is not None
    assert len(record.feedback) == 1
    ok = await site.post(path, form)
    assert ok.status == 303
    token = await site.csrf()
    header = await site.client.post(
        path, data=form, headers={**origin, "X-CSRF-Token": token}, allow_redirects=False
    )
    assert header.status == 303


async def test_cross_origin_writes_are_refused(site: Site) -> None:
    token = await site.csrf()
    response = await site.client.post(
        f"/executions/{INJECTION_ID}/feedback",
        data={"csrf_token": token, "correct": "correct"},
        headers={"Origin": "http://evil.example"},
    )
    assert response.status == 403
    assert "cross-origin" in await response.text()


async def test_a_foreign_host_name_is_refused_on_a_loopback_bind(
    seeded: tuple[Path, Path, list[str]],
) -> None:
    data_dir, definitions, _ = seeded
    app = create_app(make_console(data_dir, definitions), make_guard("127.0.0.1", 0))
    async with TestClient(TestServer(app)) as client:
        assert (await client.get("/tasks")).status == 200
        rebound = await client.get("/tasks", headers={"Host": "attacker.example:8765"})
        assert rebound.status == 421


async def test_no_secret_reaches_a_page(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "sk-proj-abcdefghijklmnopqrstuvwxyz123456"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    for path in (
        "/tasks",
        "/tasks/title_extraction",
        "/tasks/title_extraction/playground",
        f"/executions/{INJECTION_ID}",
        "/reviews",
        "/analysis/title_extraction",
    ):
        assert secret not in await (await site.client.get(path)).text(), path
