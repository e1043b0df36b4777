"""The result cache: verified outputs by key, behind an async interface, never on the event loop.

:class:`ResultCache` is the same for every backend: ``await cache.get(key)`` and ``await
cache.put(...)`` hand the work to one cache thread that owns the database connection and answer
on the caller's event loop (one wake-up for every lookup finished together), so no disk or
network round trip ever runs on the loop. :meth:`ResultCache.put_nowait` stores without waiting
(the engine's form: an execution never waits for its output to be cached); puts that queue up
are written together in one transaction. The backend is a :class:`CacheTable`:
:class:`~tlm.store.cache_tables.SqliteCacheTable` (``<data_dir>/cache.db``, the default) or
:class:`~tlm.store.cache_tables.PostgresCacheTable` (one table shared by every replica naming the
database), chosen by :func:`open_cache` like the execution log.

The cache is an optimisation: it never fails an execution. A lookup that fails (locked, damaged
or unreachable database) is a miss, a store that fails is skipped; both are logged and counted
in :attr:`ResultCache.failures`.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final, Protocol

import anyio
import anyio.lowlevel
import attrs

from tlm.store.backend import check_database_url, require_psycopg
from tlm.store.schema import escape_surrogates

__all__ = (
    "CACHE_FILE",
    "CacheRow",
    "CacheTable",
    "CachedResult",
    "ResultCache",
    "canonical_json",
    "open_cache",
)

CACHE_FILE: Final = "cache.db"
_log = logging.getLogger("tlm.cache")

CacheRow = tuple[str, str, str, str, str, float, float | None]
"""key, task id, task version, output JSON, meta JSON, stored at, expires at (epoch s)."""


def canonical_json(value: Any) -> str:
    """Compact JSON with sorted keys: equal values give equal text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@attrs.frozen
class CachedResult:
    """A cached verified output and what was recorded with it."""

    output: Any
    meta: Mapping[str, Any]
    stored_at: float


class CacheTable(Protocol):
    """A backend's cache table, used from the cache thread only (blocking calls)."""

    @property
    def where(self) -> str:
        """The file or the database (password masked), for messages."""
        ...

    def lookup(self, key: str, now: float) -> tuple[str, str, float] | None:
        """``(output JSON, meta JSON, stored at)`` of the live entry; an expired one is removed."""
        ...

    def store(self, rows: Sequence[CacheRow]) -> None:
        """Insert or replace ``rows`` in one transaction."""
        ...

    def close(self) -> None: ...


class _Reply:
    """Where the cache thread leaves an answer, and how it wakes the awaiting task."""

    __slots__ = ("event", "future", "loop", "token", "value")

    def __init__(self) -> None:
        self.value: Any = None
        self.event: anyio.Event | None = None
        self.token: Any = None
        try:
            self.loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
            self.future: asyncio.Future[Any] | None = self.loop.create_future()
        except RuntimeError:  # not asyncio (trio): an anyio event set from the loop's token
            self.loop = self.future = None
            self.event = anyio.Event()
            self.token = anyio.lowlevel.current_token().native_token

    async def wait(self) -> Any:
        if self.future is not None:
            return await self.future
        assert self.event is not None
        await self.event.wait()
        return self.value


def _resolve(replies: list[_Reply]) -> None:
    for reply in replies:
        if reply.future is not None:
            if not reply.future.done():
                reply.future.set_result(reply.value)
        elif reply.event is not None:
            reply.event.set()


_Op = tuple[str, Any, "_Reply | None"]


class ResultCache:
    """Verified results by key in a :class:`CacheTable`, used from async code (see module doc).

    Args:
        table: The backend (opened; closed with the cache).
        clock: Seconds since the epoch (expiry); injectable for tests.
        max_pending: Puts that may wait for the cache thread; more are skipped (counted).
    """

    def __init__(
        self,
        table: CacheTable,
        *,
        clock: Callable[[], float] = time.time,
        max_pending: int = 10_000,
    ) -> None:
        self._table = table
        self._clock = clock
        self._max_pending = max_pending
        self.failures = 0
        """Lookups and stores that failed (each logged); the executions went on without."""
        self._ops: collections.deque[_Op] = collections.deque()
        self._cond = threading.Condition()
        self._busy = False
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="tlm-cache", daemon=True)
        self._thread.start()

    @property
    def where(self) -> str:
        """The backend's file or database (password masked)."""
        return self._table.where

    @property
    def path(self) -> Path | None:
        """The SQLite file (``None`` on PostgreSQL)."""
        path = getattr(self._table, "path", None)
        return path if isinstance(path, Path) else None

    # ------------------------------------------------------------------ the event loop

    async def get(self, key: str) -> CachedResult | None:
        """The live entry for ``key``, or ``None`` (a failed lookup is a miss)."""
        reply = _Reply()
        if not self._submit(("get", key, reply)):
            return None
        result: CachedResult | None = await reply.wait()
        return result

    async def put(
        self,
        key: str,
        *,
        task_id: str,
        task_version: str,
        output: Any,
        meta: Mapping[str, Any],
        ttl_s: float | None,
    ) -> bool:
        """Store a verified output for ``ttl_s`` seconds (``None``: no expiry) and wait until it
        is written; ``False`` when it could not be (logged)."""
        row = self._row(key, task_id, task_version, output, meta, ttl_s)
        reply = _Reply()
        if row is None or not self._submit(("put", row, reply)):
            return False
        stored: bool = await reply.wait()
        return stored

    def put_nowait(
        self,
        key: str,
        *,
        task_id: str,
        task_version: str,
        output: Any,
        meta: Mapping[str, Any],
        ttl_s: float | None,
    ) -> bool:
        """Queue a verified output for the cache thread and return at once; ``False`` when it
        will not be stored (it cannot be serialized, the cache is closed or too far behind)."""
        row = self._row(key, task_id, task_version, output, meta, ttl_s)
        if row is None:
            return False
        if len(self._ops) >= self._max_pending:
            self._failed("store", RuntimeError(f"{self._max_pending} stores already waiting"))
            return False
        return self._submit(("put", row, None))

    def _row(
        self,
        key: str,
        task_id: str,
        task_version: str,
        output: Any,
        meta: Mapping[str, Any],
        ttl_s: float | None,
    ) -> CacheRow | None:
        now = self._clock()
        try:  # serialized now: the caller may change its output once we return
            return (
                key,
                escape_surrogates(task_id),
                escape_surrogates(task_version),
                escape_surrogates(canonical_json(output)),
                escape_surrogates(canonical_json(dict(meta))),
                now,
                None if ttl_s is None else now + ttl_s,
            )
        except (ValueError, TypeError, RecursionError) as exc:
            self._failed("store", exc)
            return None

    def _submit(self, op: _Op) -> bool:
        with self._cond:
            if self._closed:
                return False
            self._ops.append(op)
            if len(self._ops) == 1:
                self._cond.notify()
        return True

    # ------------------------------------------------------------------ the cache thread

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._ops and not self._closed:
                    self._cond.wait()
                if not self._ops:
                    return
                batch = list(self._ops)
                self._ops.clear()
                self._busy = True
            try:
                self._serve(batch)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _serve(self, batch: list[_Op]) -> None:
        answered: list[_Reply] = []
        puts: list[tuple[CacheRow, _Reply | None]] = []
        for kind, payload, reply in batch:
            if kind == "put":
                puts.append((payload, reply))
                continue
            self._store(puts, answered)  # earlier puts first: a get sees them
            assert reply is not None
            reply.value = self._lookup(payload)
            answered.append(reply)
        self._store(puts, answered)
        self._wake(answered)

    def _lookup(self, key: str) -> CachedResult | None:
        try:
            found = self._table.lookup(key, self._clock())
            if found is None:
                return None
            output, meta, stored_at = found
            return CachedResult(json.loads(output), json.loads(meta), float(stored_at))
        except Exception as exc:
            self._failed("lookup", exc)
            return None

    def _store(self, puts: list[tuple[CacheRow, _Reply | None]], answered: list[_Reply]) -> None:
        if not puts:
            return
        try:
            self._table.store([row for row, _ in puts])
            stored = True
        except Exception as exc:
            self._failed("store", exc)
            stored = False
        for _, reply in puts:
            if reply is not None:
                reply.value = stored
                answered.append(reply)
        puts.clear()

    @staticmethod
    def _wake(replies: list[_Reply]) -> None:
        by_loop: dict[int, tuple[Any, list[_Reply]]] = {}
        for reply in replies:
            owner = reply.loop if reply.loop is not None else reply.token
            by_loop.setdefault(id(owner), (owner, []))[1].append(reply)
        for owner, group in by_loop.values():
            try:
                if isinstance(owner, asyncio.AbstractEventLoop):
                    owner.call_soon_threadsafe(_resolve, group)
                else:
                    owner.run_sync_soon(_resolve, group)
            except RuntimeError:  # that loop is closed: nobody is waiting any more
                _log.debug("result cache: a waiting event loop closed", exc_info=True)

    def _failed(self, what: str, exc: BaseException) -> None:
        self.failures += 1
        count = self.failures
        if count <= 3 or count & (count - 1) == 0:  # the first few, then ever more rarely
            _log.warning(
                "result cache %s: %s failed, going on without (%d failure(s) so far): %s",
                self.where,
                what,
                count,
                exc,
            )

    # ------------------------------------------------------------------ lifecycle

    def flush(self, timeout: float | None = None) -> bool:
        """Block until every queued put is written (or tried); ``False`` on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._ops or self._busy:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    def close(self, timeout: float = 30.0) -> None:
        """Write what is queued (for up to ``timeout`` s), stop the thread, close the table."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout)
        if self._thread.is_alive():
            _log.warning("result cache %s: still busy after %.0f s; closing", self.where, timeout)
        try:
            self._table.close()
        except Exception as exc:
            _log.warning("result cache %s: close failed: %s", self.where, exc)

    def __repr__(self) -> str:
        return f"ResultCache({self.where!r})"


def open_cache(
    data_dir: str | os.PathLike[str],
    database: str | None = None,
    *,
    clock: Callable[[], float] = time.time,
) -> ResultCache:
    """The result cache: a table in PostgreSQL when ``database`` is a URL (shared by every
    replica naming it), else ``<data_dir>/cache.db``.

    Raises:
        StoreError: The cache cannot be opened or migrated (at open only; later failures are
            misses and skipped stores).
    """
    if check_database_url(database) is not None:
        assert database is not None
        require_psycopg()
        from tlm.store.cache_tables import PostgresCacheTable

        return ResultCache(PostgresCacheTable(database), clock=clock)
    from tlm.store.cache_tables import SqliteCacheTable

    return ResultCache(SqliteCacheTable(Path(data_dir) / CACHE_FILE), clock=clock)
