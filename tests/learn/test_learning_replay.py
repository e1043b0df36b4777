"""The learning replay on a small slice of the real RouterBench data, committed under tests/data."""

from __future__ import annotations

from pathlib import Path

from benchmarks.learning_replay import load_queries, main, run_all

SLICE = Path(__file__).resolve().parents[1] / "data" / "replay"  # provenance: its README.md
DATA = SLICE / "routerbench_train.jsonl"


def test_replay_on_a_slice(tmp_path: Path) -> None:
    queries = load_queries(DATA)
    assert len(queries) == 50
    assert {q.task for q in queries} == {"arc-challenge", "mbpp", "winogrande"}
    results = run_all(queries, seeds=1, fractions=(0.25,))
    best, _random, cheap, oracle = results["baselines"]
    assert best.name == "always gpt-4-1106-preview"
    assert oracle.quality >= best.quality
    assert oracle.cost <= best.cost
    assert cheap.quality >= 0.8 * best.quality
    for family in ("tlm", "cascade", "knn"):
        (outcome,) = results[family]
        assert 0.0 < outcome.quality <= oracle.quality + 1e-9
        assert outcome.cost < best.cost  # a quarter budget keeps it well below always-GPT-4
    assert results["cascade"][0].calls > 1.0


def test_replay_command_writes_report_and_plot(tmp_path: Path) -> None:
    out = tmp_path / "replay.md"
    args = ["--data", str(SLICE), "--limit", "40", "--seeds", "1", "--out", str(out)]
    assert main(args) == 0
    report = out.read_text()
    assert "| always gpt-4-1106-preview |" in report
    assert "TLM selection + consensus cascade" in report
    assert out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
