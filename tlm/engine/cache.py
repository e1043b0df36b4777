"""The result cache's key: verified outputs are keyed by task, version, variant, model,
parameters and input.

Keys are SHA-256 digests of the canonical JSON of everything that determines the output, so equal
inputs with different key order hit. The cache itself (async, SQLite or PostgreSQL, never on the
event loop) is :class:`tlm.store.cache.ResultCache`, re-exported here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from tlm.store.cache import CachedResult, ResultCache, canonical_json, open_cache

__all__ = ("CachedResult", "ResultCache", "cache_key", "canonical_json", "open_cache")


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
