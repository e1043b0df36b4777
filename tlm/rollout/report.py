"""What a replay evaluation found, per version, and whether the new version is recommended.

Agreement: the share of compared inputs whose output scores at least the task's threshold with
the trusted output — the reference where the input has one; for inputs without a reference, the
new version is compared with the current version re-run on it (and the current version is not
compared). The current version's agreement uses its recorded output of the input (or its re-run).
Pass rate: the share of executions whose verification passed. The new version is recommended
when its agreement and pass rate are each at most ``margin`` below the current's and it is
cheaper per execution or agrees more often.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from tlm.learn.stats import wilson_interval
from tlm.rollout.state import EvalItem, EvalRun

__all__ = ("VersionSummary", "Difference", "EvalReport", "summarise", "DEFAULT_MARGIN")

DEFAULT_MARGIN = 0.05


@attrs.frozen
class VersionSummary:
    """One version's figures over the run."""

    version: str
    compared: int
    agreed: int
    executions: int
    passed: int
    failed: int
    cost_usd: float
    latency_s: float

    @property
    def agreement(self) -> float | None:
        return self.agreed / self.compared if self.compared else None

    @property
    def agreement_interval(self) -> tuple[float, float]:
        """95% Wilson interval of the agreement."""
        return wilson_interval(self.agreed, self.compared)

    @property
    def pass_rate(self) -> float | None:
        return self.passed / self.executions if self.executions else None

    @property
    def mean_cost_usd(self) -> float | None:
        return self.cost_usd / self.executions if self.executions else None

    @property
    def mean_latency_s(self) -> float | None:
        return self.latency_s / self.executions if self.executions else None

    def to_dict(self) -> dict[str, Any]:
        low, high = self.agreement_interval
        return {
            "version": self.version,
            "compared": self.compared,
            "agreed": self.agreed,
            "agreement": self.agreement,
            "agreement_ci95": [low, high],
            "executions": self.executions,
            "pass_rate": self.pass_rate,
            "failed": self.failed,
            "mean_cost_usd": self.mean_cost_usd,
            "mean_latency_s": self.mean_latency_s,
        }


@attrs.frozen
class Difference:
    """An input where the new version's output does not agree."""

    position: int
    input: Any
    compared_with: str
    """``reference`` (and its kind) or ``current``."""
    similarity: float | None
    """``None`` when the new version produced no output."""
    expected: Any
    got: Any
    error: str | None


@attrs.frozen
class EvalReport:
    """A run's figures and recommendation."""

    run: EvalRun
    new: VersionSummary
    current: VersionSummary
    differences: Sequence[Difference]
    """Worst first."""
    pending: int
    recommended: bool
    reasons: Sequence[str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "run": self.run.id,
            "task_id": self.run.task_id,
            "status": self.run.status,
            "spent_usd": self.run.spent_usd,
            "pending": self.pending,
            "new": self.new.to_dict(),
            "current": self.current.to_dict(),
            "recommended": self.recommended,
            "reasons": list(self.reasons),
            "differences": [attrs.asdict(d) for d in self.differences],
        }


def _add(totals: dict[str, float], attempt: Mapping[str, Any] | None) -> None:
    if attempt is None:
        return
    totals["executions"] += 1
    totals["passed"] += attempt.get("passed") is True
    totals["failed"] += attempt.get("status") in ("failed", "error")
    totals["cost"] += float(attempt.get("cost_usd") or 0.0)
    totals["latency"] += float(attempt.get("latency_s") or 0.0)


def _summary(version: str, compared: int, agreed: int, totals: dict[str, float]) -> VersionSummary:
    return VersionSummary(
        version=version,
        compared=compared,
        agreed=agreed,
        executions=int(totals["executions"]),
        passed=int(totals["passed"]),
        failed=int(totals["failed"]),
        cost_usd=totals["cost"],
        latency_s=totals["latency"],
    )


def summarise(
    run: EvalRun,
    items: Sequence[EvalItem],
    *,
    threshold: float,
    margin: float = DEFAULT_MARGIN,
    worst: int = 20,
) -> EvalReport:
    """The run's figures (see the module docstring)."""
    new_totals = dict.fromkeys(("executions", "passed", "failed", "cost", "latency"), 0.0)
    current_totals = dict(new_totals)
    new_compared = new_agreed = current_compared = current_agreed = pending = 0
    differences: list[Difference] = []
    for item in items:
        outcome = item.outcome
        if outcome is None:
            pending += 1
            continue
        new = outcome["new"]
        _add(new_totals, new)
        _add(current_totals, outcome.get("current") or item.recorded)
        compared_with = outcome["compared_with"]
        expected = (
            item.reference
            if compared_with == "reference"
            else ((outcome.get("current") or {}).get("output"))
        )
        similarity = outcome.get("similarity_new")
        if expected is not None:
            new_compared += 1
            agrees = similarity is not None and similarity >= threshold
            new_agreed += agrees
            if not agrees:
                label = (
                    f"reference ({item.reference_kind})"
                    if compared_with == "reference"
                    else "current"
                )
                differences.append(
                    Difference(
                        position=item.position,
                        input=item.input,
                        compared_with=label,
                        similarity=similarity,
                        expected=expected,
                        got=new.get("output"),
                        error=new.get("error"),
                    )
                )
        current_similarity = outcome.get("similarity_current")
        if compared_with == "reference" and (outcome.get("current") or item.recorded):
            current_compared += 1
            current_agreed += current_similarity is not None and current_similarity >= threshold
    differences.sort(key=lambda d: (-1.0 if d.similarity is None else d.similarity, d.position))
    new = _summary(run.new_version, new_compared, new_agreed, new_totals)
    current = _summary(run.current_version, current_compared, current_agreed, current_totals)
    recommended, reasons = _recommend(new, current, margin)
    return EvalReport(
        run=run,
        new=new,
        current=current,
        differences=differences[:worst],
        pending=pending,
        recommended=recommended,
        reasons=reasons,
    )


def _recommend(
    new: VersionSummary, current: VersionSummary, margin: float
) -> tuple[bool, list[str]]:
    reasons: list[str] = []
    ok = True
    if new.agreement is None:
        return False, ["no input could be compared"]
    baseline = current.agreement if current.agreement is not None else 1.0
    if new.agreement < baseline - margin:
        ok = False
        reasons.append(
            f"agreement {new.agreement:.2f} is more than {margin:g} below the current "
            f"version's {baseline:.2f}"
        )
    if (
        new.pass_rate is not None
        and current.pass_rate is not None
        and new.pass_rate < current.pass_rate - margin
    ):
        ok = False
        reasons.append(
            f"verification pass rate {new.pass_rate:.2f} is more than {margin:g} below "
            f"{current.pass_rate:.2f}"
        )
    cheaper = (
        new.mean_cost_usd is not None
        and current.mean_cost_usd is not None
        and new.mean_cost_usd <= current.mean_cost_usd
    )
    better = new.agreement > baseline
    if ok and not (cheaper or better):
        ok = False
        reasons.append("as good but neither cheaper nor more often right")
    if ok:
        reasons.append(
            "as good within the margin and " + ("cheaper" if cheaper else "more often right")
        )
    return ok, reasons
