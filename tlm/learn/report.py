"""How ``tlm analyze`` shows an analysis: rich tables, and a matplotlib figure (``plot`` extra)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING

from tlm.errors import ConfigurationError
from tlm.learn.analysis import Analysis, GroupStats

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ("print_analysis", "plot_analysis")


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _interval(group: GroupStats) -> str:
    if group.pass_rate is None or group.pass_interval is None:
        return "-"
    low, high = group.pass_interval
    return f"{100 * group.pass_rate:.1f}% [{100 * low:.0f}-{100 * high:.0f}]"


def print_analysis(analysis: Analysis, console: Console) -> None:
    """Print the groups, the trend and the failure patterns as tables."""
    from rich.table import Table

    window = f"since {analysis.since[:19]}" if analysis.since else "all time"
    version = f" version {analysis.version}" if analysis.version else ""
    console.print(
        f"[bold]{analysis.task_id}[/bold]{version}: {analysis.executions} execution(s), {window}"
    )
    if not analysis.executions:
        return
    table = Table(title="By model, prompt variant and version", title_justify="left")
    for column in (
        "model",
        "variant",
        "version",
        "runs",
        "errors",
        "pass rate [95% CI]",
        "feedback (n / mean / correct)",
        "p50 s",
        "p95 s",
        "tokens/run",
        "cost $",
        "$ / success",
        "fallback",
        "cache",
    ):
        table.add_column(column, justify="left" if column in ("model", "variant") else "right")
    for group in (*analysis.groups, analysis.overall):
        feedback = (
            f"{group.feedback_count} / {_num(group.feedback_mean_score, '.2f')} / "
            f"{_num(group.feedback_correct_pct, '.0f')}%"
            if group.feedback_count
            else "-"
        )
        table.add_row(
            "all" if group.model == "*" else group.model,
            "" if group.prompt_variant == "*" else group.prompt_variant,
            "" if group.task_version == "*" else group.task_version,
            str(group.executions),
            str(group.errors),
            _interval(group),
            feedback,
            _num(group.latency_p50_s, ".2f"),
            _num(group.latency_p95_s, ".2f"),
            f"{group.tokens_mean:.0f}",
            f"{group.cost_total_usd:.4f}",
            _num(group.cost_per_success_usd, ".5f"),
            _pct(group.fallback_rate),
            _pct(group.cache_hit_rate),
            style="bold" if group.model == "*" else None,
        )
    console.print(table)
    trend = Table(title="Day by day", title_justify="left")
    for column in ("day", "model", "runs", "verified", "pass rate", "cost $"):
        trend.add_column(column, justify="left" if column in ("day", "model") else "right")
    for point in analysis.trend:
        trend.add_row(
            point.day,
            point.model,
            str(point.executions),
            str(point.verified),
            _pct(point.pass_rate),
            f"{point.cost_usd:.4f}",
        )
    console.print(trend)
    if not analysis.failures:
        console.print("No failure patterns.")
        return
    failures = Table(title="Top failure patterns", title_justify="left")
    for column in ("kind", "pattern", "count", "share", "variants", "example"):
        failures.add_column(column, justify="right" if column in ("count", "share") else "left")
    for pattern in analysis.failures:
        example = pattern.examples[0] if pattern.examples else None
        failures.add_row(
            pattern.kind,
            pattern.key,
            str(pattern.count),
            _pct(pattern.share),
            ", ".join(f"{v}: {n}" for v, n in sorted(pattern.variants.items())),
            f"{example['execution_id'][:12]} {example['text'][:60]}" if example else "",
        )
    console.print(failures)


def plot_analysis(analysis: Analysis, path: str | Path) -> Path:
    """Draw the day-by-day pass rate per model (with run counts) and each model's pass rate with
    its 95% interval, and save the figure as a PNG.

    Raises:
        ConfigurationError: matplotlib is missing (install the ``plot`` extra).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ConfigurationError('plotting needs matplotlib: pip install "tlm[plot]"') from exc
    target = Path(path)
    figure, (trend_axis, rate_axis) = plt.subplots(
        1, 2, figsize=(13, 4.8), gridspec_kw={"width_ratios": [3, 2]}
    )
    try:
        by_model: dict[str, list[tuple[str, float, int]]] = defaultdict(list)
        days = sorted({p.day for p in analysis.trend})
        for point in analysis.trend:
            if point.pass_rate is not None:
                by_model[point.model].append((point.day, point.pass_rate, point.executions))
        index = {day: i for i, day in enumerate(days)}
        for model, points in sorted(by_model.items()):
            xs = [index[d] for d, _, _ in points]
            trend_axis.plot(xs, [100 * r for _, r, _ in points], marker="o", label=model)
        totals: dict[str, int] = defaultdict(int)
        for point in analysis.trend:
            totals[point.day] += point.executions
        runs_axis = trend_axis.twinx()
        runs_axis.bar(
            range(len(days)), [totals[d] for d in days], color="0.85", width=0.6, zorder=0
        )
        runs_axis.set_ylabel("executions per day")
        trend_axis.set_zorder(runs_axis.get_zorder() + 1)
        trend_axis.patch.set_visible(False)
        trend_axis.set_xticks(range(len(days)))
        trend_axis.set_xticklabels([d[5:] for d in days], rotation=45, ha="right")
        trend_axis.set_ylim(0, 105)
        trend_axis.set_ylabel("verification pass rate (%)")
        trend_axis.set_title(f"{analysis.task_id}: pass rate by day")
        if by_model:
            trend_axis.legend(loc="lower left", fontsize="small")
        models: dict[str, list[GroupStats]] = defaultdict(list)
        for group in analysis.groups:
            models[group.model].append(group)
        rows = []
        for model, groups in sorted(models.items()):
            from tlm.learn.stats import wilson_interval

            verified = sum(g.verified for g in groups)
            passed = sum(g.passed for g in groups)
            cost = sum(g.cost_total_usd for g in groups)
            if verified:
                low, high = wilson_interval(passed, verified)
                rows.append((model, passed / verified, low, high, verified, cost / max(passed, 1)))
        for i, (_model, rate, low, high, n, per_success) in enumerate(rows):
            rate_axis.errorbar(
                100 * rate,
                i,
                xerr=[[max(100 * (rate - low), 0.0)], [max(100 * (high - rate), 0.0)]],
                fmt="o",
                capsize=4,
                color=f"C{i % 10}",
            )
            rate_axis.annotate(
                f"n={n}, ${per_success:.4f}/success",
                (100 * rate, i),
                textcoords="offset points",
                xytext=(0, 7),
                ha="center",
                fontsize="small",
            )
        rate_axis.set_yticks(range(len(rows)))
        rate_axis.set_yticklabels([r[0] for r in rows])
        rate_axis.set_ylim(-0.7, max(len(rows) - 0.3, 0.7))
        rate_axis.set_xlim(0, 105)
        rate_axis.set_xlabel("pass rate with Wilson 95% interval (%)")
        rate_axis.set_title("per model")
        rate_axis.grid(axis="x", alpha=0.3)
        figure.tight_layout()
        target.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(target, dpi=110)
    finally:
        plt.close(figure)
    return target
