"""The result cache: verified outputs keyed by task, version, variant, model, parameters and input.

Stored in a SQLite file (``<data_dir>/cache.db``, WAL). Keys are SHA-256 digests of the canonical
JSON of everything that determines the output, so equal inputs with different key order hit.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs

from tlm.errors import StoreError

__all__ = ("CachedResult", "ResultCache", "cache_key", "canonical_json")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    key TEXT PRIMARY KEY,
    task_id TEXT NOT NULL,
    task_version TEXT NOT NULL,
    output TEXT NOT NULL,
    meta TEXT NOT NULL,
    stored_at REAL NOT NULL,
    expires_at REAL
)
"""


def canonical_json(value: Any) -> str:
    """Compact JSON with sorted keys: equal values give equal text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def cache_key(
    *,
    task_id: str,
    task_version: str,
    prompt_variant: str,
    model: str,
    parameters: Mapping[str, Any],
    input: Any,
) -> str:
    """The cache key of one execution."""
    material = canonical_json(
        [task_id, task_version, prompt_variant, model, dict(parameters), input]
    )
    return hashlib.sha256(material.encode()).hexdigest()


@attrs.frozen
class CachedResult:
    """A cached verified output and what was recorded with it."""

    output: Any
    meta: Mapping[str, Any]
    stored_at: float


class ResultCache:
    """A SQLite-backed cache of verified results. Thread-safe; calls are short and local."""

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(_SCHEMA)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the result cache at {path}: {exc}") from exc

    def get(self, key: str) -> CachedResult | None:
        """The live entry for ``key``, or ``None`` (expired entries are removed)."""
        with self._lock:
            row = self._db.execute(
                "SELECT output, meta, stored_at, expires_at FROM results WHERE key = ?", (key,)
            ).fetchone()
            if row is None:
                return None
            output, meta, stored_at, expires_at = row
            if expires_at is not None and expires_at <= self._clock():
                self._db.execute("DELETE FROM results WHERE key = ?", (key,))
                return None
        return CachedResult(json.loads(output), json.loads(meta), stored_at)

    def put(
        self,
        key: str,
        *,
        task_id: str,
        task_version: str,
        output: Any,
        meta: Mapping[str, Any],
        ttl_s: float | None,
    ) -> None:
        """Store a verified output for ``ttl_s`` seconds (``None``: no expiry)."""
        now = self._clock()
        expires = None if ttl_s is None else now + ttl_s
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    key,
                    task_id,
                    task_version,
                    canonical_json(output),
                    canonical_json(meta),
                    now,
                    expires,
                ),
            )

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()
