"""The analysis page: ``tlm analyze``'s figures (computed by :mod:`tlm.ui.figures`), the chart
series drawn from them, the current learned rankings and the prompt suggestions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import attrs

from tlm.learn.analysis import Analysis
from tlm.learn.stats import wilson_interval
from tlm.learn.suggestions import Suggestion, suggest
from tlm.telemetry.records import format_timestamp
from tlm.ui.queries import ExecutionQueries

if TYPE_CHECKING:
    from tlm.learn.rankings_store import RankingsStore

__all__ = ("TaskAnalysis", "RankingRow", "load_analysis", "load_rankings", "chart_data")


@attrs.frozen
class RankingRow:
    """One model in a task's learned ranking."""

    model: str
    score: float | None
    quality: float
    samples: int
    latency_s: float | None
    cost_usd: float | None


@attrs.frozen
class TaskAnalysis:
    """Everything the analysis page shows for one task and period."""

    analysis: Analysis
    suggestions: tuple[Suggestion, ...]
    rankings: tuple[RankingRow, ...]
    rankings_generated: str | None
    charts: dict[str, Any]


def chart_data(analysis: Analysis) -> dict[str, Any]:
    """Series for the charts: daily pass rate with a 95% interval per model; per-group bars."""
    days = sorted({p.day for p in analysis.trend})
    models = sorted({p.model for p in analysis.trend})
    pass_rate: dict[str, dict[str, list[float | None]]] = {}
    for model in models:
        by_day = {p.day: p for p in analysis.trend if p.model == model}
        rate: list[float | None] = []
        low: list[float | None] = []
        high: list[float | None] = []
        for day in days:
            point = by_day.get(day)
            if point is None or not point.verified:
                rate.append(None)
                low.append(None)
                high.append(None)
                continue
            lo, hi = wilson_interval(point.passed, point.verified)
            rate.append(point.pass_rate)
            low.append(lo)
            high.append(hi)
        pass_rate[model] = {"rate": rate, "low": low, "high": high}
    epoch = [int(datetime.fromisoformat(day).replace(tzinfo=UTC).timestamp()) for day in days]
    groups = [
        {
            "label": f"{g.model} / {g.prompt_variant}" + (f" / v{g.task_version}"),
            "cost": g.cost_total_usd / g.executions if g.executions else 0.0,
            "p50": g.latency_p50_s,
            "p95": g.latency_p95_s,
            "executions": g.executions,
        }
        for g in analysis.groups
    ]
    return {"days": epoch, "pass_rate": pass_rate, "groups": groups}


def load_rankings(source: RankingsStore, task_id: str) -> tuple[tuple[RankingRow, ...], str | None]:
    """The task's rows of the rankings ``tlm update-rankings`` saved in ``source``, best
    first."""
    try:
        rankings = source.load()
    except Exception:  # broken rankings are reported by `tlm update-rankings`, not here
        return (), None
    if rankings is None:
        return (), None
    ranking = rankings.tasks.get(task_id)
    if ranking is None:
        return (), rankings.generated_at
    rows = tuple(
        RankingRow(
            model=model,
            score=ranking.models[model].score,
            quality=ranking.models[model].quality,
            samples=ranking.models[model].samples,
            latency_s=ranking.models[model].latency_s,
            cost_usd=ranking.models[model].cost_usd,
        )
        for model in ranking.order
    )
    return rows, rankings.generated_at


def load_analysis(
    queries: ExecutionQueries,
    rankings_source: RankingsStore,
    task_id: str,
    *,
    period: timedelta | None,
    now: datetime | None = None,
    version: str | None = None,
) -> TaskAnalysis:
    """The task's analysis over the last ``period`` (all time when ``None``), with the task's
    rankings from ``rankings_source``."""
    until = now or datetime.now(UTC).replace(second=0, microsecond=0)  # a minute's loads agree
    since = None if period is None else until - period
    since_text = None if since is None else format_timestamp(since)
    analysis = queries.analysis(task_id, since=since_text, version=version)
    rankings, generated = load_rankings(rankings_source, task_id)
    return TaskAnalysis(
        analysis=analysis,
        suggestions=tuple(suggest(analysis)),
        rankings=rankings,
        rankings_generated=generated,
        charts=chart_data(analysis),
    )
