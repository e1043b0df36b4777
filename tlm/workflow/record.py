"""The record of one workflow run: its outcome and, per step, status, cost and latency."""

from __future__ import annotations

from typing import Any, Literal

import attrs

__all__ = ("StepRun", "StepStatus", "WorkflowRun", "RunStatus")

StepStatus = Literal["running", "succeeded", "failed", "skipped", "defaulted", "cancelled"]
RunStatus = Literal["running", "succeeded", "failed", "cancelled"]


@attrs.frozen
class StepRun:
    """One task or function step of a run (a mapped step has one per item: ``name[i]``)."""

    path: str
    """The step's name, with the item index of every enclosing map: ``skill_decomposition[2]``."""
    kind: Literal["task", "function"]
    status: StepStatus
    started_s: float
    """Seconds from the start of the run."""
    latency_s: float
    cost_usd: float = 0.0
    task_id: str | None = None
    task_version: str | None = None
    execution_id: str | None = None
    """The task execution's id (its record is in the execution store)."""
    result_status: str | None = None
    """The execution's own status: ``verified``, ``unverified``, ``fallback``, ``cached``..."""
    error: str | None = None


@attrs.frozen
class WorkflowRun:
    """What a workflow run did; stored in ``<data_dir>/workflows.db``."""

    run_id: str
    workflow: str
    status: RunStatus
    started_at: str
    """UTC, ISO 8601."""
    latency_s: float
    cost_usd: float
    steps: tuple[StepRun, ...] = ()
    error: str | None = None
    output: Any = None

    def step(self, path: str) -> StepRun:
        """The step recorded under ``path``.

        Raises:
            KeyError: no step has that path.
        """
        for found in self.steps:
            if found.path == path:
                return found
        raise KeyError(path)

    def count(self, status: StepStatus) -> int:
        """How many steps ended with ``status``."""
        return sum(1 for s in self.steps if s.status == status)
