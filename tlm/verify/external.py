"""External verification: an HTTP endpoint or a registered async function judges the output.

The endpoint receives ``POST {task_id, task_version, input, output, execution_id}`` as JSON and
answers ``{passed, confidence?, issues?, details?}`` or a bare ``true``/``false``. Connection
errors, timeouts and 5xx replies are retried ``retries`` times; whatever still fails becomes a
failed, non-decisive verdict with the reason, never an exception (cancellation still propagates).
Header values of the form ``${ENV_VAR}`` are read from the environment at call time, only for the
variables the :class:`~tlm.verify.egress.ExternalPolicy` allows; they never appear in verdict
details or error text. The endpoint's host must be allowed by the policy (loopback always is),
redirects are followed only within the same origin, and the payload's redacted fields are masked
unless the policy reveals them to this endpoint or function.
"""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp
import anyio
import attrs
import tenacity

from tlm.errors import BudgetExceeded, ConfigurationError, DefinitionError
from tlm.providers.errors import scrub
from tlm.telemetry.redact import Redaction
from tlm.verify.base import Verdict, VerificationContext
from tlm.verify.egress import EgressRefused, ExternalPolicy, same_origin
from tlm.verify.params import ExternalParams

__all__ = ("ExternalFunction", "ExternalVerifier", "verdict_from_reply")

METHOD = "external"

ExternalFunction = Callable[[Mapping[str, Any]], Awaitable[Any]]
"""A registered verifier: receives the same payload an endpoint would, returns the same reply."""

_MAX_REDIRECTS = 5
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


class _ExternalFailed(Exception):
    """The check could not produce a verdict; the message is safe to show."""


class _Retryable(Exception):
    """An HTTP reply worth retrying (5xx)."""


def verdict_from_reply(reply: Any, *, source: str) -> Verdict:
    """Map an endpoint's or function's reply to a verdict.

    Accepted: a bare bool; ``{"passed": bool, "confidence"?: 0..1, "issues"?: [...],
    "details"?: {...}}``; or a :class:`Verdict`. Anything else is a failed, non-decisive verdict.
    """
    if isinstance(reply, Verdict):
        return reply
    if isinstance(reply, bool):
        return Verdict(passed=reply, confidence=1.0, method=METHOD, details={"source": source})
    if not isinstance(reply, Mapping) or not isinstance(reply.get("passed"), bool):
        return _failed(f"{source} replied {_excerpt(reply)}; expected a bool or {{passed: bool}}")
    confidence = reply.get("confidence", 1.0)
    if isinstance(confidence, bool) or not isinstance(confidence, int | float):
        return _failed(f"{source} replied a non-numeric confidence {_excerpt(confidence)}")
    if not 0.0 <= float(confidence) <= 1.0 or math.isnan(confidence):
        return _failed(f"{source} replied confidence {confidence}, outside 0..1")
    issues = reply.get("issues", [])
    if not isinstance(issues, list):
        return _failed(f"{source} replied issues that are not a list: {_excerpt(issues)}")
    extra = reply.get("details", {})
    details: dict[str, Any] = dict(extra) if isinstance(extra, Mapping) else {"details": extra}
    details.update({"source": source, "issues": [str(i) for i in issues]})
    return Verdict(
        passed=reply["passed"], confidence=float(confidence), method=METHOD, details=details
    )


@attrs.define
class ExternalVerifier:
    """Verifies through ``params.endpoint`` (HTTP POST) or ``params.function`` (registered).

    Args:
        params: the definition's external parameters.
        functions: registered async verifier functions by name.
        session: an aiohttp session to borrow; without one, a session is opened per check.
        backoff_s: the first wait between retries (doubling, capped at 2 s); 0 in tests.
        policy: allowed hosts and environment variables, and the redacted fields (default:
            loopback only, no variables, nothing redacted).
    """

    params: ExternalParams
    functions: Mapping[str, ExternalFunction] = attrs.field(kw_only=True, factory=dict)
    session: aiohttp.ClientSession | None = attrs.field(kw_only=True, default=None)
    policy: ExternalPolicy = attrs.field(kw_only=True, factory=ExternalPolicy)
    backoff_s: float = attrs.field(kw_only=True, default=0.2)
    method: str = attrs.field(default=METHOD, init=False)

    def __attrs_post_init__(self) -> None:
        p = self.params
        if (p.endpoint is None) == (p.function is None):
            raise DefinitionError(
                "external verification needs exactly one of 'endpoint' or 'function' "
                "@ $.verification.parameters"
            )
        if p.function is not None and p.function not in self.functions:
            known = ", ".join(sorted(self.functions)) or "none"
            raise ConfigurationError(
                f"external verifier function {p.function!r} is not registered (registered: {known})"
            )

    async def verify(self, context: VerificationContext, /) -> Verdict:
        """Ask the endpoint or function; failures become failed, non-decisive verdicts."""
        p = self.params
        input: Any = dict(context.input)
        output = context.primary.output
        scope = Redaction(fields=self.policy.redact).for_input(input)
        if scope.fields and not self.policy.reveals_to(url=p.endpoint, function=p.function):
            input, output = scope.value(input), scope.value(output)
        payload = {
            "task_id": context.task.id,
            "task_version": context.task.version,
            "input": input,
            "output": output,
            "execution_id": context.execution_id,
        }
        try:
            if self.params.function is not None:
                return await self._call_function(self.params.function, payload)
            assert self.params.endpoint is not None
            return await self._post(self.params.endpoint, payload)
        except _ExternalFailed as exc:
            return _failed(str(exc))

    async def _call_function(self, name: str, payload: Mapping[str, Any]) -> Verdict:
        source = f"function {name!r}"
        function = self.functions[name]
        try:
            with anyio.fail_after(self.params.timeout_s):
                reply = await function(payload)
        except TimeoutError:
            raise _ExternalFailed(
                f"{source} did not answer within {self.params.timeout_s} s"
            ) from None
        except BudgetExceeded:
            raise
        except Exception as exc:
            raise _ExternalFailed(f"{source} raised {type(exc).__name__}: {exc}") from None
        return verdict_from_reply(reply, source=source)

    async def _post(self, endpoint: str, payload: Mapping[str, Any]) -> Verdict:
        source = f"endpoint {endpoint}"
        try:
            headers, secrets = _expand_headers(self.params.headers, self.policy)
            await self.policy.check_url(endpoint)
        except EgressRefused as exc:
            raise _ExternalFailed(f"{source} refused: {exc}") from None
        attempts = max(0, self.params.retries) + 1
        retrying = tenacity.AsyncRetrying(
            stop=tenacity.stop_after_attempt(attempts),
            wait=tenacity.wait_exponential(multiplier=self.backoff_s, max=2.0),
            retry=tenacity.retry_if_exception_type(
                (_Retryable, aiohttp.ClientConnectionError, TimeoutError)
            ),
            sleep=anyio.sleep,
            reraise=True,
        )
        status: int
        body: Any
        try:
            if self.session is not None:
                status, body = await retrying(
                    self._post_once, self.session, endpoint, payload, headers
                )
            else:
                async with self.policy.session() as session:
                    status, body = await retrying(
                        self._post_once, session, endpoint, payload, headers
                    )
        except _Retryable as exc:
            raise _ExternalFailed(
                scrub(f"{source} failed after {attempts} attempt(s): {exc}", secrets)
            ) from None
        except TimeoutError:
            raise _ExternalFailed(
                f"{source} timed out after {self.params.timeout_s} s ({attempts} attempt(s))"
            ) from None
        except aiohttp.ClientError as exc:
            reason = f"{source} failed after {attempts} attempt(s): {type(exc).__name__}: {exc}"
            raise _ExternalFailed(scrub(reason, secrets)) from None
        if status >= 400:
            raise _ExternalFailed(
                scrub(f"{source} answered HTTP {status}: {_excerpt(body)}", secrets)
            )
        if not isinstance(body, str):
            return verdict_from_reply(body, source=source)
        raise _ExternalFailed(scrub(f"{source} answered non-JSON: {_excerpt(body)}", secrets))

    async def _post_once(
        self,
        session: aiohttp.ClientSession,
        endpoint: str,
        payload: Mapping[str, Any],
        headers: Mapping[str, str],
    ) -> tuple[int, Any]:
        timeout = aiohttp.ClientTimeout(total=self.params.timeout_s)
        url = endpoint
        for _hop in range(_MAX_REDIRECTS + 1):
            async with session.post(
                url, json=payload, headers=headers, timeout=timeout, allow_redirects=False
            ) as resp:
                location = resp.headers.get("Location")
                if resp.status in _REDIRECTS and location:
                    target = urljoin(str(resp.url), location)
                    if not same_origin(endpoint, target):
                        raise _ExternalFailed(
                            f"endpoint {endpoint} redirected to another origin "
                            f"({_origin(target)}); not followed"
                        )
                    url = target
                    continue
                text = await resp.text()
                if resp.status >= 500:
                    raise _Retryable(f"HTTP {resp.status}: {_excerpt(text)}")
                try:
                    return resp.status, json.loads(text)
                except ValueError:
                    return resp.status, text
        raise _ExternalFailed(f"endpoint {endpoint} redirected more than {_MAX_REDIRECTS} times")


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


def _expand_headers(
    headers: Mapping[str, str], policy: ExternalPolicy
) -> tuple[dict[str, str], tuple[str, ...]]:
    """Headers with the allowed ``${VAR}`` expanded, and the values used (to scrub from text)."""
    expanded: dict[str, str] = {}
    secrets: list[str] = []
    for key, value in headers.items():
        expanded[key], used = policy.expand(value)
        secrets.extend(used)
    return expanded, tuple(secrets)


def _excerpt(value: Any, limit: int = 200) -> str:
    text = value if isinstance(value, str) else repr(value)
    return repr(text[:limit]) if isinstance(value, str) else text[:limit]


def _failed(reason: str) -> Verdict:
    return Verdict(
        passed=False,
        confidence=0.0,
        method=METHOD,
        details={"decisive": False, "error": reason},
    )
