"""Structured similarity: canonicalised, field by field, lists as fuzzy sets."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tlm.similarity import SequenceSimilarity, StructuredSimilarity


def job(**overrides: Any) -> dict[str, Any]:
    value: dict[str, Any] = {
        "title": "Senior Python Developer",
        "company": "Acme Corp",
        "location": {"city": "Berlin", "country": "Germany", "remote": True},
        "salary": {"min": 70000, "max": 90000, "currency": "EUR"},
        "skills": ["Python", "Django", "PostgreSQL", "Docker", "Kubernetes", "AWS", "Git"],
        "requirements": [
            "5+ years of Python experience",
            "Experience with cloud platforms",
            "Strong communication skills",
        ],
        "employment_type": "full-time",
    }
    value.update(overrides)
    return value


def test_formatting_differences_do_not_count() -> None:
    a = job()
    b = {
        **dict(reversed(list(job().items()))),
        "title": "  senior python DEVELOPER",
        "salary": {"currency": "eur", "max": 90000.0, "min": "70000"},
        "skills": ["git", "aws", "kubernetes", "docker", "postgresql", "django", "python"],
    }
    assert StructuredSimilarity().score(a, b) == 1.0


def test_field_by_field_mean_with_missing_fields_scoring_zero() -> None:
    metric = StructuredSimilarity()
    assert metric.score({"a": 1, "b": 2}, {"a": 1, "b": 3}) == 0.5
    assert metric.score({"a": 1, "b": 2}, {"a": 1}) == 0.5
    assert metric.score({"a": 1, "b": None}, {"a": 1}) == 1.0  # null == missing
    assert metric.score({}, {}) == 1.0
    assert metric.score({"a": True}, {"a": 1}) == 0.0  # booleans are not numbers
    assert metric.score({"a": "x"}, {"a": ["x"]}) == 0.0  # mixed types


def test_field_weights_by_path_including_nested() -> None:
    a = {"title": "Engineer", "notes": "x", "location": {"city": "Berlin", "zip": "10115"}}
    b = {"title": "Engineer", "notes": "y", "location": {"city": "Paris", "zip": "10115"}}
    plain = StructuredSimilarity().score(a, b)
    # title 1, notes 0, location (city 0 + zip 1) / 2
    assert plain == pytest.approx((1 + 0 + 0.5) / 3)
    weighted = StructuredSimilarity(
        field_weights={"title": 3, "notes": 0, "location.city": 0}
    ).score(a, b)
    assert weighted == pytest.approx((3 * 1 + 1 * 1) / 4)
    with pytest.raises(ValueError, match="negative"):
        StructuredSimilarity(field_weights={"title": -1})


def test_with_weights_adds_to_existing_weights() -> None:
    metric = StructuredSimilarity(field_weights={"a": 2}).with_weights({"b": 0})
    assert metric.field_weights == {"a": 2, "b": 0}
    assert metric.score({"a": 1, "b": 1}, {"a": 1, "b": 2}) == 1.0


def test_lists_are_sets_with_fuzzy_item_matching() -> None:
    metric = StructuredSimilarity()
    # Order and duplicates do not matter.
    assert metric.score(["a", "b", "b"], ["b", "a"]) == 1.0
    # One of two items differs completely: 1 matched / max(2, 2).
    assert metric.score(["python", "java"], ["python", "haskell"]) == 0.5
    # A near miss matches with its similarity: "postgres" vs "postgresql" bigram Dice 14/16.
    assert metric.score(["python", "postgres"], ["python", "postgresql"]) == pytest.approx(
        (1 + 14 / 16) / 2
    )
    # An extra item on one side counts against: 2 matched / max(2, 3).
    assert metric.score(["a1", "b2"], ["a1", "b2", "c3"]) == pytest.approx(2 / 3)
    assert metric.score([], []) == 1.0
    assert metric.score([], ["x"]) == 0.0


def test_greedy_matching_takes_the_best_pairs_first() -> None:
    # "kubern" likes "kubernetes" (Dice 10/14) but "kubernetes!" likes it more (18/19); taking
    # pairs in input order would pair kubern-kubernetes and leave kubernetes! with nothing.
    a = ["kubern", "kubernetes!"]
    b = ["kubernetes", "kubxyz"]
    metric = StructuredSimilarity()
    assert metric.score("kubern", "kubernetes") == pytest.approx(10 / 14)
    assert metric.score("kubern", "kubxyz") == pytest.approx(0.4)  # under the 0.5 threshold
    assert metric.score(a, b) == pytest.approx((18 / 19) / 2)


def test_lists_of_objects_are_matched_recursively() -> None:
    a = {"jobs": [{"title": "Engineer", "years": 3}, {"title": "Manager", "years": 2}]}
    b = {"jobs": [{"title": "Manager", "years": 2}, {"title": "Engineer", "years": 4}]}
    # Manager matches exactly; Engineer matches on title (1) but not years (0): 0.5.
    assert StructuredSimilarity().score(a, b) == pytest.approx((1 + 0.5) / 2)


def test_per_field_metrics_and_string_metric() -> None:
    always = StructuredSimilarity(field_metrics={"id": _Always(), "tags[]": _Always()})
    assert always.score({"id": 1, "tags": ["x"]}, {"id": 2, "tags": ["y"]}) == 1.0
    difflib = StructuredSimilarity(string_metric=SequenceSimilarity())
    assert difflib.score({"t": "abcd"}, {"t": "abce"}) == pytest.approx(0.75)


def test_numbers_equal_within_relative_tolerance() -> None:
    assert StructuredSimilarity().score({"n": 100}, {"n": 101}) == 0.0
    assert StructuredSimilarity(number_tolerance=0.02).score({"n": 100}, {"n": 101}) == 1.0


def test_two_job_extractions_score_well_under_a_millisecond() -> None:
    a = job()
    b = job(
        company="ACME Corp.",
        skills=["python", "django", "Postgres", "docker", "k8s", "AWS", "REST", "Linux"],
        requirements=[
            "5+ years Python experience",
            "Experience with cloud platforms (AWS)",
            "Good communication skills",
        ],
    )
    metric = StructuredSimilarity()
    assert 0.7 < metric.score(a, b) < 1.0
    # CPU time (not wall time) of the best of several batches: robust on a shared, loaded box.
    batches = []
    for _ in range(7):
        started = time.process_time()
        for _ in range(30):
            metric.score(a, b)
        batches.append((time.process_time() - started) / 30)
    assert min(batches) < 1e-3  # typically ~0.1 ms


class _Always:
    name = "always"

    def score(self, a: Any, b: Any, /) -> float:
        return 1.0
