"""Who a model call goes to, as span attributes: provider, the model name sent, the server.

:func:`call_target` is computed once per provider and model (the engine caches it): the catalog
card gives the provider's own model name (``gen_ai.request.model``; the catalog id stays in
``tlm.request.model``) and the wire format; the adapter under any retry or rate-limit wrappers
gives the base URL (``server.address``/``server.port``). A provider without them (in-process fakes)
simply has fewer attributes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import attrs

from tlm.telemetry import conventions as c

if TYPE_CHECKING:
    from opentelemetry.util.types import AttributeValue

    from tlm.catalog import ModelCard

__all__ = ("CallTarget", "call_target")

_DEFAULT_PORTS = {"http": 80, "https": 443}
_UNWRAP_LIMIT = 8


@attrs.frozen
class CallTarget:
    """The fixed facts of calls to one model through one provider."""

    provider: str
    model_id: str
    """The catalog model id."""
    provider_model: str
    """The provider's own model name, as sent on the wire."""
    server_address: str | None = None
    server_port: int | None = None
    system_separate: bool = False
    """Whether the API takes the system prompt apart from the chat history (Anthropic's does)."""
    card: ModelCard | None = None
    """The catalog card, for the input/output split of the cost."""
    attributes: Mapping[str, AttributeValue] = attrs.field(factory=dict)
    """The span attributes every call to this target starts with."""


def _unwrapped(provider: Any) -> list[Any]:
    """``provider`` and the providers it wraps (``.inner``), outermost first."""
    chain = [provider]
    while len(chain) < _UNWRAP_LIMIT:
        inner = getattr(chain[-1], "inner", None)
        if inner is None:
            break
        chain.append(inner)
    return chain


def _server(base_url: str) -> tuple[str | None, int | None]:
    try:
        parts = urlsplit(base_url)
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme)
    except ValueError:
        return None, None
    return parts.hostname, port


def call_target(provider: Any, model_id: str, card: ModelCard | None = None) -> CallTarget:
    """The :class:`CallTarget` of ``model_id`` served by ``provider`` (a name or a provider).

    ``card`` defaults to the one in the catalog of the (unwrapped) provider, if it has one.
    """
    name = provider if isinstance(provider, str) else str(getattr(provider, "name", "unknown"))
    base_url: str | None = None
    for layer in [] if isinstance(provider, str) else _unwrapped(provider):
        if card is None:
            catalog = getattr(layer, "catalog", None)
            if catalog is not None and model_id in catalog:
                card = catalog.get(model_id)
        found = getattr(layer, "base_url", None)
        if base_url is None and isinstance(found, str) and found:
            base_url = found
    if base_url is None and card is not None and card.base_url:
        base_url = card.base_url
    address, port = _server(base_url) if base_url else (None, None)
    provider_model = card.provider_model if card is not None else model_id
    attributes: dict[str, AttributeValue] = {
        c.GEN_AI_PROVIDER_NAME: name,
        c.GEN_AI_REQUEST_MODEL: provider_model,
        c.TLM_REQUEST_MODEL: model_id,
    }
    if address:
        attributes[c.SERVER_ADDRESS] = address
        if port is not None:
            attributes[c.SERVER_PORT] = port
    return CallTarget(
        provider=name,
        model_id=model_id,
        provider_model=provider_model,
        server_address=address,
        server_port=port,
        system_separate=card is not None and card.api == "anthropic",
        card=card,
        attributes=attributes,
    )
