"""What the fake batch servers (:mod:`tlm.testing.batch_servers`) share: a batch's state and
the bookkeeping both providers' batch APIs need."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import attrs

__all__ = ("FakeBatch",)

_ids = itertools.count(1)
_CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_DAY_S = 24 * 3600


@attrs.define(eq=False)
class FakeBatch:
    """One batch as the fake server keeps it."""

    id: str
    lines: list[tuple[str, dict[str, Any]]]
    """``(custom_id, request body)`` in submission order."""
    created_at: float
    input_file_id: str | None = None
    status: str = "validating"
    polls: int = 0
    cancelling: bool = False
    results: list[dict[str, Any]] = attrs.Factory(list)
    """The result lines (OpenAI: output and error lines together), once ended."""
    output_file_id: str | None = None
    error_file_id: str | None = None
    ended_at: float | None = None
    errors: list[dict[str, Any]] | None = None


class _BatchMixin:
    """Batch bookkeeping shared by both fakes."""

    polls_to_complete: int
    fail_batches: int
    batches: dict[str, FakeBatch]
    _expiring: set[str]

    def _init_batches(self, polls_to_complete: int, fail_batches: int) -> None:
        self.polls_to_complete = polls_to_complete
        self.fail_batches = fail_batches
        self.unavailable = 0
        """The next this many batch submissions get a 503 (OpenAI) or 529 (Anthropic)."""
        self.batches = {}
        self._expiring = set()

    def expire(self, custom_ids: Iterable[str]) -> None:
        """When their batch ends, these custom ids expire unprocessed (once each)."""
        self._expiring.update(custom_ids)

    def _expires(self, custom_id: str) -> bool:
        if custom_id in self._expiring:
            self._expiring.discard(custom_id)
            return True
        return False

    def _take_unavailable(self) -> bool:
        if self.unavailable > 0:
            self.unavailable -= 1
            return True
        return False

    def _take_failure(self) -> bool:
        if self.fail_batches > 0:
            self.fail_batches -= 1
            return True
        return False

    @property
    def submitted_custom_ids(self) -> list[str]:
        """Every custom id submitted, over all batches (repeats show resubmissions)."""
        return [cid for batch in self.batches.values() for cid, _ in batch.lines]


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")
