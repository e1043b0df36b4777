"""Cheap, offline features of an execution's input: hashed word n-grams (the hashing trick).

Nothing is fitted: a word or word pair is mapped to one of ``dims`` slots by a stable hash
(CRC-32, the same in every process and on every machine), with a sign from another bit of the hash
so that collisions cancel rather than add up; counts are sub-linear (``log1p``) and the vector is
scaled to unit length. Slot 0 is a constant bias; slot 1 carries the text's log length. A
:class:`FeatureVector` is sparse (indices and values), which keeps learners that update one weight
per present feature fast.
"""

from __future__ import annotations

import json
import math
import re
import zlib
from collections import Counter
from collections.abc import Mapping
from typing import Any

import attrs
import numpy as np

__all__ = ("FeatureVector", "HashedFeatures", "input_text", "BIAS", "LENGTH")

BIAS = 0
"""The slot of the constant feature."""
LENGTH = 1
"""The slot of the text's (scaled) log length."""
_RESERVED = 2
_WORD = re.compile(r"[a-z0-9]+|[^\sa-z0-9]")


@attrs.frozen
class FeatureVector:
    """A sparse feature vector: sorted unique ``indices`` and their ``values``."""

    indices: np.ndarray = attrs.field(eq=False)
    values: np.ndarray = attrs.field(eq=False)
    dims: int

    def dense(self) -> np.ndarray:
        """The vector as a dense float64 array of length ``dims``."""
        out = np.zeros(self.dims)
        out[self.indices] = self.values
        return out


def input_text(value: Any) -> str:
    """The text of an execution input: strings as they are, anything else as sorted JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping) and all(isinstance(v, str) for v in value.values()):
        return "\n".join(str(value[k]) for k in sorted(value))
    try:
        return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(value)


@attrs.frozen
class HashedFeatures:
    """Hashed word n-gram features of a text (see the module docstring).

    Args:
        dims: Slots, two of them reserved (bias and length); a power of two is customary.
        ngrams: The longest word n-gram hashed (1: words only; 2: words and pairs).
        max_chars: Only the first and last ``max_chars // 2`` characters of longer texts are read
            (the start and the end of a prompt carry the task and the question).
    """

    dims: int = 1 << 12
    ngrams: int = 2
    max_chars: int = 20_000

    def __attrs_post_init__(self) -> None:
        if self.dims < 16:
            raise ValueError("dims must be at least 16")
        if self.ngrams < 1:
            raise ValueError("ngrams must be at least 1")

    def __call__(self, text: str) -> FeatureVector:
        """The feature vector of ``text``."""
        if len(text) > self.max_chars:
            half = self.max_chars // 2
            text = text[:half] + "\n" + text[-half:]
        words = _WORD.findall(text.lower())
        grams: Counter[str] = Counter(words)
        for n in range(2, self.ngrams + 1):
            grams.update(" ".join(words[i : i + n]) for i in range(len(words) - n + 1))
        slots: dict[int, float] = {}
        span = self.dims - _RESERVED
        for gram, count in grams.items():
            digest = zlib.crc32(gram.encode("utf-8"))
            slot = _RESERVED + digest % span
            sign = 1.0 if (digest >> 31) & 1 == 0 else -1.0
            slots[slot] = slots.get(slot, 0.0) + sign * math.log1p(count)
        norm = math.sqrt(sum(v * v for v in slots.values())) or 1.0
        slots = {k: v / norm for k, v in slots.items() if v != 0.0}
        slots[BIAS] = 1.0
        slots[LENGTH] = math.log1p(len(text)) / 10.0
        indices = np.fromiter(sorted(slots), dtype=np.int64, count=len(slots))
        values = np.fromiter((slots[int(i)] for i in indices), dtype=np.float64, count=len(slots))
        return FeatureVector(indices, values, self.dims)
