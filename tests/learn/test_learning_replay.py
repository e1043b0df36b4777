"""The learning replay on synthetic outcome data written by the test (no shared data needed)."""

from __future__ import annotations

import json
import random
from pathlib import Path

from benchmarks.learning_replay import load_queries, main, run_all, split

MODELS = {"big": (0.9, 0.01), "small": (0.6, 0.001), "tiny": (0.45, 0.0002)}
"""model -> (accuracy on the easy topic, cost per prompt)."""


def write_rows(path: Path, n: int = 300, seed: int = 7) -> Path:
    """Multiple-choice prompts of two topics: 'small' is right on easy ones, wrong on hard."""
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as out:
        for i in range(n):
            hard = i % 2 == 1
            truth = rng.choice("ABCD")
            quality, cost, response = {}, {}, {}
            for model, (accuracy, price) in MODELS.items():
                p = accuracy if not hard or model == "big" else accuracy / 3
                right = rng.random() < p
                letter = truth if right else rng.choice([c for c in "ABCD" if c != truth])
                quality[model] = 1.0 if right else 0.0
                cost[model] = price
                response[model] = repr([letter])
            words = "quantum entropy integral" if hard else "apple garden sunny"
            row = {
                "id": f"arc-challenge.{i}",
                "task": "arc-challenge",
                "split": "train",
                "prompt": f"Question {i} about {words}?\nA) a\nB) b\nC) c\nD) d",
                "quality": quality,
                "cost": cost,
                "response": response,
            }
            out.write(json.dumps(row) + "\n")
    return path


def test_split_is_fixed_by_the_prompt_id(tmp_path: Path) -> None:
    queries = load_queries(write_rows(tmp_path / "rows.jsonl"))
    dev, evaluation = split(queries)
    _, again_eval = split(list(reversed(queries)))
    assert {q.id for q in evaluation} == {q.id for q in again_eval}
    assert not {q.id for q in dev} & {q.id for q in evaluation}
    assert 0.1 < len(evaluation) / len(queries) < 0.3


def test_policies_learn_who_to_call_from_dev_and_are_scored_on_eval(tmp_path: Path) -> None:
    queries = load_queries(write_rows(tmp_path / "rows.jsonl"))
    results, chosen = run_all(queries, folds=3, fractions=(0.5, 1.0), reference="big")
    by = {(r.family, r.name): r for r in results}
    big = by["single", "always big"]
    small = by["single", "always small"]
    oracle = next(r for r in results if r.family == "oracle")
    assert oracle.quality >= big.quality
    half, full = (r for r in results if r.family == "select")
    # the prompt's words say when 'small' can be trusted: beat always-small, pay less than big
    assert half.quality > small.quality + 0.05
    assert half.cost < big.cost
    assert full.quality >= half.quality - 0.02
    for cascade in (r for r in results if r.family == "cascade"):
        assert cascade.budget is not None
        assert cascade.cost <= cascade.budget * 1.25  # chosen on dev, measured on eval
        assert cascade.quality >= small.quality
    assert chosen["dev"] == len(split(queries)[0])
    assert chosen["selector_prior_variance"] in (0.003, 0.01, 0.03, 0.1)


def test_command_writes_report_and_plot(tmp_path: Path) -> None:
    write_rows(tmp_path / "routerbench_train.jsonl", n=200)
    rows = [
        json.loads(line) for line in (tmp_path / "routerbench_train.jsonl").read_text().splitlines()
    ]
    for row in rows:  # the same data in the shape of the GPT-4 vs Mixtral file
        row["quality"] = {
            "gpt-4-1106-preview": row["quality"]["big"],
            "mistralai/Mixtral-8x7B-Instruct-v0.1": row["quality"]["small"],
        }
        row["cost"] = None
        row["task"] = "gsm8k"
        row["response"] = {m: f"#### {int(q)}" for m, q in row["quality"].items()}
    (tmp_path / "routellm_gsm8k.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    # rename the RouterBench file's models so GPT-4 is the reference
    bench = [
        json.loads(line) for line in (tmp_path / "routerbench_train.jsonl").read_text().splitlines()
    ]
    for row in bench:
        for key in ("quality", "cost", "response"):
            row[key]["gpt-4-1106-preview"] = row[key].pop("big")
    (tmp_path / "routerbench_train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in bench))
    out = tmp_path / "replay.md"
    assert main(["--data", str(tmp_path), "--folds", "3", "--out", str(out)]) == 0
    report = out.read_text()
    assert "| always gpt-4-1106-preview |" in report
    assert "TLM learned cascade" in report
    assert "TLM input-aware selection" in report
    assert "GSM8K" in report
    assert out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"


def test_prompts_from_elsewhere_are_scored_with_everything_learned_from_the_data(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    write_rows(data / "routerbench_train.jsonl", n=160, seed=1)
    elsewhere = write_rows(tmp_path / "unseen.jsonl", n=60, seed=2)
    queries = load_queries(data / "routerbench_train.jsonl")
    held_out = load_queries(elsewhere)
    results, chosen = run_all(
        queries, folds=3, fractions=(0.5,), reference="big", held_out=held_out
    )
    assert chosen["dev"] == 160
    assert chosen["evaluation"] == 60
    big = next(r for r in results if r.name == "always big")
    assert big.quality == sum(q.quality["big"] for q in held_out) / 60
