"""Per-execution budgets: cost in USD, a deadline, and a number of model-call attempts.

A :class:`BudgetLedger` is checked before every model call with an estimate and charged after it
with the actual cost. The deadline is enforced by the engine as a cancel scope around the whole
execution (``anyio.fail_after``), so calls in flight are cancelled when it passes. A ledger may have
a parent (a workflow-wide budget): every charge is also charged to the parent.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable

import attrs

from tlm.definition.model import Budget
from tlm.errors import BudgetExceeded

__all__ = ("BudgetLedger", "merge_budgets")


@functools.lru_cache(maxsize=256)
def merge_budgets(*budgets: Budget | None) -> Budget:
    """The tightest of several budgets, field by field (``None`` means unlimited).

    Budgets are frozen and the same few pairs (a task's, a call's) come back on every
    execution: the result is remembered.
    """

    def tightest(values: list[float | int | None]) -> float | int | None:
        present = [v for v in values if v is not None]
        return min(present) if present else None

    given = [b for b in budgets if b is not None]
    cost = tightest([b.max_cost_usd for b in given])
    deadline = tightest([b.deadline_s for b in given])
    attempts = tightest([b.max_attempts for b in given])
    return Budget(
        max_cost_usd=None if cost is None else float(cost),
        deadline_s=None if deadline is None else float(deadline),
        max_attempts=None if attempts is None else int(attempts),
    )


@attrs.define
class BudgetLedger:
    """What an execution may still spend, and what it has spent."""

    limits: Budget
    clock: Callable[[], float] = time.monotonic
    parent: BudgetLedger | None = None
    spent_usd: float = 0.0
    reserved_usd: float = 0.0
    """Estimated cost of the calls in flight (reserved by :meth:`before_call`)."""
    attempts: int = 0
    started_at: float = attrs.field(
        default=attrs.Factory(lambda self: self.clock(), takes_self=True)
    )

    @property
    def elapsed_s(self) -> float:
        """Seconds since the ledger was opened."""
        return self.clock() - self.started_at

    def remaining_s(self) -> float:
        """Seconds left before the deadline (``inf`` without one); the parent's counts too."""
        own = math.inf
        if self.limits.deadline_s is not None:
            own = self.limits.deadline_s - self.elapsed_s
        if self.parent is not None:
            own = min(own, self.parent.remaining_s())
        return own

    def remaining_usd(self) -> float:
        """Dollars left (``inf`` without a cost limit); the parent's counts too."""
        own = math.inf
        if self.limits.max_cost_usd is not None:
            own = self.limits.max_cost_usd - self.spent_usd
        if self.parent is not None:
            own = min(own, self.parent.remaining_usd())
        return own

    def exceeded(self, message: str, partial: object = None) -> BudgetExceeded:
        """A :class:`BudgetExceeded` carrying what this ledger has spent."""
        return BudgetExceeded(
            message,
            spent_usd=self.spent_usd,
            elapsed_s=self.elapsed_s,
            attempts=self.attempts,
            partial=partial,
        )

    def before_call(self, estimated_usd: float) -> None:
        """Admit one call: count an attempt and reserve its estimate until :meth:`release`.

        Raises :class:`BudgetExceeded` when the attempts are used up, the deadline has passed, or
        the estimate does not fit beside what was spent and what the calls in flight reserved
        (here or in a parent ledger), so calls launched together cannot overrun the budget.
        """
        if not self._attempts_left():
            raise self.exceeded("attempt budget used up")
        headroom = self._headroom_usd()
        if estimated_usd > headroom:
            in_flight = self._reserved_total()
            detail = f", ${in_flight:.6f} reserved by the calls in flight" if in_flight else ""
            raise self.exceeded(
                f"the next call (estimated ${estimated_usd:.6f}) would exceed the cost budget "
                f"(${max(headroom, 0.0):.6f} left{detail})"
            )
        if self.remaining_s() <= 0:
            raise self.exceeded("deadline passed")
        ledger: BudgetLedger | None = self
        while ledger is not None:
            ledger.attempts += 1
            ledger.reserved_usd += estimated_usd
            ledger = ledger.parent

    def release(self, estimated_usd: float) -> None:
        """Release the reservation of a call that finished or failed (here and in parents)."""
        ledger: BudgetLedger | None = self
        while ledger is not None:
            ledger.reserved_usd = max(ledger.reserved_usd - estimated_usd, 0.0)
            ledger = ledger.parent

    def count_retries(self, retries: int) -> None:
        """Count attempts a provider retried inside one admitted call (here and in parents)."""
        ledger: BudgetLedger | None = self
        while ledger is not None and retries > 0:
            ledger.attempts += retries
            ledger = ledger.parent

    def headroom_usd(self) -> float:
        """Dollars a new call may reserve: the limit less what was spent and what the calls in
        flight reserved, here and in the parents (``inf`` without a cost limit)."""
        return self._headroom_usd()

    def _headroom_usd(self) -> float:
        own = math.inf
        if self.limits.max_cost_usd is not None:
            own = self.limits.max_cost_usd - self.spent_usd - self.reserved_usd
        if self.parent is not None:
            own = min(own, self.parent._headroom_usd())
        return own

    def reserved_in_flight(self) -> float:
        """Dollars reserved by the calls in flight (the largest of this ledger's and parents')."""
        return self._reserved_total()

    def _reserved_total(self) -> float:
        parent = self.parent._reserved_total() if self.parent is not None else 0.0
        return max(self.reserved_usd, parent)

    def _attempts_left(self) -> bool:
        limit = self.limits.max_attempts
        if limit is not None and self.attempts >= limit:
            return False
        return self.parent is None or self.parent._attempts_left()

    def charge(self, cost_usd: float) -> None:
        """Record the actual cost of a finished call (also on the parent)."""
        self.spent_usd += cost_usd
        if self.parent is not None:
            self.parent.charge(cost_usd)

    def check_after(self) -> None:
        """Raise :class:`BudgetExceeded` when actual spending went over the cost limit."""
        if self.remaining_usd() < 0:
            raise self.exceeded("cost budget exceeded")
