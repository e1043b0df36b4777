"""The providers' batch APIs on the wire: OpenAI's Batch API and Anthropic's Message Batches.

A :class:`BatchClient` turns requests into batch lines (the same bodies the synchronous adapters
send), submits a batch, reads its status, streams its result lines and cancels it. Statuses are
normalised to ``running`` / ``ended`` / ``failed``; result lines to :class:`LineResult`
(``succeeded``, ``errored``, ``expired``, ``canceled``). Every HTTP failure becomes a
:class:`~tlm.errors.ProviderError` with secrets scrubbed.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import IO, Any, Literal, Protocol

import aiohttp
import attrs

from tlm.catalog import BatchLimits, ModelCard
from tlm.errors import ConfigurationError, MalformedResponse, ProviderError
from tlm.providers.anthropic import ANTHROPIC_VERSION, build_messages_body, parse_message
from tlm.providers.base import ChatRequest, ChatResponse
from tlm.providers.errors import error_from_exception, error_from_status
from tlm.providers.openai_compat import build_chat_body, parse_chat_completion

__all__ = (
    "BatchClient",
    "BatchStatus",
    "LineResult",
    "OpenAIBatchClient",
    "AnthropicBatchClient",
    "client_for",
    "line_error",
)

Kind = Literal["succeeded", "errored", "expired", "canceled"]
_CHAT_ENDPOINT = "/v1/chat/completions"
_CHUNK = 1 << 16


@attrs.frozen
class BatchStatus:
    """A provider batch's status, normalised."""

    id: str
    state: Literal["running", "ended", "failed"]
    raw: str
    """The provider's own status (``in_progress``, ``expired``, ``ended``, ...)."""
    counts: Mapping[str, int] = attrs.field(factory=dict)
    detail: str | None = None
    """Why the batch failed, when it did."""
    data: Mapping[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class LineResult:
    """One line of a batch's results."""

    custom_id: str
    kind: Kind
    body: Any = None
    """The response body (succeeded) or the error body (errored)."""
    status: int | None = None
    """The HTTP status of an errored line, when the provider gives one."""

    def to_json(self) -> dict[str, Any]:
        """JSON-ready data (kept in the batch state until the line is processed)."""
        return attrs.asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LineResult:
        """The inverse of :meth:`to_json`."""
        return cls(**data)


class BatchClient(Protocol):
    """One provider's batch API."""

    provider: str
    limits: BatchLimits

    def line(self, custom_id: str, request: ChatRequest, card: ModelCard) -> bytes:
        """The batch line for ``request`` (its size counts against ``limits.max_bytes``)."""
        ...

    async def submit(self, lines: Sequence[bytes], *, model: str) -> tuple[str, str | None]:
        """Submit a batch of lines; return the batch id and the input file id (if any)."""
        ...

    async def status(self, batch_id: str) -> BatchStatus:
        """The batch's status."""
        ...

    def results(self, status: BatchStatus) -> AsyncIterator[LineResult]:
        """The result lines of an ended batch, streamed."""
        ...

    async def cancel(self, batch_id: str) -> None:
        """Ask the provider to cancel the batch."""
        ...

    def outcome(
        self, result: LineResult, request: ChatRequest, card: ModelCard
    ) -> ChatResponse | ProviderError:
        """A succeeded or errored line as the response or the error the call met."""
        ...

    async def aclose(self) -> None:
        """Close the HTTP session."""
        ...


class _Http:
    """An owned aiohttp session with the provider's headers; failures become ProviderErrors."""

    def __init__(self, provider: str, headers: Mapping[str, str], secret: str | None) -> None:
        self.provider = provider
        self._headers = dict(headers)
        self._secrets = (secret,)
        self._session: aiohttp.ClientSession | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600))
        return self._session

    async def json(
        self, method: str, url: str, *, model: str = "batch", **kwargs: Any
    ) -> dict[str, Any]:
        status: int | None = None
        try:
            async with self._get_session().request(
                method, url, headers=self._headers, **kwargs
            ) as response:
                status = response.status
                raw = await response.read()
                headers = dict(response.headers)
        except Exception as exc:
            raise error_from_exception(
                exc, provider=self.provider, model=model, status=status, secrets=self._secrets
            ) from None
        if status >= 400:
            raise error_from_status(
                status, raw, headers, provider=self.provider, model=model, secrets=self._secrets
            )
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise error_from_exception(
                exc, provider=self.provider, model=model, status=status, secrets=self._secrets
            ) from None
        if not isinstance(data, dict):
            raise MalformedResponse("expected a JSON object", provider=self.provider, model=model)
        return data

    async def lines(self, url: str) -> AsyncIterator[dict[str, Any]]:
        """GET ``url`` and stream its JSONL body one object at a time (bounded memory)."""
        status: int | None = None
        try:
            async with self._get_session().get(url, headers=self._headers) as response:
                status = response.status
                if status >= 400:
                    raw = await response.read()
                    raise error_from_status(
                        status,
                        raw,
                        dict(response.headers),
                        provider=self.provider,
                        model="batch",
                        secrets=self._secrets,
                    )
                buffer = b""
                async for chunk in response.content.iter_chunked(_CHUNK):
                    buffer += chunk
                    *complete, buffer = buffer.split(b"\n")
                    for text in complete:
                        if text.strip():
                            yield _object(text, self.provider)
                if buffer.strip():
                    yield _object(buffer, self.provider)
        except ProviderError:
            raise
        except Exception as exc:
            raise error_from_exception(
                exc, provider=self.provider, model="batch", status=status, secrets=self._secrets
            ) from None

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()


def _object(text: bytes, provider: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        raise MalformedResponse(
            f"a result line is not JSON: {text[:80]!r}", provider=provider, model="batch"
        ) from None
    if not isinstance(value, dict):
        raise MalformedResponse("a result line is not an object", provider=provider, model="batch")
    return value


def _spool(
    lines: Sequence[bytes], head: bytes = b"", sep: bytes = b"\n", tail: bytes = b"\n"
) -> IO[bytes]:
    """The lines joined in a temporary file (memory only while small), rewound."""
    spool = tempfile.SpooledTemporaryFile(max_size=8 << 20)
    spool.write(head)
    for index, line in enumerate(lines):
        if index:
            spool.write(sep)
        spool.write(line)
    spool.write(tail)
    spool.seek(0)
    return spool


class OpenAIBatchClient:
    """OpenAI's Batch API: upload a JSONL file (``purpose=batch``), create a batch on
    ``/v1/chat/completions`` with a ``24h`` window, poll it, download the output and error files.
    """

    def __init__(self, *, provider: str, base_url: str, api_key: str | None, limits: BatchLimits):
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.provider = provider
        self.limits = limits
        self.base_url = base_url.rstrip("/")
        self._http = _Http(provider, headers, api_key)

    def line(self, custom_id: str, request: ChatRequest, card: ModelCard) -> bytes:
        body = {
            "custom_id": custom_id,
            "method": "POST",
            "url": _CHAT_ENDPOINT,
            "body": build_chat_body(request, card),
        }
        return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()

    async def submit(self, lines: Sequence[bytes], *, model: str) -> tuple[str, str | None]:
        with _spool(lines) as spool:
            form = aiohttp.FormData()
            form.add_field("purpose", "batch")
            form.add_field(
                "file", spool, filename="tlm-batch.jsonl", content_type="application/jsonl"
            )
            uploaded = await self._http.json("POST", f"{self.base_url}/files", data=form)
        file_id = str(uploaded["id"])
        created = await self._http.json(
            "POST",
            f"{self.base_url}/batches",
            json={
                "input_file_id": file_id,
                "endpoint": _CHAT_ENDPOINT,
                "completion_window": "24h",
                "metadata": {"created_by": "tlm"},
            },
        )
        return str(created["id"]), file_id

    async def status(self, batch_id: str) -> BatchStatus:
        data = await self._http.json("GET", f"{self.base_url}/batches/{batch_id}")
        raw = str(data.get("status"))
        state: Literal["running", "ended", "failed"] = "running"
        detail = None
        if raw in ("completed", "expired", "cancelled"):
            state = "ended"
        elif raw == "failed":
            state = "failed"
            errors = (data.get("errors") or {}).get("data") or []
            detail = (
                "; ".join(
                    f"line {e.get('line')}: {e.get('message')}"
                    if e.get("line")
                    else str(e.get("message"))
                    for e in errors[:5]
                    if isinstance(e, Mapping)
                )
                or "the batch failed validation"
            )
        counts = data.get("request_counts") or {}
        return BatchStatus(batch_id, state, raw, dict(counts), detail, data)

    async def results(self, status: BatchStatus) -> AsyncIterator[LineResult]:
        for key in ("output_file_id", "error_file_id"):
            file_id = status.data.get(key)
            if not file_id:
                continue
            async for line in self._http.lines(f"{self.base_url}/files/{file_id}/content"):
                yield _openai_line(line)

    async def cancel(self, batch_id: str) -> None:
        await self._http.json("POST", f"{self.base_url}/batches/{batch_id}/cancel")

    def outcome(
        self, result: LineResult, request: ChatRequest, card: ModelCard
    ) -> ChatResponse | ProviderError:
        if result.kind == "succeeded":
            try:
                return parse_chat_completion(result.body, request, card, provider=self.provider)
            except ProviderError as exc:
                return exc
        return line_error(result, self.provider, request.model)

    async def aclose(self) -> None:
        await self._http.aclose()


def _batch_error(error: Mapping[str, Any]) -> str:
    where = f"line {error['line']}: " if error.get("line") else ""
    return f"{where}{error.get('message')}"


def _openai_line(line: Mapping[str, Any]) -> LineResult:
    custom_id = str(line.get("custom_id"))
    response = line.get("response")
    error = line.get("error")
    if isinstance(response, Mapping):
        status = response.get("status_code")
        body = response.get("body")
        if isinstance(status, int) and status < 400 and error is None:
            return LineResult(custom_id, "succeeded", body)
        return LineResult(custom_id, "errored", body, status if isinstance(status, int) else None)
    code = error.get("code") if isinstance(error, Mapping) else None
    if code == "batch_expired":
        return LineResult(custom_id, "expired")
    if code == "batch_cancelled":
        return LineResult(custom_id, "canceled")
    return LineResult(custom_id, "errored", {"error": error}, None)


def line_error(result: LineResult, provider: str, model: str) -> ProviderError:
    """The error an errored result line stands for (as the synchronous call would have met)."""
    body = result.body
    status = result.status
    if status is None:
        kind = body.get("error", {}).get("type") if isinstance(body, Mapping) else None
        status = {"invalid_request_error": 400, "authentication_error": 401,
                  "permission_error": 403, "not_found_error": 404, "rate_limit_error": 429,
                  "overloaded_error": 529}.get(str(kind), 500)  # fmt: skip
    return error_from_status(status, body, provider=provider, model=model)


class AnthropicBatchClient:
    """Anthropic's Message Batches: ``{"requests": [{"custom_id", "params"}]}`` in one POST,
    ``processing_status`` polled until ``ended``, results streamed from ``results_url``.
    """

    def __init__(self, *, provider: str, base_url: str, api_key: str | None, limits: BatchLimits):
        headers = {"anthropic-version": ANTHROPIC_VERSION, "Content-Type": "application/json"}
        if api_key:
            headers["x-api-key"] = api_key
        self.provider = provider
        self.limits = limits
        self.base_url = base_url.rstrip("/")
        self._http = _Http(provider, headers, api_key)

    def line(self, custom_id: str, request: ChatRequest, card: ModelCard) -> bytes:
        body = {"custom_id": custom_id, "params": build_messages_body(request, card)}
        return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()

    async def submit(self, lines: Sequence[bytes], *, model: str) -> tuple[str, str | None]:
        with _spool(lines, head=b'{"requests":[', sep=b",", tail=b"]}") as spool:
            created = await self._http.json(
                "POST", f"{self.base_url}/v1/messages/batches", data=spool
            )
        return str(created["id"]), None

    async def status(self, batch_id: str) -> BatchStatus:
        data = await self._http.json("GET", f"{self.base_url}/v1/messages/batches/{batch_id}")
        raw = str(data.get("processing_status"))
        state: Literal["running", "ended", "failed"] = "ended" if raw == "ended" else "running"
        return BatchStatus(batch_id, state, raw, dict(data.get("request_counts") or {}), None, data)

    async def results(self, status: BatchStatus) -> AsyncIterator[LineResult]:
        url = status.data.get("results_url") or (
            f"{self.base_url}/v1/messages/batches/{status.id}/results"
        )
        async for line in self._http.lines(str(url)):
            custom_id = str(line.get("custom_id"))
            result = line.get("result") or {}
            kind = result.get("type")
            if kind == "succeeded":
                yield LineResult(custom_id, "succeeded", result.get("message"))
            elif kind in ("expired", "canceled"):
                yield LineResult(custom_id, kind)
            else:
                yield LineResult(custom_id, "errored", result.get("error"))

    async def cancel(self, batch_id: str) -> None:
        await self._http.json("POST", f"{self.base_url}/v1/messages/batches/{batch_id}/cancel")

    def outcome(
        self, result: LineResult, request: ChatRequest, card: ModelCard
    ) -> ChatResponse | ProviderError:
        if result.kind == "succeeded" and isinstance(result.body, Mapping):
            try:
                return parse_message(result.body, request, card, provider=self.provider)
            except ProviderError as exc:
                return exc
        return line_error(result, self.provider, request.model)

    async def aclose(self) -> None:
        await self._http.aclose()


def client_for(
    card: ModelCard, limits: BatchLimits, env: Mapping[str, str]
) -> OpenAIBatchClient | AnthropicBatchClient:
    """The batch client for ``card``'s provider.

    Raises:
        ConfigurationError: the card has no batch prices, or its base URL or API key is missing.
    """
    if not card.batchable:
        raise ConfigurationError(
            f"model {card.id!r} has no batch API in the catalog (no batch_input_price_per_mtok); "
            "pick a batchable model with --model, or run without --provider-batch"
        )
    key = None
    if card.api_key_env is not None:
        key = env.get(card.api_key_env, "").strip()
        if not key:
            raise ConfigurationError(
                f"model {card.id!r} (provider {card.provider!r}) needs an API key: "
                f"set the environment variable {card.api_key_env}"
            )
    kwargs: dict[str, Any] = {
        "provider": card.provider,
        "base_url": card.resolve_base_url(env),
        "api_key": key,
        "limits": limits,
    }
    if card.api == "anthropic":
        return AnthropicBatchClient(**kwargs)
    return OpenAIBatchClient(**kwargs)
