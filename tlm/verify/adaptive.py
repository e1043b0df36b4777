"""Verification under the cold-start/risk policy: skip a reliable model's checks, verify
conservatively while a task is new.

:class:`PolicyVerifier` is what an engine with ``adaptive_verification`` compiles into a task: the
definition's verifier under a :class:`tlm.learn.coldstart.VerificationPolicy` (which decides from
the task's history), decided per execution. :class:`AdaptiveVerifier` is the skipping part alone.
A skipped verification is a passed verdict with ``details["skipped"] = True``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import attrs

from tlm.verify.base import Verdict, VerificationContext, Verifier

if TYPE_CHECKING:
    from tlm.learn.coldstart import TaskHistory, VerificationPolicy

__all__ = ("AdaptiveVerifier", "PolicyVerifier")


@attrs.define
class AdaptiveVerifier:
    """Wraps a verifier: skips it where :meth:`VerificationPolicy.decide` says the model is
    reliable (returning a passed verdict marked ``skipped``), runs it otherwise.

    ``history`` is called per execution with the task id, so it can follow a live store.
    """

    inner: Verifier
    policy: VerificationPolicy
    history: Callable[[str], TaskHistory]

    @property
    def method(self) -> str:
        """The wrapped verifier's method."""
        return self.inner.method

    async def verify(self, context: VerificationContext, /) -> Verdict:
        """Skip (audit sample aside) or delegate."""
        decision = self.policy.decide(
            context.task, context.primary.model, self.history(context.task.id)
        )
        if decision.verify:
            verdict = await self.inner.verify(context)
            if decision.audit:
                verdict = attrs.evolve(verdict, details={**verdict.details, "audit": True})
            return verdict
        return Verdict(
            passed=True,
            confidence=decision.lower_bound or 0.0,
            method=self.inner.method,
            details={"skipped": True, "reason": decision.reason, "decisive": True},
        )


@attrs.define
class PolicyVerifier:
    """The definition's verifier under a :class:`VerificationPolicy`, decided per execution.

    While the task has fewer than ``policy.min_samples`` decided executions, ``cold_start`` (the
    conservative override, when there is one) verifies instead, marked ``details["cold_start"]``;
    afterwards the definition's verifier runs through :class:`AdaptiveVerifier` (skipped for a
    reliable model, audit sample aside).
    """

    inner: Verifier
    cold_start: Verifier | None
    policy: VerificationPolicy
    history: Callable[[str], Awaitable[TaskHistory]]
    """The task's history by task id (awaited: it may read the store in a worker thread)."""

    @property
    def method(self) -> str:
        """The definition's method."""
        return self.inner.method

    async def verify(self, context: VerificationContext, /) -> Verdict:
        """Cold-start verification, or the adaptive decision around the definition's verifier."""
        history = await self.history(context.task.id)
        if self.cold_start is not None and history.samples < self.policy.min_samples:
            verdict = await self.cold_start.verify(context)
            return attrs.evolve(verdict, details={**verdict.details, "cold_start": True})
        adaptive = AdaptiveVerifier(self.inner, self.policy, lambda _task_id: history)
        return await adaptive.verify(context)
