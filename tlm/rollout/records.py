"""What the rollout state holds: rollouts, the decisions taken about them, replay-evaluation runs
and their items (stored by :class:`tlm.rollout.state.RolloutStore`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import attrs

__all__ = ("RolloutState", "Rollout", "Decision", "EvalRun", "EvalItem", "EVAL_RUN_KEY")

EVAL_RUN_KEY = "tlm.eval_run"
"""Metadata marking a replay evaluation's executions (they are not a canary's evidence)."""

RolloutState = Literal["running", "promoted", "rolled_back", "aborted", "pinned"]
"""``pinned`` is a person's choice of the live version, without a canary."""


@attrs.frozen
class Rollout:
    """A canary of ``new_version`` beside ``current_version`` for one task."""

    id: str
    task_id: str
    current_version: str
    new_version: str
    share: float
    """Fraction of inputs (by a stable hash) sent to the new version while running."""
    state: RolloutState
    policy: Mapping[str, Any]
    """The decision policy's settings (see :class:`tlm.rollout.decide.CanaryPolicy`)."""
    started_at: float
    ended_at: float | None = None

    @property
    def live_version(self) -> str:
        """The version unpinned traffic gets once this rollout has ended."""
        return self.new_version if self.state in ("promoted", "pinned") else self.current_version


@attrs.frozen
class Decision:
    """One decision about a rollout, with the evidence it was taken on."""

    rollout_id: str
    at: float
    action: str
    """``start``, ``hold``, ``promote``, ``rollback``, ``abort`` or ``pin``."""
    reason: str
    evidence: Mapping[str, Any]
    actor: str
    """``auto`` for the engine's sequential test, else who decided."""


@attrs.frozen
class EvalRun:
    """A replay evaluation of ``new_version`` against ``current_version``."""

    id: str
    task_id: str
    new_version: str
    current_version: str
    created_at: float
    status: str
    """``running``, ``stopped`` (budget reached; resumable) or ``done``."""
    settings: Mapping[str, Any]
    spent_usd: float


@attrs.frozen
class EvalItem:
    """One recorded input of a replay evaluation and what each version made of it."""

    input_hash: str
    position: int
    input: Any
    reference: Any
    reference_kind: str | None
    """``edited``, ``approved``, ``verified`` or ``None`` (no reference: current re-run)."""
    recorded: Mapping[str, Any] | None
    """The current version's newest recorded execution of this input, if any."""
    status: str
    """``pending`` or ``done``."""
    outcome: Mapping[str, Any] | None
