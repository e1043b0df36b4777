"""``python -m benchmarks [--quick] [--only NAME] [--out DIR] [--baseline REF]``.

Runs the scenarios with a progress bar and writes ``report.md``, ``results.json`` and PNG charts
(matplotlib, Agg) to ``--out`` (default ``benchmarks/results/``). Every figure is the median of
repeats with min-max; the report describes the machine and states each target as met or missed.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
import attrs
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from benchmarks.fixtures import REPO
from benchmarks.measure import Chart, ScenarioResult, Settings, machine
from benchmarks.scenarios import SCENARIOS

__all__ = ("run", "write_report", "write_charts", "main")

DEFAULT_OUT = REPO / "benchmarks" / "results"


async def run(
    settings: Settings, names: Sequence[str], console: Console | None = None
) -> list[ScenarioResult]:
    """Run the named scenarios in order, showing progress."""
    results = []
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        for name in names:
            scenario, steps = SCENARIOS[name]
            task = progress.add_task(name, total=steps(settings))

            def step(task_id: TaskID = task) -> None:
                progress.advance(task_id)

            result = await scenario(settings, step)
            progress.update(task, completed=steps(settings))
            results.append(result)
    return results


def write_charts(results: Sequence[ScenarioResult], out: Path) -> list[str]:
    """One PNG per chart; returns the file names written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for result in results:
        for chart in result.charts:
            _bar_chart(plt, chart, out / chart.file)
            written.append(chart.file)
    return written


def _bar_chart(plt: Any, chart: Chart, path: Path) -> None:
    medians = [f.median for f in chart.figures]
    low = [f.median - f.min for f in chart.figures]
    high = [f.max - f.median for f in chart.figures]
    fig, ax = plt.subplots(figsize=(max(5.0, 1.3 * len(chart.labels)), 3.6))
    ax.bar(range(len(medians)), medians, yerr=[low, high], capsize=4, color="#4a7ab5")
    ax.set_xticks(range(len(medians)))
    ax.set_xticklabels(chart.labels, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel(chart.ylabel)
    ax.set_title(f"{chart.title} (median, min-max)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def write_report(
    results: Sequence[ScenarioResult], settings: Settings, info: dict[str, Any], seconds: float
) -> str:
    """The Markdown report."""
    lines = [
        "# TLM benchmarks",
        "",
        f"Run: {time.strftime('%Y-%m-%d %H:%M:%S')}, {'quick' if settings.quick else 'full'}, "
        f"{settings.repeats} repeats, {seconds:.0f} s. Each figure: median (min-max) of repeats.",
        "",
        "## Machine",
        "",
        f"- CPU: {info['cpu']}, {info['cores']} cores ({info['usable_cores']} usable), "
        f"memory {info['memory']}, load average at start {info['load_average']}",
        f"- OS: {info['os']}; Python {info['python']} ({info['implementation']})",
        "- Packages: " + ", ".join(f"{k} {v}" for k, v in info["packages"].items()),
        "",
        "## Targets",
        "",
    ]
    rows = [
        (
            t.name,
            t.figure.text(),
            f"{t.comparison} {t.limit:g} {t.figure.unit}",
            "**met**" if t.met else "**missed**",
        )
        for r in results
        for t in r.targets
    ]
    lines += _table(("target", "figure", "limit", "verdict"), rows) if rows else ["(none run)"]
    for result in results:
        lines += ["", f"## {result.title}", ""]
        if result.skipped:
            lines += [f"Skipped: {result.skipped}."]
            continue
        if result.description:
            lines += [result.description.strip(), ""]
        for table in result.tables:
            lines += [f"**{table.title}**", "", *_table(table.columns, table.rows), ""]
        for note in result.notes:
            lines += [note, ""]
        for chart in result.charts:
            lines += [f"![{chart.title}]({chart.file})", ""]
    return "\n".join(lines).rstrip() + "\n"


def _json_default(value: Any) -> Any:
    if attrs.has(type(value)):
        return attrs.asdict(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON-able: {type(value).__name__}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the harness from the command line."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, 3 repeats")
    parser.add_argument(
        "--only", action="append", choices=sorted(SCENARIOS), help="run only this scenario"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory")
    parser.add_argument(
        "--baseline", default=None, help="a git ref whose engine overhead is measured beside"
    )
    args = parser.parse_args(argv)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    settings = Settings.create(quick=args.quick, out=out, baseline=args.baseline)
    names = [n for n in SCENARIOS if not args.only or n in args.only]
    console = Console(stderr=True)
    info = machine()
    started = time.perf_counter()
    results = anyio.run(run, settings, names, console)
    seconds = time.perf_counter() - started
    charts = write_charts(results, out)
    report = write_report(results, settings, info, seconds)
    (out / "report.md").write_text(report)
    payload = {
        "settings": settings,
        "machine": info,
        "seconds": seconds,
        "scenarios": results,
        "targets": [
            {"name": t.name, "median": t.figure.median, "limit": t.limit, "met": t.met}
            for r in results
            for t in r.targets
        ],
    }
    (out / "results.json").write_text(json.dumps(payload, indent=2, default=_json_default))
    console.print(f"wrote {out / 'report.md'}, results.json and {len(charts)} chart(s)")
    return 0
