"""Mapping from real wire failures (HTTP statuses, error bodies, socket errors) to TLM's errors.

Covers the error bodies of OpenAI, vLLM, llama.cpp's server, Ollama, OpenRouter and Anthropic.
Every error names provider, model and status and carries a short, sanitised excerpt of the server's
message: secrets (the API key, anything shaped like a key) are scrubbed, request headers never used.
"""

from __future__ import annotations

import email.utils
import json
import re
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import aiohttp

from tlm.errors import (
    AuthenticationFailed,
    BadRequest,
    ContextLengthExceeded,
    MalformedResponse,
    ProviderConnectionError,
    ProviderError,
    ProviderRejected,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimited,
)

__all__ = (
    "scrub",
    "excerpt",
    "parse_retry_after",
    "error_from_status",
    "error_from_exception",
)

_EXCERPT_CHARS = 300
_KEY_SHAPED = re.compile(
    r"(?i)\b(?:sk|pk|rk|key|sess)-[A-Za-z0-9_*.\-]{4,}"  # sk-..., sk-ant-..., sk-proj-... (masked)
    r"|\bbearer\s+[A-Za-z0-9_*.\-]{8,}"
)
_CONTEXT_LENGTH = re.compile(
    r"(?i)context[_ ]length|maximum context|context (?:size|window)"
    r"|exceeds? (?:the )?(?:available )?context|prompt is too long|too many tokens"
)
_CONTEXT_CODES = frozenset({"context_length_exceeded", "exceed_context_size_error"})
_UNAVAILABLE_TYPES = frozenset({"overloaded_error", "api_error", "server_error"})
_AUTH_TYPES = frozenset({"authentication_error", "permission_error", "invalid_api_key"})


def scrub(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` with every secret and anything shaped like an API key replaced by ``***``."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return _KEY_SHAPED.sub("***", text)


def excerpt(text: str, secrets: Iterable[str | None] = (), limit: int = _EXCERPT_CHARS) -> str:
    """A one-line, scrubbed, bounded excerpt of a server message."""
    flat = " ".join(scrub(text, secrets).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def parse_retry_after(
    headers: Mapping[str, str], *, now: Callable[[], float] = time.time
) -> float | None:
    """Seconds to wait from ``retry-after-ms``, or ``retry-after`` (seconds or an HTTP date)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    millis = lowered.get("retry-after-ms")
    if millis is not None:
        try:
            return max(0.0, float(millis) / 1000.0)
        except ValueError:
            pass
    value = lowered.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now())


def _error_fields(body: Any) -> tuple[str, str | None, str | None]:
    """``(message, type, code)`` from any of the known error body shapes."""
    if not isinstance(body, Mapping):
        return ("" if body is None else str(body), None, None)
    err = body.get("error", body)
    if isinstance(err, str):  # Ollama: {"error": "..."}
        return err, None, None
    if not isinstance(err, Mapping):
        return json.dumps(body)[:1000], None, None
    message = err.get("message") or body.get("message") or ""
    if not isinstance(message, str):
        message = json.dumps(message)
    kind = err.get("type") or body.get("type")
    code = err.get("code")
    return (
        message,
        kind if isinstance(kind, str) else None,
        code if isinstance(code, str) else None,
    )


def error_from_status(
    status: int,
    body: bytes | str | Any,
    headers: Mapping[str, str] | None = None,
    *,
    provider: str,
    model: str,
    secrets: Iterable[str | None] = (),
    now: Callable[[], float] = time.time,
) -> ProviderError:
    """The error for an HTTP error reply (or a 2xx whose body is an error object).

    ``body`` may be the raw bytes or already-parsed JSON.
    """
    parsed: Any = body
    if isinstance(body, bytes | str):
        raw = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = raw
    message, kind, code = _error_fields(parsed)
    text = excerpt(message or f"HTTP {status}", secrets)
    if kind or code:
        text = f"{text} [{', '.join(x for x in (kind, code) if x)}]"
    where: dict[str, Any] = {"provider": provider, "model": model, "status": status}
    kinds = {kind, code}
    if status == 429 or "rate_limit_error" in kinds or "rate_limit_exceeded" in kinds:
        if "insufficient_quota" in kinds:
            return ProviderRejected(text, **where)
        return RateLimited(text, retry_after=parse_retry_after(headers or {}, now=now), **where)
    if "overloaded_error" in kinds or status == 529 or status >= 500:
        return ProviderUnavailable(text, **where)
    if status in (401, 403) or kinds & _AUTH_TYPES:
        return AuthenticationFailed(text, **where)
    if kinds & _CONTEXT_CODES or _CONTEXT_LENGTH.search(message):
        return ContextLengthExceeded(text, **where)
    if status == 408:
        return ProviderTimeout(text, **where)
    if kinds & _UNAVAILABLE_TYPES:
        return ProviderUnavailable(text, **where)
    return BadRequest(text, **where)


def error_from_exception(
    exc: BaseException,
    *,
    provider: str,
    model: str,
    status: int | None = None,
    secrets: Iterable[str | None] = (),
) -> ProviderError:
    """The error for a transport failure: timeout, reset or refused connection, truncated body."""
    where: dict[str, Any] = {"provider": provider, "model": model, "status": status}
    detail = excerpt(str(exc) or type(exc).__name__, secrets)
    if isinstance(exc, TimeoutError):
        return ProviderTimeout(f"no answer in time ({type(exc).__name__})", **where)
    if isinstance(exc, aiohttp.ClientPayloadError):
        return MalformedResponse(f"truncated or corrupt body: {detail}", **where)
    if isinstance(exc, json.JSONDecodeError | UnicodeDecodeError):
        return MalformedResponse(f"invalid JSON body: {detail}", **where)
    if isinstance(exc, aiohttp.ClientConnectionError | ConnectionError | OSError):
        return ProviderConnectionError(f"connection failed: {detail}", **where)
    return ProviderConnectionError(f"{type(exc).__name__}: {detail}", **where)
