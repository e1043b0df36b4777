"""The local-quality benchmark: its labelled set, its scoring rules and its summary."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from benchmarks.local_quality import (
    CONFIGS,
    DATA,
    load_postings,
    report,
    summarise,
    targets,
)
from benchmarks.local_quality_score import (
    Counts,
    match_lists,
    normalise,
    score_extraction,
    score_skills,
    sensible_skill,
    similarity,
)

REPO = Path(__file__).resolve().parents[2]
TASK = REPO / "definitions" / "tasks" / "job_detail_extraction" / "1.1.0.json"


def test_the_labelled_set_is_varied_and_its_references_fit_the_task_schema() -> None:
    postings = load_postings()
    assert len(postings) >= 15
    assert len({p.id for p in postings}) == len(postings)
    schema = json.loads(TASK.read_text())["output"]["schema"]
    for posting in postings:
        jsonschema.validate(posting.reference, schema)
        assert len(posting.reference_skills) >= 3, posting.id
        assert posting.candidate_skills, posting.id
        first_word = posting.reference["job_title"].split()[0].casefold()
        assert first_word in posting.job_posting.casefold(), posting.id
    lengths = sorted(len(p.job_posting) for p in postings)
    assert lengths[0] < 400  # terse
    assert lengths[-1] > 1500  # long
    kinds = " ".join(p.kind for p in postings)
    for word in ("tech", "hospitality", "healthcare", "finance", "trades", "prose", "bullet"):
        assert word in kinds
    readme = (DATA.parent / "README.md").read_text()
    assert "written for TLM" in readme


def test_a_broken_line_is_reported_with_its_line_number(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    good = DATA.read_text().splitlines()[0]
    path.write_text(good + "\n" + '{"id": "x"}\n')
    with pytest.raises(ValueError, match=r"p\.jsonl:2: not a posting record"):
        load_postings(path)


def test_strings_are_normalised_and_matched_fuzzily() -> None:
    assert normalise("  Senior  Go-Engineer, C++ / 5+ yrs ") == "senior go engineer c++ 5+ yrs"
    assert similarity("Strong SQL", "strong sql.") == 1.0
    assert similarity("Python", "Python programming") == 1.0  # containment
    assert similarity("Own the PostgreSQL data model", "Own our PostgreSQL data model") >= 0.5
    assert similarity("Kubernetes", "Good written English") == 0.0
    assert similarity("", "x") == 0.0


def test_list_items_are_matched_one_to_one() -> None:
    pairs, counts = match_lists(
        ["Strong SQL", "Strong SQL skills", "Docker"], ["Strong SQL", "Kubernetes"]
    )
    assert pairs == [(0, 0)]
    assert (counts.tp, counts.fp, counts.fn) == (1, 2, 1)


def test_extraction_counts_per_field() -> None:
    reference = {
        "job_title": "Line Cook",
        "location": "Galway",
        "responsibilities": ["Prep vegetables and sauces", "Run the grill station"],
        "requirements": ["1 year of kitchen experience", "Food safety certificate (HACCP)"],
        "contact": "091 555 0142",
    }
    predicted = {
        "job_title": "LINE COOK",
        "location": "Dublin",
        "responsibilities": ["Prep veg and sauces", "Run the grill station", "Wash dishes"],
        "requirements": ["1 yr kitchen experience; food safety cert (HACCP)"],
    }
    counts = score_extraction(predicted, reference)
    assert counts["job_title"] == Counts(1, 0, 0)
    assert counts["location"] == Counts(0, 1, 1)  # present but wrong
    assert counts["contact"] == Counts(0, 0, 1)  # missed
    assert counts["responsibilities"] == Counts(2, 1, 0)
    assert counts["requirements"].tp <= 1  # joined items: one match at best
    assert counts["requirements"].fn >= 1
    assert score_extraction("not an object", reference)["job_title"] == Counts(0, 0, 1)


def test_skills_are_scored_and_judged_sensible() -> None:
    precision, recall = score_skills(
        ["Python programming", "SQL", "Remote work", "SQL"], ["Python", "SQL", "Docker"]
    )
    assert precision == pytest.approx(2 / 3)
    assert recall == pytest.approx(2 / 3)
    assert score_skills([], ["Python"]) == (0.0, 0.0)
    requirement = "Experience with Docker and Kubernetes in production"
    assert sensible_skill("Container fundamentals (Docker)", [requirement])
    assert not sensible_skill(requirement, [requirement])
    assert not sensible_skill("Data Platform Engineer", [], "Data Platform Engineer")
    assert not sensible_skill("a b c d e f g h", [])


def _raw(passed: list[bool], useful: list[bool]) -> dict[str, object]:
    extraction = {
        "job_title": {"tp": 1, "fp": 0, "fn": 0},
        "requirements": {"tp": 3, "fp": 1, "fn": 1},
    }
    return {
        "config": {"name": "default"},
        "readme": {"passed": True, "seconds": 30.0},
        "extractions": [
            {"id": str(i), "passed": p, "seconds": 10.0 + i, "counts": extraction}
            for i, p in enumerate(passed)
        ],
        "workflows": [
            {
                "id": str(i),
                "seconds": 100.0,
                "useful": u,
                "skill_precision": 0.5,
                "skill_recall": 1.0,
                "sensible_share": 0.9,
            }
            for i, u in enumerate(useful)
        ],
    }


def test_summary_table_and_targets() -> None:
    summary = summarise(_raw([True, True, False, True], [True, False]))
    assert summary["consensus_pass_rate"] == 0.75
    assert summary["precision"] == pytest.approx(8 / 10)
    assert summary["recall"] == pytest.approx(8 / 10)
    assert summary["f1"] == pytest.approx(0.8)
    assert summary["seconds_per_job"] == 11.5
    assert summary["useful_rate"] == 0.5
    verdicts = {t.name.split(": ")[1]: t.met for t in targets(summary)}
    assert verdicts == {
        "consensus pass rate": True,
        "extraction field-level F1": True,
        "time per job": True,
        "workflow useful-output rate": False,
        "time per workflow": True,
    }
    text = report([summary], "a note")
    assert "| default | yes | 75% | 0.80 / 0.80 / 0.80 | 11.5 s | 50% of 2 |" in text


def test_every_configuration_uses_catalog_models() -> None:
    from tlm.catalog import Catalog

    catalog = Catalog.load()
    for config in CONFIGS.values():
        for model in config.models:
            assert catalog.get(model).provider == "local"
        assert config.env()["TLM_LOCAL_THREADS"] == str(config.threads)


def test_a_workflow_only_run_summarises_without_extractions() -> None:
    raw = {**_raw([], [True, True, False]), "readme": {}}
    summary = summarise(raw)
    assert summary["readme_passed"] is False
    assert summary["readme_seconds"] is None
    assert summary["postings"] == 0
    assert summary["useful_rate"] == pytest.approx(2 / 3)
    assert "| default | no |" in report([summary], "workflow only")


def test_a_configuration_can_pin_the_main_job_version() -> None:
    pinned = CONFIGS["default@1.1.0"]
    assert pinned.task_version == "1.1.0"
    assert pinned.models == CONFIGS["default"].models
    assert CONFIGS["default"].task_version is None  # the newest, as a user gets it


def test_the_benchmark_runs_tasks_without_their_deadlines(tmp_path: Path) -> None:
    from benchmarks.local_quality import REPO, definitions_without_deadlines
    from tlm.definition.registry import DefinitionRegistry

    copy = definitions_without_deadlines(REPO / "definitions", tmp_path)
    registry = DefinitionRegistry.from_directory(copy)
    original = DefinitionRegistry.from_directory(REPO / "definitions")
    task = registry.get("job_detail_extraction")
    assert original.get("job_detail_extraction").budget.deadline_s == 300
    assert task.budget.deadline_s is None
    assert task.budget.max_attempts == original.get("job_detail_extraction").budget.max_attempts
    assert task.prompts == original.get("job_detail_extraction").prompts
