"""The compact prompt-state cache a restarted llama.cpp server reads (``_prompt_cache``)."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from tlm.providers._prompt_cache import CachedState, PromptStateCache

N_CTX = 64
N_VOCAB = 10


def _state(tokens: list[int], payload: bytes = b"kv") -> Any:
    """What ``llama_cpp.Llama.save_state`` returns, in the attributes the cache reads."""
    input_ids = np.zeros(N_CTX, dtype=np.intc)
    input_ids[: len(tokens)] = tokens
    input_ids[len(tokens) :] = 7  # stale ids past n_tokens must not be stored
    return SimpleNamespace(
        input_ids=input_ids,
        scores=np.ones((len(tokens), N_VOCAB), dtype=np.single),
        n_tokens=len(tokens),
        llama_state=payload + b"\0" * 8,
        llama_state_size=len(payload),
        seed=42,
    )


def test_a_state_is_found_by_its_longest_common_prefix(tmp_path: Path) -> None:
    cache = PromptStateCache(tmp_path / "c")
    cache[[1, 2, 3, 4]] = _state([1, 2, 3, 4], b"four")
    cache[[1, 2, 9]] = _state([1, 2, 9], b"nine")
    found = cache[[1, 2, 3, 4, 5, 6]]
    assert isinstance(found, CachedState)
    assert bytes(found.llama_state) == b"four"
    assert found.llama_state_size == 4
    assert found.n_tokens == 4
    assert found.seed == 42
    assert found.input_ids.shape == (N_CTX,)
    assert found.input_ids[:5].tolist() == [1, 2, 3, 4, 0]
    assert bytes(cache[[1, 2, 9, 9]].llama_state) == b"nine"
    assert [1, 5] in cache
    with pytest.raises(KeyError):
        cache[[5, 6]]
    assert [5] not in cache


def test_a_restored_state_fits_what_llama_load_state_writes(tmp_path: Path) -> None:
    cache = PromptStateCache(tmp_path)
    cache[[1, 2, 3]] = _state([1, 2, 3])
    found = cache[[1, 2, 3]]
    scores = np.full((8, N_VOCAB), 5.0, dtype=np.single)  # Llama.scores: n_batch rows
    scores[: found.n_tokens, :] = found.scores.copy()  # as load_state does
    assert found.scores.size == N_VOCAB  # one row on disk, not one per token
    assert (scores[:3] == 0).all()


def test_a_new_cache_on_the_same_directory_sees_earlier_states(tmp_path: Path) -> None:
    PromptStateCache(tmp_path)[[3, 4]] = _state([3, 4], b"old")
    assert bytes(PromptStateCache(tmp_path)[[3, 4, 5]].llama_state) == b"old"


def test_oldest_used_entries_are_evicted_beyond_capacity(tmp_path: Path) -> None:
    cache = PromptStateCache(tmp_path, capacity_bytes=3500)
    for i, first in enumerate((10, 20, 30)):
        cache[[first]] = _state([first], bytes(1000))
        for path in tmp_path.glob("*.tokens"):
            if np.fromfile(path, dtype=np.intc).tolist() == [first]:
                os.utime(path, (1000 + i, 1000 + i))
    cache[[10]]  # used: becomes the newest
    cache[[40]] = _state([40], bytes(1000))
    assert cache.cache_size <= 3500
    with pytest.raises(KeyError):
        cache[[20]]
    assert cache[[10]].n_tokens == 1
    assert cache[[40]].n_tokens == 1


def test_an_entry_that_vanishes_is_a_miss_and_partial_files_are_ignored(tmp_path: Path) -> None:
    cache = PromptStateCache(tmp_path)
    cache[[1, 2]] = _state([1, 2])
    (next(tmp_path.glob("*.state"))).unlink()
    with pytest.raises(KeyError):
        cache[[1, 2]]
    (tmp_path / "orphan.state").write_bytes(b"x")  # no tokens file: not an entry
    with pytest.raises(KeyError):
        cache[[1, 2]]


def test_a_found_state_is_read_only_when_used_and_survives_its_eviction(tmp_path: Path) -> None:
    cache = PromptStateCache(tmp_path)
    cache[[1, 2, 3]] = _state([1, 2, 3], b"kv-state")
    found = cache[[1, 2, 3, 4]]
    assert found.llama_state_size == len(b"kv-state")
    for path in tmp_path.iterdir():  # another process evicts the entry before load_state reads it
        path.unlink()
    assert bytes(found.llama_state) == b"kv-state"
    with pytest.raises(KeyError):
        cache[[1, 2, 3, 4]]


def test_a_cache_whose_directory_was_removed_writes_again_and_never_raises(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    directory = tmp_path / "c"
    cache = PromptStateCache(directory)
    cache[[1]] = _state([1])
    for path in directory.iterdir():
        path.unlink()
    directory.rmdir()
    cache[[2]] = _state([2])  # recreated
    assert cache[[2]].n_tokens == 1
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    broken = PromptStateCache(tmp_path / "d")
    broken.directory = blocker / "sub"  # cannot be created
    broken[[3]] = _state([3])  # logged, not raised
    assert "prompt cache: state not saved" in capfd.readouterr().err
    with pytest.raises(KeyError):
        broken[[3]]


def test_stale_partial_writes_are_cleared_on_open(tmp_path: Path) -> None:
    old, fresh = tmp_path / ".tmp-old", tmp_path / ".tmp-fresh"
    old.write_bytes(b"x")
    fresh.write_bytes(b"y")
    os.utime(old, (1000, 1000))
    PromptStateCache(tmp_path)
    assert not old.exists()
    assert fresh.exists()  # may be another process's write in progress
