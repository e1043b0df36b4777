"""Answer quality of the embedded local models on labelled job postings, per configuration.

For each candidate configuration (models, prompt variant, threads, context size) it runs the real
engine on the postings of ``benchmarks/local_quality/postings.jsonl`` (written for TLM, with
reference extractions and reference elementary skills) and reports: field-level precision,
recall and F1 of ``job_detail_extraction`` against the references, the consensus pass rate (on
the postings and on the README's example), the time per job, then for the ``dsl/job_assessment.py``
workflow the useful-output rate (a non-null overall score with sensible elementary skills), the
decomposition's skill precision/recall against the reference skills, and the time per posting.
Scoring rules: :mod:`benchmarks.local_quality_score`.

Usage: ``python -m benchmarks.local_quality [--config NAME ...] [--limit N] [--workflow N]
[--json]`` (or ``python -m benchmarks --only local-quality [--quick]`` for the report).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import anyio
import attrs

from benchmarks.local_quality_score import (
    LIST_FIELDS,
    SCALAR_FIELDS,
    Counts,
    score_extraction,
    score_skills,
    sensible_skill,
    total,
)
from benchmarks.measure import ScenarioResult, Settings, Table, Target, figure

__all__ = (
    "DATA",
    "README_EXAMPLE",
    "Config",
    "CONFIGS",
    "Posting",
    "load_postings",
    "run_config",
    "summarise",
    "main",
)

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "benchmarks" / "local_quality" / "postings.jsonl"
README_EXAMPLE = REPO / "definitions" / "examples" / "job_posting_backend_engineer.json"
USEFUL_SENSIBLE_SHARE = 0.7
"""A workflow output is useful when its overall score is set and at least this share of its
elementary skills is sensible (see :func:`benchmarks.local_quality_score.sensible_skill`)."""


@attrs.frozen
class Posting:
    """One labelled posting."""

    id: str
    kind: str
    job_posting: str
    reference: dict[str, Any]
    reference_skills: tuple[str, ...]
    candidate_skills: tuple[dict[str, Any], ...]


@attrs.frozen
class Config:
    """One candidate configuration of the embedded models."""

    name: str
    models: tuple[str, ...]
    threads: int = 1
    n_ctx: int | None = None
    prompt_variant: str | None = None
    """Forced for the main job (``None``: the engine's choice, as a user gets it)."""
    task_version: str | None = None
    """The main job's version (``None``: the newest, as a user gets it)."""
    description: str = ""

    def env(self) -> dict[str, str]:
        """The engine's environment: the local provider reads its threads and context here."""
        env = dict(os.environ)
        env["TLM_LOCAL_THREADS"] = str(self.threads)
        if self.n_ctx:
            env["TLM_LOCAL_N_CTX"] = str(self.n_ctx)
        else:
            env.pop("TLM_LOCAL_N_CTX", None)
        return env


QWEN = "qwen2.5-coder-0.5b-instruct"
SMOL = "smollm2-135m-instruct"
QWEN_LARGE = "qwen2.5-coder-1.5b-instruct"

CONFIGS: dict[str, Config] = {
    c.name: c
    for c in (
        Config(
            "default",
            (QWEN, QWEN_LARGE),
            description="the shipped default: Qwen2.5-Coder 0.5B and 1.5B, worked-example "
            "prompts, 1 thread per server",
        ),
        Config(
            "default@1.1.0",
            (QWEN, QWEN_LARGE),
            task_version="1.1.0",
            description="the default pair with job_detail_extraction 1.1.0 (the previous round's "
            "worked examples: both with 3 duties and 3 requirements, one with pay)",
        ),
        Config(
            "previous-default",
            (QWEN, SMOL),
            prompt_variant="structured",
            description="the previous default: Qwen2.5-Coder 0.5B and SmolLM2-135M, the "
            "previous prompt (no worked example)",
        ),
        Config(
            "0.5b+135m",
            (QWEN, SMOL),
            description="the previous pair with the worked-example prompts",
        ),
    )
}
"""The candidate configurations, by name."""


def load_postings(path: Path = DATA) -> list[Posting]:
    """The labelled postings of ``path`` (JSON Lines).

    Raises:
        ValueError: a line is not a valid posting record (with its line number).
    """
    postings = []
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                raw = json.loads(line)
                postings.append(
                    Posting(
                        id=raw["id"],
                        kind=raw["kind"],
                        job_posting=raw["job_posting"],
                        reference=dict(raw["reference"]),
                        reference_skills=tuple(raw["reference_skills"]),
                        candidate_skills=tuple(raw["candidate_skills"]),
                    )
                )
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"{path}:{number}: not a posting record ({exc!r})") from None
    return postings


def _readme_posting() -> Posting:
    raw = json.loads(README_EXAMPLE.read_text(encoding="utf-8"))
    return Posting("readme-example", "the README's example", raw["job_posting"], {}, (), ())


async def _extract(engine: Any, config: Config, posting: Posting) -> dict[str, Any]:
    options: dict[str, Any] = {"cache": False}
    if config.prompt_variant:
        options["prompt_variant"] = config.prompt_variant
    started = time.perf_counter()
    try:
        result = await engine.execute(
            "job_detail_extraction",
            {"job_posting": posting.job_posting},
            version=config.task_version,
            options=options,
        )
    except Exception as exc:  # a failed job is a data point, not the end of the benchmark
        return {"id": posting.id, "error": repr(exc), "seconds": time.perf_counter() - started}
    verdict = result.verdict
    return {
        "id": posting.id,
        "seconds": time.perf_counter() - started,
        "status": result.status,
        "variant": result.prompt_variant,
        "passed": bool(verdict and verdict.passed),
        "confidence": verdict.confidence if verdict else None,
        "verdict": dict(verdict.details) if verdict else None,
        "output": result.output,
    }


async def _workflow(engine: Any, posting: Posting) -> dict[str, Any]:
    from dsl.job_assessment import JOB_ASSESSMENT

    data = {"job_posting": posting.job_posting, "candidate_skills": list(posting.candidate_skills)}
    started = time.perf_counter()
    try:
        result = await JOB_ASSESSMENT.run(engine, data, record=False)  # type: ignore[arg-type]
    except Exception as exc:
        return {"id": posting.id, "error": repr(exc), "seconds": time.perf_counter() - started}
    out = result.output
    skill_map = out["skill_map"]
    skills = [s for r in skill_map["requirements"] for s in r["elementary_skills"]]
    requirements = [r["requirement"] for r in skill_map["requirements"]] + list(
        skill_map["undecomposed"]
    )
    sensible = [sensible_skill(s, requirements, skill_map["job_title"]) for s in skills]
    share = sum(sensible) / len(sensible) if sensible else 0.0
    precision, recall = score_skills(skills, posting.reference_skills)
    return {
        "id": posting.id,
        "seconds": time.perf_counter() - started,
        "overall_score": out["overall_score"],
        "skills": sorted(set(skills)),
        "sensible_share": share,
        "skill_precision": precision,
        "skill_recall": recall,
        "useful": out["overall_score"] is not None and share >= USEFUL_SENSIBLE_SHARE,
    }


async def run_config(
    config: Config,
    postings: Sequence[Posting],
    *,
    workflow_postings: int,
    data_dir: Path = REPO / ".tlm",
    progress: Callable[[str], None] = lambda _: None,
    extraction: bool = True,
) -> dict[str, Any]:
    """Run ``config`` on the README example and ``postings`` (extraction), then the workflow on
    the first ``workflow_postings`` of them; the raw per-job records. ``extraction=False``
    runs the workflow only (e.g. in a second process beside an extraction run)."""
    from tlm.engine.config import EngineConfig

    with tempfile.TemporaryDirectory(prefix="tlm-local-quality-") as scratch:
        engine_config = EngineConfig(
            definitions_dir=definitions_without_deadlines(REPO / "definitions", Path(scratch)),
            data_dir=data_dir,
            models=config.models,
            store=False,
            cache=False,
            env=config.env(),
            default_deadline_s=NO_DEADLINE_S,
        )
        return await _run_engine(engine_config, config, postings, workflow_postings, progress,
                                 extraction)  # fmt: skip


async def _run_engine(
    engine_config: Any,
    config: Config,
    postings: Sequence[Posting],
    workflow_postings: int,
    progress: Callable[[str], None],
    extraction: bool,
) -> dict[str, Any]:
    from tlm import Engine

    extractions: list[dict[str, Any]] = []
    workflows: list[dict[str, Any]] = []
    readme: dict[str, Any] = {}
    async with Engine(engine_config) as engine:
        if extraction:
            readme = await _extract(engine, config, _readme_posting())
            progress(f"{config.name}: readme {readme.get('passed')} {readme['seconds']:.0f}s")
        for posting in postings if extraction else ():
            record = await _extract(engine, config, posting)
            record["counts"] = {
                k: attrs.asdict(v)
                for k, v in score_extraction(record.get("output"), posting.reference).items()
            }
            extractions.append(record)
            f1 = total(Counts(**c) for c in record["counts"].values()).f1
            progress(
                f"{config.name}: {posting.id} passed={record.get('passed')} f1={f1:.2f} "
                f"{record['seconds']:.0f}s"
            )
        for posting in list(postings)[:workflow_postings]:
            record = await _workflow(engine, posting)
            workflows.append(record)
            progress(
                f"{config.name}: workflow {posting.id} useful={record.get('useful')} "
                f"score={record.get('overall_score')} {record['seconds']:.0f}s"
            )
    return {"config": attrs.asdict(config), "readme": readme, "extractions": extractions,
            "workflows": workflows}  # fmt: skip


NO_DEADLINE_S = 7200.0
"""The engine's default deadline in this benchmark (its 300 s would apply to the copies)."""


def definitions_without_deadlines(source: Path, target: Path) -> Path:
    """A copy of the definitions in ``target/definitions`` with the tasks' deadlines removed.

    A task's deadline (300 s) turns a loaded shared machine into failures; this benchmark
    measures the answers (greedy, so load-independent) and reports the times beside them.
    """
    copy = target / "definitions"
    shutil.copytree(source, copy)
    for path in copy.glob("tasks/*/*.json"):
        doc = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(doc.get("budget"), dict) and doc["budget"].pop("deadline_s", None):
            path.write_text(json.dumps(doc, indent=2), encoding="utf-8")
    return copy


def summarise(raw: dict[str, Any]) -> dict[str, Any]:
    """The figures of one configuration's raw records."""
    extractions = raw["extractions"]
    per_field = {f: Counts() for f in (*SCALAR_FIELDS, *LIST_FIELDS)}
    for record in extractions:
        for field, counts in record["counts"].items():
            per_field[field].add(Counts(**counts))
    overall = total(per_field.values())
    workflows = raw["workflows"]
    ok_workflows = [w for w in workflows if "error" not in w]
    return {
        "config": raw["config"]["name"],
        "postings": len(extractions),
        "readme_passed": bool(raw["readme"].get("passed")),
        "readme_seconds": raw["readme"].get("seconds"),
        "consensus_pass_rate": _share(e.get("passed", False) for e in extractions),
        "precision": overall.precision,
        "recall": overall.recall,
        "f1": overall.f1,
        "field_f1": {f: c.f1 for f, c in per_field.items()},
        "seconds_per_job": _median([e["seconds"] for e in extractions]),
        "workflow_postings": len(workflows),
        "useful_rate": _share(w.get("useful", False) for w in workflows),
        "skill_precision": _mean([w["skill_precision"] for w in ok_workflows]),
        "skill_recall": _mean([w["skill_recall"] for w in ok_workflows]),
        "sensible_share": _mean([w["sensible_share"] for w in ok_workflows]),
        "seconds_per_workflow": _median([w["seconds"] for w in workflows]),
    }


def _share(values: Any) -> float | None:
    items = list(values)
    return sum(bool(v) for v in items) / len(items) if items else None


def _mean(values: Sequence[float]) -> float | None:
    return statistics.fmean(values) if values else None


def _median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def table_rows(summaries: Sequence[dict[str, Any]]) -> list[tuple[str, ...]]:
    """One Markdown row per configuration."""

    def pct(v: float | None) -> str:
        return "n/a" if v is None else f"{100 * v:.0f}%"

    def num(v: float | None, digits: int = 2) -> str:
        return "n/a" if v is None else f"{v:.{digits}f}"

    return [
        (
            s["config"],
            "yes" if s["readme_passed"] else "no",
            pct(s["consensus_pass_rate"]),
            f"{num(s['precision'])} / {num(s['recall'])} / {num(s['f1'])}",
            f"{num(s['seconds_per_job'], 1)} s",
            pct(s["useful_rate"]) + f" of {s['workflow_postings']}",
            f"{num(s['skill_precision'])} / {num(s['skill_recall'])}",
            f"{num(s['seconds_per_workflow'], 0)} s",
        )
        for s in summaries
    ]


TABLE_COLUMNS = (
    "configuration",
    "README example verified",
    "consensus pass rate",
    "extraction P / R / F1",
    "time per job (median)",
    "workflow useful",
    "skills P / R",
    "time per workflow (median)",
)


QUICK_CONFIGS = ("default", "previous-default")
QUICK_POSTINGS = 5
"""``--quick``: every fourth posting (varied kinds), the workflow on the first of them."""
FULL_WORKFLOWS = 6


def installed(config: Config) -> bool:
    """Whether every model of ``config`` has its packages installed."""
    import importlib.metadata

    from tlm.providers.local import PACKAGED_MODELS

    for model in config.models:
        for part in PACKAGED_MODELS.get(model, ()):
            try:
                importlib.metadata.distribution(part.distribution)
            except importlib.metadata.PackageNotFoundError:
                return False
    return True


def targets(summary: dict[str, Any]) -> list[Target]:
    """The issue's targets, measured on one configuration's summary."""
    pairs = [
        ("consensus pass rate", summary["consensus_pass_rate"], 0.7, ">=", "share"),
        ("extraction field-level F1", summary["f1"], 0.8, ">=", "F1"),
        ("time per job", summary["seconds_per_job"], 30.0, "<=", "s"),
        ("workflow useful-output rate", summary["useful_rate"], 0.7, ">=", "share"),
        ("time per workflow", summary["seconds_per_workflow"], 180.0, "<=", "s"),
    ]
    return [
        Target(f"{summary['config']}: {name}", figure([value], unit), limit, comparison)
        for name, value, limit, comparison, unit in pairs
        if value is not None
    ]


def report(summaries: Sequence[dict[str, Any]], note: str) -> str:
    """The Markdown table of the summaries (also written to ``benchmarks/results/``)."""
    lines = ["# Local model quality", "", note, ""]
    lines.append("| " + " | ".join(TABLE_COLUMNS) + " |")
    lines.append("|" + "---|" * len(TABLE_COLUMNS))
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(summaries)]
    lines += ["", "Field-level F1 per configuration:", ""]
    for s in summaries:
        fields = ", ".join(f"{k} {v:.2f}" for k, v in s["field_f1"].items())
        lines.append(f"- {s['config']}: {fields}")
    return "\n".join(lines) + "\n"


async def scenario(settings: Settings, step: Callable[[], None]) -> ScenarioResult:
    """The harness scenario ``local-quality`` (``--quick``: 2 configurations, 5 postings)."""
    postings = load_postings()
    if settings.quick:
        postings = postings[::4][:QUICK_POSTINGS]
        names: Sequence[str] = QUICK_CONFIGS
        workflows = 1
    else:
        names = list(CONFIGS)
        workflows = FULL_WORKFLOWS
    configs = [CONFIGS[n] for n in names if installed(CONFIGS[n])]
    skipped = [n for n in names if not installed(CONFIGS[n])]
    raws = [await run_config(c, postings, workflow_postings=workflows) for c in configs]
    step()
    summaries = [summarise(r) for r in raws]
    load = "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    note = (
        f"{len(postings)} labelled postings (+ the README example), workflow on "
        f"{workflows}; load average at the end {load} on {os.cpu_count()} cores."
        + (f" Not installed, not run: {', '.join(skipped)}." if skipped else "")
    )
    (settings.out / "local_quality.md").write_text(report(summaries, note))
    (settings.out / "local_quality.json").write_text(json.dumps(raws, indent=2, default=str))
    return ScenarioResult(
        name="local-quality",
        title="Local model quality (labelled job postings)",
        description=(__doc__ or "").split("\n\n")[0],
        tables=(Table("per configuration", TABLE_COLUMNS, tuple(table_rows(summaries))),),
        targets=tuple(t for s in summaries[:1] for t in targets(s)),
        notes=(note, *(f"{c.name}: {c.description}" for c in configs)),
    )


async def _run(args: argparse.Namespace) -> list[dict[str, Any]]:
    postings = load_postings()
    if args.only_posting:
        postings = [p for p in postings if p.id in args.only_posting]
    postings = postings[: args.limit] if args.limit else postings
    raws = []
    for name in args.config or ["default"]:
        raws.append(
            await run_config(
                CONFIGS[name],
                postings,
                workflow_postings=args.workflow,
                progress=lambda line: print(line, flush=True),
                extraction=not args.workflow_only,
            )
        )
    return raws


def main(argv: Sequence[str] | None = None) -> None:
    """Run configurations from the command line; print the table (and the raw JSON)."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--config", action="append", choices=sorted(CONFIGS))
    parser.add_argument("--limit", type=int, default=0, help="first N postings (default all)")
    parser.add_argument("--only-posting", action="append", help="a posting id (repeatable)")
    parser.add_argument("--workflow", type=int, default=0, help="workflow runs (first N postings)")
    parser.add_argument("--workflow-only", action="store_true", help="no extraction runs")
    parser.add_argument("--json", type=Path, help="write the raw records here")
    args = parser.parse_args(argv)
    raws = anyio.run(_run, args)
    if args.json:
        args.json.write_text(json.dumps(raws, indent=2, default=str))
    summaries = [summarise(r) for r in raws]
    print(" | ".join(TABLE_COLUMNS))
    for row in table_rows(summaries):
        print(" | ".join(row))
    for s in summaries:
        print(s["config"], {k: round(v, 2) for k, v in s["field_f1"].items()})


if __name__ == "__main__":
    main()
