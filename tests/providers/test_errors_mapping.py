"""Wire failures → TLM errors, without a socket: statuses, bodies, Retry-After, scrubbing."""

from __future__ import annotations

import email.utils
import json
from typing import Any

import aiohttp
import pytest

from tlm.errors import (
    AuthenticationFailed,
    BadRequest,
    ContextLengthExceeded,
    MalformedResponse,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimited,
)
from tlm.providers.errors import (
    error_from_exception,
    error_from_status,
    excerpt,
    parse_retry_after,
    scrub,
)

WHERE: dict[str, Any] = {"provider": "p", "model": "m"}


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (401, {"error": {"message": "bad key", "code": "invalid_api_key"}}, AuthenticationFailed),
        (403, {"type": "error", "error": {"type": "permission_error"}}, AuthenticationFailed),
        (404, {"error": "model 'x' not found"}, BadRequest),  # Ollama
        (422, "Unprocessable Entity", BadRequest),
        (413, {"type": "error", "error": {"type": "request_too_large"}}, BadRequest),
        (
            400,
            {"error": {"message": "x", "code": "context_length_exceeded"}},
            ContextLengthExceeded,
        ),
        (
            400,
            {"object": "error", "message": "maximum context length is 4096"},
            ContextLengthExceeded,
        ),
        (400, {"error": {"message": "Context size has been exceeded."}}, ContextLengthExceeded),
        (
            400,
            {"type": "error", "error": {"message": "prompt is too long: 9 > 8"}},
            ContextLengthExceeded,
        ),
        (408, "timeout", ProviderTimeout),
        (429, {"error": {"message": "slow"}}, RateLimited),
        (500, b"", ProviderUnavailable),
        (503, "<html>down</html>", ProviderUnavailable),
        (529, {"type": "error", "error": {"type": "overloaded_error"}}, ProviderUnavailable),
    ],
)
def test_status_and_body_choose_the_class(
    status: int, body: object, expected: type[ProviderError]
) -> None:
    raw = body if isinstance(body, bytes | str) else json.dumps(body)
    error = error_from_status(status, raw, {}, **WHERE)
    assert type(error) is expected
    assert error.status == status
    assert error.retryable is expected.retryable


def test_retry_after_forms() -> None:
    assert parse_retry_after({"Retry-After": "12"}) == 12.0
    assert parse_retry_after({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    date = email.utils.formatdate(1_000_030.0, usegmt=True)
    assert parse_retry_after({"retry-after": date}, now=lambda: 1_000_000.0) == 30.0
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None
    limited = error_from_status(429, b"{}", {"Retry-After": "4"}, **WHERE)
    assert isinstance(limited, RateLimited)
    assert limited.retry_after == 4.0


def test_exceptions_map_to_transport_errors() -> None:
    assert isinstance(error_from_exception(TimeoutError(), **WHERE), ProviderTimeout)
    truncated = aiohttp.ClientPayloadError("Response payload is not completed")
    assert isinstance(error_from_exception(truncated, **WHERE), MalformedResponse)
    reset = aiohttp.ServerDisconnectedError()
    assert isinstance(error_from_exception(reset, **WHERE), ProviderConnectionError)
    assert isinstance(
        error_from_exception(ConnectionResetError(), **WHERE), ProviderConnectionError
    )
    bad_json = json.JSONDecodeError("Expecting value", "{", 1)
    assert isinstance(error_from_exception(bad_json, **WHERE), MalformedResponse)


def test_secrets_and_key_shapes_are_scrubbed() -> None:
    key = "abcdefgh12345678"
    assert scrub(f"key {key} used", [key]) == "key *** used"
    assert "sk-proj" not in scrub("Incorrect API key provided: sk-proj-abc****wxyz.")
    assert "sk-ant" not in scrub("bad sk-ant-api03-XYZXYZXYZ")
    assert "tok123456789" not in scrub("Authorization: Bearer tok123456789")
    error = error_from_status(
        401, json.dumps({"error": {"message": f"key {key} is wrong"}}), {}, secrets=[key], **WHERE
    )
    assert key not in str(error)


def test_excerpts_are_short_and_single_line() -> None:
    text = excerpt("line one\n\n  line two " + "x" * 1000)
    assert "\n" not in text
    assert len(text) <= 300
    assert text.startswith("line one line two")
