"""Smoke tests: the harness's smallest configuration runs and writes its report (no timings)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import consensus_latency, overhead
from benchmarks.harness import main
from benchmarks.measure import figure, percentile


def test_figure_is_median_with_min_and_max() -> None:
    fig = figure([3.0, 1.0, 2.0], "µs")
    assert (fig.median, fig.min, fig.max) == (2.0, 1.0, 3.0)
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0], 50) == 3.0
    with pytest.raises(ValueError, match="at least one"):
        figure([], "µs")


async def test_overhead_runs_every_mode() -> None:
    figures = await overhead.measure_all(5, 1)
    assert set(overhead.MODES) <= set(figures)
    assert all(len(f.samples) == 1 for f in figures.values())


async def test_consensus_policies_differ_in_calls() -> None:
    fast = dict.fromkeys(consensus_latency.LATENCIES_S, 0.0)
    figures = await consensus_latency.run_policies(1, 1, lambda: None, fast)
    assert figures["quorum 2, ask 2"]["calls"].median == 2
    assert figures["quorum 3 (no early exit)"]["calls"].median == 3


def test_harness_writes_report_json_and_charts(tmp_path: Path) -> None:
    assert main(["--quick", "--only", "telemetry", "--out", str(tmp_path)]) == 0
    report = (tmp_path / "report.md").read_text()
    assert "## Machine" in report
    assert "Telemetry cost" in report
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["scenarios"][0]["name"] == "telemetry"
    assert (tmp_path / "telemetry.png").stat().st_size > 0


def test_unknown_scenario_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--only", "nope"])
    assert "invalid choice" in capsys.readouterr().err
