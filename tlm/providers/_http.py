"""The HTTP transport shared by the adapters: one pooled aiohttp session, owned or borrowed.

Replies are read in chunks up to a size limit (:data:`DEFAULT_MAX_RESPONSE_BYTES`, 16 MiB, set by
``max_response_bytes`` in ``tlm.toml``): a reply announcing or reaching more is abandoned there
with :class:`tlm.errors.ResponseTooLarge`, so one misbehaving server cannot exhaust memory. The
largest legitimate chat reply (a card's 16k-32k output tokens, JSON-escaped, with logprobs) is
well under 16 MiB, and a few hundred calls in flight at the limit still fit in memory.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Self

import aiohttp

import tlm.json_codec as json_codec
from tlm.errors import ConfigurationError, MalformedResponse, ProviderError, ResponseTooLarge
from tlm.providers.errors import error_from_exception, error_from_status

if TYPE_CHECKING:
    from tlm.catalog import Catalog

__all__ = ("HttpAdapter", "JsonTransport", "DEFAULT_MAX_RESPONSE_BYTES")

DEFAULT_MAX_RESPONSE_BYTES = 16 * 1024 * 1024
"""The largest reply read (bytes) unless configured otherwise."""
_CHUNK = 64 * 1024


class JsonTransport:
    """POSTs JSON and returns parsed JSON, mapping every failure to a ``ProviderError``.

    Owns an aiohttp session (created lazily, ``connector_limit`` pooled connections) unless one is
    borrowed; a borrowed session is never closed here. After :meth:`aclose` every call is refused.
    """

    def __init__(
        self,
        *,
        provider: str,
        session: aiohttp.ClientSession | None,
        timeout_s: float,
        connector_limit: int,
        headers: Mapping[str, str],
        secrets: Iterable[str | None],
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        if max_response_bytes < 1:
            raise ConfigurationError("max_response_bytes must be at least 1")
        self._max_response_bytes = max_response_bytes
        self._provider = provider
        self._session = session
        self._owns_session = session is None
        self._timeout_s = timeout_s
        self._connector_limit = connector_limit
        self._headers = dict(headers)
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        # the body goes pre-encoded (orjson): say what it is, unless the caller did
        if not any(k.lower() == "content-type" for k in self._headers):
            self._headers["Content-Type"] = "application/json"
        self._secrets = tuple(s for s in secrets if s)
        self._closed = False

    @property
    def closed(self) -> bool:
        """Whether :meth:`aclose` was called."""
        return self._closed

    def _get_session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise ConfigurationError(f"provider {self._provider!r} is closed")
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._connector_limit)
            )
        return self._session

    async def post(
        self,
        url: str,
        body: Mapping[str, Any],
        *,
        model: str,
        timeout_s: float | None = None,
    ) -> tuple[dict[str, Any], float]:
        """POST ``body`` to ``url``; return the JSON object reply and the latency in seconds."""
        session = self._get_session()
        timeout = aiohttp.ClientTimeout(total=timeout_s) if timeout_s else self._timeout
        where: dict[str, Any] = {
            "provider": self._provider,
            "model": model,
            "secrets": self._secrets,
        }
        started = time.perf_counter()
        status: int | None = None
        try:
            data = json_codec.dumps_bytes(body)
            async with session.post(
                url, data=data, headers=self._headers, timeout=timeout
            ) as response:
                status = response.status
                raw = await self._read(response, model)
                headers = response.headers  # copied only for an error (below)
        except ProviderError:
            raise
        except Exception as exc:  # every transport failure becomes a ProviderError
            raise error_from_exception(exc, status=status, **where) from None
        latency = time.perf_counter() - started
        if status >= 400:
            raise error_from_status(status, raw, dict(headers), **where)
        try:
            reply = json_codec.loads(raw)
        except RecursionError:
            raise MalformedResponse(
                "reply JSON is nested too deeply to read", status=status, **_who(where)
            ) from None
        except ValueError as exc:
            raise error_from_exception(exc, status=status, **where) from None
        if not isinstance(reply, dict):
            raise MalformedResponse(
                f"expected a JSON object, got {type(reply).__name__}",
                provider=self._provider,
                model=model,
                status=status,
            )
        return reply, latency

    async def _read(self, response: aiohttp.ClientResponse, model: str) -> bytes:
        """The body, read in chunks; past the size limit the connection is dropped."""
        limit = self._max_response_bytes
        announced = response.content_length
        if announced is not None and announced > limit:
            response.close()
            raise self._too_large(model, response.status, f"announces {announced:,} bytes")
        if announced is not None:  # within the limit: one read, no chunk loop
            return await response.read()
        body = bytearray()
        async for chunk in response.content.iter_chunked(_CHUNK):
            body += chunk
            if len(body) > limit:
                response.close()
                raise self._too_large(model, response.status, f"passed {len(body):,} bytes")
        return bytes(body)

    def _too_large(self, model: str, status: int, what: str) -> ResponseTooLarge:
        limit = self._max_response_bytes
        return ResponseTooLarge(
            f"the reply {what}, over the response-size limit of {_size(limit)} "
            "(max_response_bytes in tlm.toml); reading stopped",
            provider=self._provider,
            model=model,
            status=status,
            limit_bytes=limit,
        )

    async def aclose(self) -> None:
        """Close the owned session (always marks this transport closed)."""
        self._closed = True
        session, self._session = self._session, None
        if session is not None and self._owns_session:
            await session.close()


def _who(where: Mapping[str, Any]) -> dict[str, str]:
    return {"provider": where["provider"], "model": where["model"]}


def _size(count: int) -> str:
    """``16 MiB``, ``512 KiB`` or ``1,000 bytes``."""
    for unit, scale in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if count >= scale and count % scale == 0:
            return f"{count // scale} {unit}"
    return f"{count:,} bytes"


class HttpAdapter:
    """What every HTTP wire-format adapter shares: identity, a pooled transport, its lifecycle."""

    def __init__(
        self,
        *,
        name: str,
        base_url: str,
        catalog: Catalog,
        headers: Mapping[str, str],
        api_key: str | None,
        session: aiohttp.ClientSession | None,
        timeout_s: float,
        connector_limit: int,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.catalog = catalog
        self._secrets = (api_key,)
        self._transport = JsonTransport(
            provider=name,
            session=session,
            timeout_s=timeout_s,
            connector_limit=connector_limit,
            headers=headers,
            secrets=self._secrets,
            max_response_bytes=max_response_bytes,
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, base_url={self.base_url!r})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the pooled session if this provider owns it; later calls are refused."""
        await self._transport.aclose()
