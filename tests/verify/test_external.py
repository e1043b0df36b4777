"""External verification against a real aiohttp endpoint on 127.0.0.1, and registered functions."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import anyio
import pytest
import pytest_asyncio
from aiohttp import web

from tlm.definition.model import ExternalParams
from tlm.errors import ConfigurationError, DefinitionError
from tlm.verify.base import Verdict
from tlm.verify.egress import ExternalPolicy
from tlm.verify.external import ExternalVerifier, verdict_from_reply

from .support import make_context


class Endpoint:
    """A real HTTP server with one route per behaviour; records requests."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, Any, Mapping[str, str]]] = []
        self.flaky_failures = 0
        self.release = asyncio.Event()
        self.url = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        body = await request.json()
        self.requests.append((name, body, dict(request.headers)))
        if name == "pass":
            return web.json_response({"passed": True, "confidence": 0.9, "issues": []})
        if name == "fail":
            reply = {"passed": False, "issues": ["salary missing"], "details": {"checker": "v2"}}
            return web.json_response(reply)
        if name == "bool":
            return web.json_response(True)
        if name == "garbage":
            return web.Response(text="<html>oops</html>")
        if name == "hang":
            await self.release.wait()
            return web.json_response(True)
        if name == "flaky":
            if self.flaky_failures > 0:
                self.flaky_failures -= 1
                return web.Response(status=503, text="try later")
            return web.json_response({"passed": True})
        if name == "bad-request":
            return web.Response(status=400, text="no such task")
        raise web.HTTPNotFound()


@pytest_asyncio.fixture
async def endpoint() -> AsyncIterator[Endpoint]:
    server = Endpoint()
    app = web.Application()
    app.router.add_post("/{name}", server.handle)
    runner = web.AppRunner(app, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    server.url = f"http://127.0.0.1:{port}"
    try:
        yield server
    finally:
        server.release.set()
        await runner.cleanup()


def external(url: str, *, env: tuple[str, ...] = (), **kwargs: Any) -> ExternalVerifier:
    policy = ExternalPolicy(env=env)
    return ExternalVerifier(ExternalParams(endpoint=url, **kwargs), backoff_s=0.0, policy=policy)


async def test_endpoint_pass_receives_payload(endpoint: Endpoint) -> None:
    verdict = await external(f"{endpoint.url}/pass").verify(make_context(output={"a": 1}))

    assert verdict.passed is True
    assert verdict.confidence == 0.9
    assert verdict.method == "external"
    assert verdict.decisive
    (_, body, _) = endpoint.requests[0]
    assert body == {
        "task_id": "skill_decomposition",
        "task_version": "1.2.0",
        "input": {"skill_name": "python"},
        "output": {"a": 1},
        "execution_id": "exec-1",
    }


async def test_endpoint_fail_maps_issues_and_details(endpoint: Endpoint) -> None:
    verdict = await external(f"{endpoint.url}/fail").verify(make_context())
    assert verdict.passed is False
    assert verdict.decisive
    assert verdict.confidence == 1.0
    assert verdict.details["issues"] == ["salary missing"]
    assert verdict.details["checker"] == "v2"


async def test_endpoint_bare_bool(endpoint: Endpoint) -> None:
    verdict = await external(f"{endpoint.url}/bool").verify(make_context())
    assert verdict.passed is True


async def test_endpoint_garbage_is_failed_non_decisive(endpoint: Endpoint) -> None:
    verdict = await external(f"{endpoint.url}/garbage").verify(make_context())
    assert verdict.passed is False
    assert not verdict.decisive
    assert "non-JSON" in verdict.details["error"]


async def test_endpoint_timeout_after_retries(endpoint: Endpoint) -> None:
    verifier = external(f"{endpoint.url}/hang", timeout_s=0.2, retries=1)
    verdict = await verifier.verify(make_context())

    assert verdict.passed is False
    assert not verdict.decisive
    assert "timed out after 0.2 s (2 attempt(s))" in verdict.details["error"]
    assert len(endpoint.requests) == 2


async def test_endpoint_retries_5xx_then_succeeds(endpoint: Endpoint) -> None:
    endpoint.flaky_failures = 2
    verdict = await external(f"{endpoint.url}/flaky", retries=2).verify(make_context())
    assert verdict.passed is True
    assert len(endpoint.requests) == 3


async def test_endpoint_5xx_exhausting_retries(endpoint: Endpoint) -> None:
    endpoint.flaky_failures = 5
    verdict = await external(f"{endpoint.url}/flaky", retries=1).verify(make_context())
    assert verdict.passed is False
    assert not verdict.decisive
    assert "failed after 2 attempt(s): HTTP 503" in verdict.details["error"]


async def test_endpoint_4xx_is_not_retried(endpoint: Endpoint) -> None:
    verdict = await external(f"{endpoint.url}/bad-request", retries=3).verify(make_context())
    assert verdict.passed is False
    assert "HTTP 400" in verdict.details["error"]
    assert len(endpoint.requests) == 1


async def test_connection_refused_is_failed_verdict() -> None:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    await listener.aclose()  # nothing listens on this port any more
    verdict = await external(f"http://127.0.0.1:{port}/x", retries=1).verify(make_context())
    assert verdict.passed is False
    assert not verdict.decisive
    assert "failed after 2 attempt(s)" in verdict.details["error"]


async def test_headers_expand_env_and_never_leak(
    endpoint: Endpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "sk-very-secret-value"
    monkeypatch.setenv("CHECKER_TOKEN", secret)
    headers = {"Authorization": "Bearer ${CHECKER_TOKEN}"}
    allowed = ("CHECKER_TOKEN",)
    verifier = external(f"{endpoint.url}/pass", headers=headers, env=allowed)
    verdict = await verifier.verify(make_context())
    assert verdict.passed is True
    assert endpoint.requests[0][2]["Authorization"] == f"Bearer {secret}"

    failing = external(f"{endpoint.url}/bad-request", headers=headers, env=allowed)
    failed = await failing.verify(make_context())
    assert secret not in repr(failed)


async def test_missing_header_env_var_is_named(
    endpoint: Endpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    verifier = external(
        f"{endpoint.url}/pass", headers={"X-Key": "${NOT_SET_ANYWHERE}"}, env=("NOT_SET_ANYWHERE",)
    )
    verdict = await verifier.verify(make_context())
    assert verdict.passed is False
    assert "NOT_SET_ANYWHERE" in verdict.details["error"]
    assert endpoint.requests == []


async def test_borrowed_session_is_used_and_left_open(endpoint: Endpoint) -> None:
    async with aiohttp.ClientSession() as session:
        verifier = ExternalVerifier(
            ExternalParams(endpoint=f"{endpoint.url}/pass"), session=session
        )
        assert (await verifier.verify(make_context())).passed is True
        assert not session.closed


async def test_registered_function() -> None:
    seen: list[Mapping[str, Any]] = []

    async def salary_check(payload: Mapping[str, Any]) -> Any:
        seen.append(payload)
        return {"passed": payload["output"]["salary"] > 0, "confidence": 0.7}

    verifier = ExternalVerifier(
        ExternalParams(function="salary_check"), functions={"salary_check": salary_check}
    )
    verdict = await verifier.verify(make_context(output={"salary": 10}))
    assert verdict.passed is True
    assert verdict.confidence == 0.7
    assert seen[0]["execution_id"] == "exec-1"


async def test_function_raising_or_hanging_is_failed_verdict() -> None:
    async def broken(payload: Mapping[str, Any]) -> Any:
        raise RuntimeError("database down")

    async def slow(payload: Mapping[str, Any]) -> Any:
        await anyio.sleep_forever()

    functions = {"broken": broken, "slow": slow}
    verdict = await ExternalVerifier(ExternalParams(function="broken"), functions=functions).verify(
        make_context()
    )
    assert verdict.passed is False
    assert "RuntimeError: database down" in verdict.details["error"]

    verdict = await ExternalVerifier(
        ExternalParams(function="slow", timeout_s=0.05), functions=functions
    ).verify(make_context())
    assert verdict.passed is False
    assert "did not answer within 0.05 s" in verdict.details["error"]


def test_unregistered_function_and_bad_params_fail_at_construction() -> None:
    with pytest.raises(ConfigurationError, match="'nope' is not registered"):
        ExternalVerifier(ExternalParams(function="nope"))
    with pytest.raises(DefinitionError, match="exactly one of"):
        ExternalVerifier(ExternalParams())
    with pytest.raises(DefinitionError, match="exactly one of"):
        ExternalVerifier(ExternalParams(endpoint="http://x", function="f"))


@pytest.mark.parametrize(
    ("reply", "passed", "decisive"),
    [
        (False, False, True),
        ({"passed": True, "confidence": 0.5}, True, True),
        ({"passed": True, "confidence": 1.5}, False, False),
        ({"passed": True, "confidence": "high"}, False, False),
        ({"ok": True}, False, False),
        ("yes", False, False),
        (None, False, False),
        (Verdict(passed=True, confidence=0.3, method="external"), True, True),
    ],
    ids=["bool", "dict", "conf-range", "conf-type", "no-passed", "str", "none", "verdict"],
)
def test_reply_mapping(reply: Any, passed: bool, decisive: bool) -> None:
    verdict = verdict_from_reply(reply, source="test")
    assert verdict.passed is passed
    assert verdict.decisive is decisive


async def test_cancellation_propagates(endpoint: Endpoint) -> None:
    verifier = external(f"{endpoint.url}/hang", timeout_s=30)
    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:
            tg.start_soon(verifier.verify, make_context())
            with anyio.fail_after(5):
                while not endpoint.requests:  # noqa: ASYNC110 - the request is on the wire
                    await anyio.sleep(0.01)
            scope.cancel()
    assert scope.cancelled_caught
