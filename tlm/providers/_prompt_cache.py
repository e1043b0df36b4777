"""A disk cache of llama.cpp prompt states that survives a server restart.

llama-cpp-python's server reuses the longest common token prefix of the previous request, but only
within one process: every ``tlm execute`` starts fresh servers, so the first call pays for the
whole prompt (instructions and worked examples included) again. Its own disk cache would carry the
state over, but it stores a row of logits per token (600 KB each for Qwen's vocabulary, hundreds of
MB per entry). :class:`PromptStateCache` keeps what a later prompt needs: the evaluated tokens and
the model's KV state (about 12 KB per token for Qwen2.5-0.5B, 28 KB for 1.5B). A state restored
from it always re-evaluates at least the last token, so no logits are needed.

The server process loads this file by path (it imports nothing from TLM) and installs the class
in place of ``llama_cpp.LlamaDiskCache``; ``--cache true --cache_type disk`` then uses it. The
duck-typed protocol is llama-cpp-python 0.3's: ``cache[tokens]`` returns the state with the
longest common prefix (``KeyError`` if none), ``cache[tokens] = state`` stores one.

One directory per model file and context size (a state only fits the context that made it);
entries are files named by a hash of their tokens, written atomically, evicted oldest-used first
beyond ``capacity_bytes``. Several processes may share a directory: an entry that vanishes while
being read is a miss.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import mmap
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ("PromptStateCache", "CachedState", "save_state")

_TOKENS = ".tokens"
_STATE = ".state"
_META = ".json"


class CachedState:
    """A restored prompt state with the attributes ``Llama.load_state`` reads."""

    def __init__(
        self,
        tokens: np.ndarray[Any, Any],
        n_ctx: int,
        n_vocab: int,
        seed: int,
        data: bytes | mmap.mmap,
    ) -> None:
        self.n_tokens = len(tokens)
        self.input_ids = np.zeros(n_ctx, dtype=np.intc)
        self.input_ids[: self.n_tokens] = tokens
        # One row, broadcast over the rows load_state fills: a restored state is re-evaluated from
        # at least its last token before anything is sampled, so the logits are never read.
        self.scores = np.zeros((1, n_vocab), dtype=np.single)
        self.seed = seed
        self.llama_state = data
        self.llama_state_size = len(data)


class PromptStateCache:
    """Compact prompt states of one model on disk, found by longest common token prefix."""

    def __init__(self, directory: str | os.PathLike[str], capacity_bytes: int = 256 << 20) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.capacity_bytes = capacity_bytes
        stale = time.time() - 600
        for tmp in self.directory.glob(".tmp-*"):  # left by a process killed while writing
            with contextlib.suppress(OSError):
                if tmp.stat().st_mtime < stale:
                    tmp.unlink()

    @property
    def cache_size(self) -> int:
        """Bytes on disk."""
        return sum(size for _, size, _ in self._entries())

    def __getitem__(self, key: Sequence[int]) -> CachedState:
        wanted = np.asarray(key, dtype=np.intc)
        best: tuple[int, Path] | None = None
        for stem, _, _ in self._entries():
            try:
                tokens = np.fromfile(stem.with_suffix(_TOKENS), dtype=np.intc)
            except OSError:
                continue
            common = _common_prefix(tokens, wanted)
            if common > 0 and (best is None or common > best[0]):
                best = (common, stem)
        if best is None:
            raise KeyError("no cached prompt shares a prefix")
        stem = best[1]
        try:
            meta = json.loads(stem.with_suffix(_META).read_text(encoding="utf-8"))
            tokens = np.fromfile(stem.with_suffix(_TOKENS), dtype=np.intc)
            data = _map(stem.with_suffix(_STATE))
        except (OSError, ValueError):
            raise KeyError("the cached prompt state vanished") from None
        with contextlib.suppress(OSError):
            os.utime(stem.with_suffix(_TOKENS))  # most recently used
        print(
            f"prompt cache: found {best[0]} of {len(wanted)} prompt tokens in a saved state",
            file=sys.stderr,
            flush=True,
        )
        n_ctx, n_vocab, seed = int(meta["n_ctx"]), int(meta["n_vocab"]), int(meta["seed"])
        return CachedState(tokens, n_ctx, n_vocab, seed, data)

    def __contains__(self, key: Sequence[int]) -> bool:
        try:
            self[key]
        except KeyError:
            return False
        return True

    def __setitem__(self, key: Sequence[int], state: Any) -> None:
        """Store ``state`` (a ``llama_cpp.LlamaState``) under the tokens it evaluated.

        Never raises for the disk's sake: the request that produced ``state`` has its answer, and
        a cache that cannot be written (directory removed, disk full) is only a cache.
        """
        try:
            self._store(state)
        except OSError as exc:
            print(f"prompt cache: state not saved ({exc})", file=sys.stderr, flush=True)

    def _store(self, state: Any) -> None:
        n_tokens = int(state.n_tokens)
        if n_tokens <= 0:
            return
        tokens = np.ascontiguousarray(state.input_ids[:n_tokens], dtype=np.intc)
        stem = self.directory / hashlib.sha256(tokens.tobytes()).hexdigest()[:32]
        meta = {
            "n_ctx": len(state.input_ids),
            "n_vocab": int(state.scores.shape[1]),
            "seed": int(state.seed),
        }
        data = memoryview(state.llama_state)[: int(state.llama_state_size)]
        self.directory.mkdir(parents=True, exist_ok=True)  # it may have been removed meanwhile
        # The tokens file goes last: an entry is visible only once it is complete.
        _write_atomic(stem.with_suffix(_STATE), data)
        _write_atomic(stem.with_suffix(_META), json.dumps(meta).encode())
        _write_atomic(stem.with_suffix(_TOKENS), tokens.tobytes())
        self._evict()

    def _entries(self) -> list[tuple[Path, int, float]]:
        """(stem, bytes, last use) of every complete entry, oldest use first."""
        found: list[tuple[Path, int, float]] = []
        for path in self.directory.glob(f"*{_TOKENS}"):
            stem = path.with_suffix("")
            try:
                used = path.stat().st_mtime
                size = sum(stem.with_suffix(s).stat().st_size for s in (_TOKENS, _STATE, _META))
            except OSError:
                continue
            found.append((stem, size, used))
        return sorted(found, key=lambda e: e[2])

    def _evict(self) -> None:
        entries = self._entries()
        total = sum(size for _, size, _ in entries)
        for stem, size, _ in entries[:-1]:  # never the entry just written
            if total <= self.capacity_bytes:
                break
            for suffix in (_TOKENS, _META, _STATE):
                with contextlib.suppress(OSError):
                    stem.with_suffix(suffix).unlink()
            total -= size


def save_state(llama: Any) -> Any:
    """``Llama.save_state`` (llama-cpp-python 0.3) without what this cache never stores.

    The original copies the logits of up to ``n_batch`` tokens (512 rows of Qwen's 151,936-entry
    vocabulary: 311 MB of freshly mapped memory on every request) and the model's state three
    times; this copies the state twice and keeps one row of zero logits for the vocabulary size.
    The server installs it in place of ``Llama.save_state`` when it uses this cache.
    """
    import ctypes

    import llama_cpp

    size = int(llama_cpp.llama_state_get_size(llama._ctx.ctx))
    buffer = (ctypes.c_uint8 * size)()
    n_bytes = int(llama_cpp.llama_state_get_data(llama._ctx.ctx, buffer, size))
    if n_bytes > size:
        raise RuntimeError("Failed to copy llama state data")
    return llama_cpp.LlamaState(
        scores=np.zeros((1, llama.scores.shape[1]), dtype=np.single),
        input_ids=llama.input_ids.copy(),
        n_tokens=llama.n_tokens,
        llama_state=ctypes.string_at(buffer, n_bytes),
        llama_state_size=n_bytes,
        seed=llama._seed,
    )


def _map(path: Path) -> mmap.mmap:
    """The file's bytes, read only when used (a state is often found but not loaded: the server
    already holds as long a prefix); still readable if another process evicts the file."""
    with path.open("rb") as f:
        return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)


def _common_prefix(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]) -> int:
    n = min(len(a), len(b))
    differ = np.flatnonzero(a[:n] != b[:n])
    return int(differ[0]) if len(differ) else n


def _write_atomic(path: Path, data: bytes | memoryview) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
