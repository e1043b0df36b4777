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

The cache is an optimisation: it never fails an execution and never holds one up for long. A
lookup that fails (locked, damaged or unreachable database) is a miss, a store that fails is
skipped; both are logged and counted in :attr:`ResultCache.failures`. A lookup not answered
within ``timeout_s`` (:data:`DEFAULT_TIMEOUT_S`, env ``TLM_CACHE_TIMEOUT_S``) is a miss too: a
database that stopped answering (paused, or a network that silently drops packets) would
otherwise hold it until TCP gives up. The call the cache thread is stuck in is then abandoned
(:meth:`CacheTable.interrupt`: the PostgreSQL connection is shut down and reopened after a
back-off), and until it is, further lookups miss at once instead of queueing behind it.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final, Protocol

import attrs

from tlm.errors import ConfigurationError
from tlm.store.backend import check_database_url, require_psycopg
from tlm.store.cache_reply import CallWatch, Reply, wake
from tlm.store.schema import escape_surrogates

__all__ = (
    "CACHE_FILE",
    "DEFAULT_TIMEOUT_S",
    "CacheRow",
    "Entry",
    "CacheTable",
    "CachedResult",
    "ResultCache",
    "canonical_json",
    "configured_timeout",
    "open_cache",
)

CACHE_FILE: Final = "cache.db"
DEFAULT_TIMEOUT_S: Final = 2.0
"""How long a lookup may wait for the cache before it counts as a miss (``TLM_CACHE_TIMEOUT_S``).
Lookups take about a millisecond; the bound only matters when the database stops answering."""
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

    def interrupt(self) -> None:
        """Abandon the call running now in the cache thread (it then fails); called from
        another thread, only while that call is overdue."""
        ...

    def close(self) -> None: ...


_Op = tuple[str, Any, "Reply | None"]


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
        timeout_s: How long :meth:`get` and :meth:`put` wait for the cache thread: a lookup
            not answered by then is a miss, a put is reported unwritten (see the module doc).
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
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be positive, not {timeout_s!r}")
        self._table = table
        self.timeout_s = timeout_s
        self._watch = CallWatch(timeout_s, table.interrupt)
        self._count_lock = threading.Lock()
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
        self._unwritten: list[tuple[CacheRow, Reply | None]] = []
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
        if self._watch.started and self._overdue():  # stuck: no use queueing behind it
            return None
        reply = Reply()
        if not self._submit(("get", key, reply)):
            return None
        result: CachedResult | None = await reply.wait(self.timeout_s, None, self._timed_out)
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
        is written; ``False`` when it could not be (logged) or not within ``timeout_s``."""
        row = self._row(key, task_id, task_version, output, meta, ttl_s)
        reply = Reply()
        if row is None or not self._submit(("put", row, reply)):
            return False
        stored: bool = await reply.wait(self.timeout_s, False, self._timed_out)
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
                wake(answered)
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

    def _serve(self, batch: list[_Op]) -> list[Reply]:
        answered: list[Reply] = []
        for kind, payload, reply in batch:
            if kind == "put":
                if not self._unwritten:
                    self._first_unwritten_at = time.monotonic()
                self._unwritten.append((payload, reply))
                self._unwritten_keys[payload[0]] = payload
                continue
            assert reply is not None
            if reply.abandoned:  # its caller went on without it
                continue
            row = self._unwritten_keys.get(payload)  # stored here, not yet committed
            if row is not None and (row[6] is None or row[6] > self._clock()):
                reply.value = self._result((row[3], row[4], row[5], row[6]))
            else:
                reply.value = self._lookup(payload)
            answered.append(reply)
        return answered

    def _lookup(self, key: str) -> CachedResult | None:
        try:
            found = self._watch.run(self._table.lookup, key, self._clock())
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

    def _write(self, answered: list[Reply]) -> None:
        puts, self._unwritten = self._unwritten, []
        self._unwritten_keys = {}
        if not puts:
            return
        try:
            self._watch.run(self._table.store, [row for row, _ in puts])
            stored = True
            self._remember([(row[0], (row[3], row[4], row[5], row[6])) for row, _ in puts])
        except Exception as exc:
            self._failed("store", exc)
            stored = False
        for _, reply in puts:
            if reply is not None:
                reply.value = stored
                answered.append(reply)

    def _failed(self, what: str, exc: BaseException) -> None:
        with self._count_lock:  # counted from the cache thread and from event loops
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

    # ------------------------------------------------------------------ calls past the timeout

    def _overdue(self) -> bool:
        """Whether the cache thread is stuck in a call past the timeout (then interrupted and
        counted as a failed lookup). Any thread."""
        if not self._watch.overdue():
            return False
        self._failed("lookup", TimeoutError(f"the cache is stuck for over {self.timeout_s} s"))
        return True

    def _timed_out(self) -> None:
        """A caller stopped waiting (on its event loop): count it, free a stuck thread."""
        if not self._overdue():
            self._failed("lookup", TimeoutError(f"no answer within {self.timeout_s} s"))

    # ------------------------------------------------------------------ lifecycle

    def flush(self, timeout: float | None = None) -> bool:
        """Block until every queued put is written (or tried); ``False`` on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            self._flushing += 1
            self._cond.notify_all()
            try:
                while self._ops or self._busy or self._unwritten:
                    remaining = self.timeout_s if deadline is None else deadline - time.monotonic()
                    if remaining <= 0:
                        return False
                    self._cond.wait(min(remaining, self.timeout_s))
                    self._overdue()  # a call stuck past the timeout is abandoned
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
        deadline = time.monotonic() + timeout
        while self._thread.is_alive() and (remaining := deadline - time.monotonic()) > 0:
            self._thread.join(min(remaining, self.timeout_s))
            self._overdue()  # a call stuck past the timeout is abandoned, so is what is queued
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
    timeout_s: float | None = None,
    env: Mapping[str, str] | None = None,
) -> ResultCache:
    """The result cache: a table in PostgreSQL when ``database`` is a URL (shared by every
    replica naming it), else ``<data_dir>/cache.db``. ``timeout_s`` (default
    ``TLM_CACHE_TIMEOUT_S`` of ``env``, the process environment when ``None``, else
    :data:`DEFAULT_TIMEOUT_S`) bounds each lookup (see :class:`ResultCache`).

    Raises:
        ConfigurationError: ``TLM_CACHE_TIMEOUT_S`` is not a positive number of seconds.
        StoreError: The cache cannot be opened or migrated (at open only; later failures are
            misses and skipped stores).
    """
    if timeout_s is None:
        timeout_s = configured_timeout(env)
    if check_database_url(database) is not None:
        assert database is not None
        require_psycopg()
        from tlm.store.cache_tables import PostgresCacheTable

        return ResultCache(PostgresCacheTable(database), clock=clock, timeout_s=timeout_s)
    from tlm.store.cache_tables import SqliteCacheTable

    table = SqliteCacheTable(Path(data_dir) / CACHE_FILE)
    return ResultCache(table, clock=clock, timeout_s=timeout_s)


def configured_timeout(env: Mapping[str, str] | None = None) -> float:
    """``TLM_CACHE_TIMEOUT_S`` of ``env`` (default the process environment), else
    :data:`DEFAULT_TIMEOUT_S`.

    Raises:
        ConfigurationError: The variable is set but not a positive number of seconds.
    """
    raw = (os.environ if env is None else env).get("TLM_CACHE_TIMEOUT_S", "").strip()
    if not raw:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value < float("inf"):
        raise ConfigurationError(
            f"TLM_CACHE_TIMEOUT_S must be a positive number of seconds, not {raw!r}"
        )
    return value
