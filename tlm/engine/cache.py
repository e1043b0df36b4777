"""The result cache: verified outputs keyed by task, version, variant, model, parameters and input.

Stored in a SQLite file (``<data_dir>/cache.db``, WAL). Keys are SHA-256 digests of the canonical
JSON of everything that determines the output, so equal inputs with different key order hit.

The cache is an optimisation: it never fails an execution. A lookup that fails (locked, damaged
or unreadable file) is a miss, a store that fails (disk full) is skipped; both are logged and
counted in :attr:`ResultCache.failures`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs

from tlm.errors import StoreError
from tlm.store.schema import escape_surrogates

__all__ = ("CachedResult", "ResultCache", "cache_key", "canonical_json")

_log = logging.getLogger("tlm.cache")
_FAILURES = (sqlite3.Error, ValueError, TypeError, UnicodeError, RecursionError)
"""What a cache lookup or store may raise: logged and counted, never passed on."""

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
    """The cache key of one execution.

    Text that is not valid Unicode (a lone surrogate) is hashed as is (``surrogatepass``), so
    such inputs get keys of their own instead of an encoding error.
    """
    material = canonical_json(
        [task_id, task_version, prompt_variant, model, dict(parameters), input]
    )
    return hashlib.sha256(material.encode("utf-8", "surrogatepass")).hexdigest()


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
        self.path = path
        self.failures = 0
        """Lookups and stores that failed (each logged); the executions went on without."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(_SCHEMA)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the result cache at {path}: {exc}") from exc

    def get(self, key: str) -> CachedResult | None:
        """The live entry for ``key``, or ``None`` (expired entries are removed; a failed
        lookup is a miss)."""
        try:
            with self._lock:
                row = self._db.execute(
                    "SELECT output, meta, stored_at, expires_at FROM results WHERE key = ?",
                    (key,),
                ).fetchone()
                if row is None:
                    return None
                output, meta, stored_at, expires_at = row
                if expires_at is not None and expires_at <= self._clock():
                    self._db.execute("DELETE FROM results WHERE key = ?", (key,))
                    return None
            return CachedResult(json.loads(output), json.loads(meta), stored_at)
        except _FAILURES as exc:
            self._failed("lookup", exc)
            return None

    def put(
        self,
        key: str,
        *,
        task_id: str,
        task_version: str,
        output: Any,
        meta: Mapping[str, Any],
        ttl_s: float | None,
    ) -> bool:
        """Store a verified output for ``ttl_s`` seconds (``None``: no expiry); ``False`` when
        it could not be stored (logged)."""
        now = self._clock()
        expires = None if ttl_s is None else now + ttl_s
        try:
            row = (
                key,
                escape_surrogates(task_id),
                escape_surrogates(task_version),
                escape_surrogates(canonical_json(output)),
                escape_surrogates(canonical_json(meta)),
                now,
                expires,
            )
            with self._lock:
                self._db.execute("INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?, ?, ?, ?)", row)
        except _FAILURES as exc:
            self._failed("store", exc)
            return False
        return True

    def _failed(self, what: str, exc: BaseException) -> None:
        self.failures += 1
        count = self.failures
        if count <= 3 or count & (count - 1) == 0:  # the first few, then ever more rarely
            _log.warning(
                "result cache %s: %s failed, going on without (%d failure(s) so far): %s",
                self.path,
                what,
                count,
                exc,
            )

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()
