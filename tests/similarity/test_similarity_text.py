"""Canonical forms and the text metrics: exact, difflib ratio, token cosine, functions."""

from __future__ import annotations

from typing import Any

import pytest

from tlm.similarity import (
    ExactSimilarity,
    FunctionMetric,
    SequenceSimilarity,
    TokenCosineSimilarity,
    canonical_json,
    canonical_text,
    canonicalize,
)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ({"b": 1, "a": 2}, {"a": 2, "b": 1}),
        (1.0, 1),
        (0.1 + 0.2, 0.3),
        ({"x": [1.50, 2]}, {"x": [1.5, 2.0]}),
        ((1, 2), [1, 2]),
    ],
    ids=["key-order", "int-float", "float-noise", "nested-numbers", "tuple-list"],
)
def test_strict_canonical_form_ignores_formatting(a: Any, b: Any) -> None:
    assert canonical_json(a) == canonical_json(b)
    assert ExactSimilarity().score(a, b) == 1.0


@pytest.mark.parametrize(
    ("a", "b"),
    [("Hello", "hello"), ("a  b", "a b"), (True, 1), ("5", 5)],
    ids=["case", "whitespace", "bool-int", "numeric-string"],
)
def test_exact_keeps_case_whitespace_and_types(a: Any, b: Any) -> None:
    assert ExactSimilarity().score(a, b) == 0.0


def test_folded_form_normalises_case_whitespace_unicode_and_numeric_strings() -> None:
    value = {"Title": "  Senior\tPython   DEVELOPER ", "count": "5", "pay": " 7.50 ", "ok": True}
    assert canonicalize(value) == {
        "Title": "senior python developer",
        "count": 5,
        "ok": True,
        "pay": 7.5,
    }
    assert canonicalize("ﬁle") == "file"  # NFKC ligature
    assert canonicalize("007") == "007"  # leading zeros stay a string (zip codes, ids)
    assert canonicalize("1e3") == 1000
    assert canonicalize(True) is True  # booleans never become numbers
    assert canonicalize(float("nan")) == "nan"


def test_canonical_text_of_strings_and_json() -> None:
    assert canonical_text("  Hello   World ") == "hello world"
    assert canonical_text({"b": "X", "a": 1.0}) == '{"a": 1, "b": "x"}'


def test_sequence_ratio() -> None:
    metric = SequenceSimilarity()
    assert metric.name == "text"
    assert metric.score("Hello  World", "hello world") == 1.0
    assert metric.score("", "") == 1.0
    assert metric.score("abcd", "abce") == pytest.approx(0.75)
    assert metric.score("abc", "xyz") == 0.0
    assert metric.score({"a": 1}, {"a": 1.0}) == 1.0


def test_token_cosine() -> None:
    metric = TokenCosineSimilarity()
    assert metric.score("the cat sat", "sat the CAT") == pytest.approx(1.0)
    assert metric.score("a b", "c d") == 0.0
    # counts (1,1,0) vs (1,0,1): cosine 1/2
    assert metric.score("x y", "x z") == pytest.approx(0.5)
    assert metric.score("", "  ") == 1.0
    assert metric.score("", "word") == 0.0


def test_metrics_are_symmetric_and_bounded() -> None:
    values: list[Any] = ["alpha beta", "beta gamma delta", {"k": [1, 2]}, "", 3.5]
    for metric in (ExactSimilarity(), SequenceSimilarity(), TokenCosineSimilarity()):
        for a in values:
            for b in values:
                score = metric.score(a, b)
                assert 0.0 <= score <= 1.0
                assert score == pytest.approx(metric.score(b, a))


def test_function_metric_checks_its_range() -> None:
    metric = FunctionMetric(lambda a, b: 1.0 if a[0] == b[0] else 0.25, name="initial")
    assert metric.score("apple", "avocado") == 1.0
    assert metric.score("apple", "banana") == 0.25
    with pytest.raises(ValueError, match=r"'broken' returned 2.0, not in \[0, 1\]"):
        FunctionMetric(lambda a, b: 2.0, name="broken").score(1, 2)
