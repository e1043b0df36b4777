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
    "Entry",
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
Entry = tuple[str, str, float, float | None]
"""What a lookup finds: output JSON, meta JSON, stored at, expires at."""


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

    def lookup(self, key: str, now: float) -> Entry | None:
        """The live entry of ``key``; an expired one is removed."""
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
        batch_size, linger_s: Stores are committed together: when ``batch_size`` wait, or
            when the oldest has waited ``linger_s`` (meanwhile lookups here already see them;
            :meth:`flush` commits at once).
        memory_entries: Entries this process found or stored that are kept in memory too and
            answered at once, without the cache thread (until they expire; 0: none). Another
            replica replacing one meanwhile replaces a verified output by another verified one.
    """

    def __init__(
        self,
        table: CacheTable,
        *,
        clock: Callable[[], float] = time.time,
        max_pending: int = 10_000,
        memory_entries: int = 1024,
        batch_size: int = 256,
        linger_s: float = 0.05,
    ) -> None:
        self._table = table
        self._memory: collections.OrderedDict[str, Entry] = collections.OrderedDict()
        self._memory_size = memory_entries
        self._memory_lock = threading.Lock()
        self._clock = clock
        self._max_pending = max_pending
        self.failures = 0
        """Lookups and stores that failed (each logged); the executions went on without."""
        self._ops: collections.deque[_Op] = collections.deque()
        self._cond = threading.Condition()
        self._busy = False
        self._closed = False
        self._flushing = 0
        self._batch_size = batch_size
        self._linger_s = linger_s
        self._unwritten: list[tuple[CacheRow, _Reply | None]] = []
        self._unwritten_keys: dict[str, CacheRow] = {}
        self._first_unwritten_at = 0.0
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
        if self._closed:
            return None
        with self._memory_lock:
            entry = self._memory.get(key)
            if entry is not None:
                if entry[3] is None or entry[3] > self._clock():
                    self._memory.move_to_end(key)
                else:
                    del self._memory[key]
                    entry = None
        if entry is not None:
            return self._result(entry)
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
            # a put nobody waits for can wait for the thread's next turn, unless the thread
            # is idle (no commit pending, so no turn coming) or enough puts wait
            if op[2] is not None or not self._unwritten or len(self._ops) >= self._batch_size:
                self._cond.notify()
        return True

    # ------------------------------------------------------------------ the cache thread

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._ops and not self._closed and not self._commit_due():
                    self._cond.wait(self._linger_left())
                batch = list(self._ops)
                self._ops.clear()
                self._busy = True
                stop = self._closed and not batch
            try:
                answered = self._serve(batch)
                if stop or self._commit_due() or any(r is not None for _, r in self._unwritten):
                    self._write(answered)
                self._wake(answered)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()
            if stop and not self._unwritten:
                return

    def _commit_due(self) -> bool:
        """Whether the unwritten puts are to be committed now (many, old, or asked for)."""
        unwritten = self._unwritten
        return bool(unwritten) and (
            self._flushing > 0
            or len(unwritten) >= self._batch_size
            or time.monotonic() >= self._first_unwritten_at + self._linger_s
        )

    def _linger_left(self) -> float | None:
        if not self._unwritten:
            return None
        return max(0.0, self._first_unwritten_at + self._linger_s - time.monotonic())

    def _serve(self, batch: list[_Op]) -> list[_Reply]:
        answered: list[_Reply] = []
        for kind, payload, reply in batch:
            if kind == "put":
                if not self._unwritten:
                    self._first_unwritten_at = time.monotonic()
                self._unwritten.append((payload, reply))
                self._unwritten_keys[payload[0]] = payload
                continue
            assert reply is not None
            row = self._unwritten_keys.get(payload)  # stored here, not yet committed
            if row is not None and (row[6] is None or row[6] > self._clock()):
                reply.value = self._result((row[3], row[4], row[5], row[6]))
            else:
                reply.value = self._lookup(payload)
            answered.append(reply)
        return answered

    def _lookup(self, key: str) -> CachedResult | None:
        try:
            found = self._table.lookup(key, self._clock())
        except Exception as exc:
            self._failed("lookup", exc)
            return None
        if found is None:
            return None
        result = self._result(found)
        if result is not None:
            self._remember([(key, found)])
        return result

    def _result(self, entry: Entry) -> CachedResult | None:
        try:
            return CachedResult(json.loads(entry[0]), json.loads(entry[1]), float(entry[2]))
        except (ValueError, TypeError, RecursionError) as exc:
            self._failed("lookup", exc)
            return None

    def _remember(self, entries: list[tuple[str, Entry]]) -> None:
        if self._memory_size <= 0:
            return
        with self._memory_lock:
            for key, entry in entries:
                self._memory[key] = entry
                self._memory.move_to_end(key)
            while len(self._memory) > self._memory_size:
                self._memory.popitem(last=False)

    def _write(self, answered: list[_Reply]) -> None:
        puts, self._unwritten = self._unwritten, []
        self._unwritten_keys = {}
        if not puts:
            return
        try:
            self._table.store([row for row, _ in puts])
            stored = True
            self._remember([(row[0], (row[3], row[4], row[5], row[6])) for row, _ in puts])
        except Exception as exc:
            self._failed("store", exc)
            stored = False
        for _, reply in puts:
            if reply is not None:
                reply.value = stored
                answered.append(reply)

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
            self._flushing += 1
            self._cond.notify_all()
            try:
                while self._ops or self._busy or self._unwritten:
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        return False
                    self._cond.wait(remaining)
            finally:
                self._flushing -= 1
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
