"""The result cache's key: verified outputs are keyed by task, version, variant, model,
parameters and input.

Keys are SHA-256 digests of the canonical JSON of everything that determines the output, so equal
inputs with different key order hit. The cache itself (async, SQLite or PostgreSQL, never on the
event loop) is :class:`tlm.store.cache.ResultCache`, re-exported here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tlm.store.cache import CachedResult, ResultCache, canonical_json, open_cache

if TYPE_CHECKING:
    from tlm.engine.runtime import Runtime

__all__ = (
    "CachedResult",
    "ResultCache",
    "cache_key",
    "canonical_json",
    "close_cache",
    "flush_cache",
    "open_cache",
)


def cache_key(
    *,
    task_id: str,
    task_version: str,
    prompt_variant: str,
    model: str,
    parameters: Mapping[str, Any],
    input: Any,
) -> str:
    """The cache key of one execution.

    Text that is not valid Unicode (a lone surrogate) is hashed as is (``surrogatepass``), so
    such inputs get keys of their own instead of an encoding error.
    """
    material = canonical_json(
        [task_id, task_version, prompt_variant, model, dict(parameters), input]
    )
    return hashlib.sha256(material.encode("utf-8", "surrogatepass")).hexdigest()


def flush_cache(runtime: Runtime | None) -> None:
    """Block until the stores the engine queued in its cache are written."""
    if runtime is not None and runtime.cache is not None:
        runtime.cache.flush()


def close_cache(runtime: Runtime | None) -> None:
    """Write what is queued and close the engine's cache (if it has one)."""
    if runtime is not None and runtime.cache is not None:
        runtime.cache.close()
