"""The provider pool: one provider per provider name, created on first use, closed together.

Each provider is the wire adapter its cards name (``api``), wrapped for rate limits and then
retries: ``RetryingProvider(RateLimitedProvider(adapter))``. A provider's limits are its default
(:data:`DEFAULT_LIMITS`, else :class:`ProviderLimits`), then the configured ``provider_limits``;
each model's are its card's ``limits``, then the configured ``model_limits``. The adapter's
connection pool is sized to the provider's calls in flight. The ``local`` provider is the embedded
model (:class:`tlm.providers.local.LocalProvider`, imported only when first needed).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import anyio

from tlm.catalog import Catalog, ModelCard
from tlm.errors import ConfigurationError
from tlm.providers._http import DEFAULT_MAX_RESPONSE_BYTES
from tlm.providers.anthropic import AnthropicProvider
from tlm.providers.base import Provider
from tlm.providers.limits import NO_LIMITS, LimitSettings, ProviderLimits, RateLimitedProvider
from tlm.providers.openai_compat import OpenAICompatProvider
from tlm.providers.retry import RetryingProvider, RetryPolicy

__all__ = ("ProviderPool", "LOCAL_PROVIDER", "DEFAULT_LIMITS")

LOCAL_PROVIDER = "local"
DEFAULT_LIMITS: Mapping[str, ProviderLimits] = {LOCAL_PROVIDER: ProviderLimits(max_concurrency=2)}
"""Limits used when none are given for a provider (others get ``ProviderLimits()``)."""


class ProviderPool:
    """Lazily builds and owns the providers for a catalog's models.

    ``env`` is read for base URLs and API keys (by the variable names on the cards); a missing key
    is a :class:`ConfigurationError` naming the variable, never a value. Use as an async context
    manager, or call :meth:`aclose`.
    """

    def __init__(
        self,
        catalog: Catalog,
        *,
        env: Mapping[str, str] = os.environ,
        data_dir: Path = Path(".tlm"),
        retry: RetryPolicy | None = None,
        limits: Mapping[str, ProviderLimits] | None = None,
        session: aiohttp.ClientSession | None = None,
        timeout_s: float = 120.0,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        provider_limits: Mapping[str, LimitSettings] | None = None,
        model_limits: Mapping[str, LimitSettings] | None = None,
        models: Collection[str] | None = None,
    ) -> None:
        self.catalog = catalog
        self._models = None if models is None else frozenset(models)
        self.data_dir = Path(data_dir)
        self._env = env
        self._retry = retry or RetryPolicy()
        self._limits = {**DEFAULT_LIMITS, **(limits or {})}
        self._provider_settings = dict(provider_limits or {})
        self._model_settings = dict(model_limits or {})
        self._session = session
        self._timeout_s = timeout_s
        self._max_response_bytes = max_response_bytes
        self._providers: dict[str, Provider] = {}
        self._built_from: dict[str, ModelCard] = {}
        self._ready: set[str] = set()
        """Model ids whose provider exists and serves their endpoint (the lock-free path)."""
        self._lock = anyio.Lock()
        self._closed = False

    def __repr__(self) -> str:
        return f"ProviderPool(providers={sorted(self._providers)!r})"

    async def __aenter__(self) -> ProviderPool:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    @property
    def providers(self) -> Mapping[str, Provider]:
        """The providers created so far, by name."""
        return dict(self._providers)

    async def provider_for(self, model_id: str) -> Provider:
        """The (shared) provider serving ``model_id``, created on first use.

        Raises:
            ConfigurationError: unknown model, missing environment variable, inconsistent cards,
                or the pool is closed.
        """
        card = self.catalog.get(model_id)
        provider = self._providers.get(card.provider)
        if provider is not None and not self._closed and model_id in self._ready:
            return provider  # the common case: no lock, no checkpoint
        async with self._lock:
            if self._closed:
                raise ConfigurationError("the provider pool is closed")
            provider = self._providers.get(card.provider)
            if provider is None:
                provider = self._build(card)
                self._providers[card.provider] = provider
                self._built_from[card.provider] = card
            elif card.provider != LOCAL_PROVIDER:
                _check_same_endpoint(card, self._built_from[card.provider])
            self._ready.add(model_id)
            return provider

    def limits_for(self, provider: str) -> tuple[ProviderLimits, dict[str, ProviderLimits]]:
        """The limits of ``provider`` and of each of its models (by id), as configured."""
        limits = self._limits.get(provider, ProviderLimits())
        limits = limits.updated(self._provider_settings.get(provider))
        models = {
            card.id: NO_LIMITS.updated(card.limits).updated(self._model_settings.get(card.id))
            for card in self.catalog.for_provider(provider)
        }
        return limits, models

    def _build(self, card: ModelCard) -> Provider:
        limits, model_limits = self.limits_for(card.provider)
        adapter = self._adapter(card, connector_limit=limits.max_concurrency or 0)
        limited = RateLimitedProvider.from_limits(adapter, limits, model_limits=model_limits)
        return RetryingProvider(limited, self._retry)

    def _adapter(self, card: ModelCard, *, connector_limit: int) -> Provider:
        if card.provider == LOCAL_PROVIDER:
            local = importlib.import_module("tlm.providers.local")
            built: Provider = local.LocalProvider(
                catalog=self.catalog, data_dir=self.data_dir / "models", env=self._env
            )
            return built
        self._check_consistent(card)
        kwargs: dict[str, Any] = {
            "name": card.provider,
            "base_url": card.resolve_base_url(self._env),
            "catalog": self.catalog,
            "api_key": self._api_key(card),
            "session": self._session,
            "timeout_s": self._timeout_s,
            "max_response_bytes": self._max_response_bytes,
            "connector_limit": connector_limit,  # 0: as many connections as calls in flight
        }
        if card.api == "anthropic":
            return AnthropicProvider(**kwargs)
        return OpenAICompatProvider(**kwargs)

    def _api_key(self, card: ModelCard) -> str | None:
        if card.api_key_env is None:
            return None
        key = self._env.get(card.api_key_env, "").strip()
        if not key:
            raise ConfigurationError(
                f"model {card.id!r} (provider {card.provider!r}) needs an API key: "
                f"set the environment variable {card.api_key_env}"
            )
        return key

    def _check_consistent(self, card: ModelCard) -> None:
        """The models this pool may serve (all, or the configured ones) agree on the endpoint
        of ``card``'s provider: one provider object serves them all."""
        for other in self.catalog.for_provider(card.provider):
            if self._models is None or other.id in self._models:
                _check_same_endpoint(card, other)

    async def aclose(self) -> None:
        """Close every provider (each is closed even if another fails or we are cancelled)."""
        async with self._lock:
            self._closed = True
            providers, self._providers = list(self._providers.values()), {}
        errors: list[Exception] = []
        with anyio.CancelScope(shield=True):
            for provider in providers:
                try:
                    await provider.aclose()
                except Exception as exc:  # close the rest, then report
                    errors.append(exc)
        if errors:
            raise ExceptionGroup("closing providers failed", errors)


def _check_same_endpoint(card: ModelCard, other: ModelCard) -> None:
    same = (other.api, other.base_url, other.base_url_env, other.api_key_env) == (
        card.api,
        card.base_url,
        card.base_url_env,
        card.api_key_env,
    )
    if not same:
        raise ConfigurationError(
            f"models {card.id!r} and {other.id!r} share provider {card.provider!r} but "
            "differ in api, base URL or API key variable; give them distinct providers"
        )
