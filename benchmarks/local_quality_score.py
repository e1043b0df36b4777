"""Scoring of the local-quality benchmark: extractions and skill lists against written references.

Field matching (documented in ``benchmarks/local_quality/README.md``):

* Every string is **normalised**: Unicode NFKC, case-folded, punctuation turned into spaces (``+``
  and ``#`` kept, so "C++" and "5+ years" survive), whitespace collapsed. Its **tokens** are the
  words left, minus a few stop words ("a", "the", "of", "and", "with", ...).
* Two strings **match** when their normalised forms are equal, when one's tokens are all in the
  other's (containment, for the shorter side having at least one token), or when the token-set
  Dice coefficient reaches the threshold (:data:`ITEM_THRESHOLD` for extraction fields,
  :data:`SKILL_THRESHOLD` for skills).
* A scalar field (``job_title``, ``location``, ``contact``) is one unit: present on both sides
  and matching is a true positive; present on both sides but not matching is a false positive
  and a false negative; only predicted is a false positive; only in the reference is a false
  negative. An empty string counts as absent.
* A list field (``responsibilities``, ``requirements``) is matched one to one: the pairs are taken
  greedily by descending Dice, each item at most once; matched pairs are true positives, the
  predicted items left over false positives, the reference items left over false negatives.
* Precision, recall and F1 are micro-averaged over all units of all fields (and reported per
  field). ``salary_range`` is not scored (the references do not hold it).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

__all__ = (
    "ITEM_THRESHOLD",
    "SKILL_THRESHOLD",
    "SCALAR_FIELDS",
    "LIST_FIELDS",
    "Counts",
    "normalise",
    "tokens",
    "similarity",
    "matches",
    "match_lists",
    "score_extraction",
    "score_skills",
    "total",
    "sensible_skill",
)

ITEM_THRESHOLD = 0.5
"""Least token Dice for two extraction items (or scalar values) to match."""
SKILL_THRESHOLD = 0.5
"""Least token Dice for a predicted skill to match a reference skill."""
SCALAR_FIELDS = ("job_title", "location", "contact")
LIST_FIELDS = ("responsibilities", "requirements")

_PUNCT = re.compile(r"[^\w+#]+")
_STOP = frozenset(
    "a an the of and or with in on for to at as is are be by from our your you we any "
    "e g eg such".split()
)


@attrs.define
class Counts:
    """True positives, false positives and false negatives; P/R/F1 from them."""

    tp: int = 0
    fp: int = 0
    fn: int = 0

    def add(self, other: Counts) -> None:
        """Add ``other``'s counts to these."""
        self.tp += other.tp
        self.fp += other.fp
        self.fn += other.fn

    @property
    def precision(self) -> float:
        """tp / (tp + fp); 1.0 when nothing was predicted."""
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        """tp / (tp + fn); 1.0 when there was nothing to find."""
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        """The harmonic mean of precision and recall."""
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def normalise(text: str) -> str:
    """NFKC, case-folded, punctuation to spaces (``+``/``#`` kept), whitespace collapsed."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(_PUNCT.sub(" ", folded).split())


def tokens(text: str) -> frozenset[str]:
    """The normalised words of ``text`` without stop words (all words if only stop words)."""
    words = normalise(text).split()
    kept = frozenset(w for w in words if w not in _STOP)
    return kept or frozenset(words)


def similarity(a: str, b: str) -> float:
    """Token-set Dice of ``a`` and ``b``; 1.0 when equal once normalised or one holds the other."""
    na, nb = normalise(a), normalise(b)
    if not na or not nb:
        return 0.0
    if na == nb:
        return 1.0
    ta, tb = tokens(a), tokens(b)
    if ta <= tb or tb <= ta:
        return 1.0
    return 2 * len(ta & tb) / (len(ta) + len(tb))


def matches(a: str, b: str, threshold: float = ITEM_THRESHOLD) -> bool:
    """Whether ``a`` and ``b`` match (see the module docstring)."""
    return similarity(a, b) >= threshold


def match_lists(
    predicted: Sequence[str], reference: Sequence[str], threshold: float = ITEM_THRESHOLD
) -> tuple[list[tuple[int, int]], Counts]:
    """One-to-one greedy matching by descending similarity; the pairs and the counts."""
    pairs = sorted(
        (
            (similarity(p, r), i, j)
            for i, p in enumerate(predicted)
            for j, r in enumerate(reference)
        ),
        key=lambda t: (-t[0], t[1], t[2]),
    )
    used_p: set[int] = set()
    used_r: set[int] = set()
    matched: list[tuple[int, int]] = []
    for score, i, j in pairs:
        if score < threshold:
            break
        if i in used_p or j in used_r:
            continue
        used_p.add(i)
        used_r.add(j)
        matched.append((i, j))
    counts = Counts(len(matched), len(predicted) - len(matched), len(reference) - len(matched))
    return matched, counts


def _strings(value: Any) -> list[str]:
    if not isinstance(value, list):
        return []
    return [v for v in value if isinstance(v, str) and v.strip()]


def _scalar(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def score_extraction(predicted: Any, reference: Mapping[str, Any]) -> dict[str, Counts]:
    """Per-field counts of ``predicted`` against ``reference`` (``predicted`` may be anything)."""
    got: Mapping[str, Any] = predicted if isinstance(predicted, Mapping) else {}
    result: dict[str, Counts] = {}
    for field in SCALAR_FIELDS:
        p, r = _scalar(got.get(field)), _scalar(reference.get(field))
        if p is not None and r is not None:
            result[field] = Counts(1, 0, 0) if matches(p, r) else Counts(0, 1, 1)
        else:
            result[field] = Counts(0, int(p is not None), int(r is not None))
    for field in LIST_FIELDS:
        _, result[field] = match_lists(_strings(got.get(field)), _strings(reference.get(field)))
    return result


def total(counts: Iterable[Counts]) -> Counts:
    """The sum of ``counts``."""
    out = Counts()
    for c in counts:
        out.add(c)
    return out


def sensible_skill(skill: str, requirements: Sequence[str], job_title: str = "") -> bool:
    """Whether ``skill`` reads like one elementary skill rather than a copied sentence or a label.

    Sensible: 1 to 6 words, not (nearly) a whole requirement of the posting when that
    requirement is longer than the skill can be, and not the job title.
    """
    words = normalise(skill).split()
    if not 1 <= len(words) <= 6:
        return False
    if job_title and normalise(skill) == normalise(job_title):
        return False
    for requirement in requirements:
        if len(normalise(requirement).split()) > 4 and normalise(skill) == normalise(requirement):
            return False
    return True


def score_skills(predicted: Sequence[str], reference: Sequence[str]) -> tuple[float, float]:
    """Skill (precision, recall): a predicted skill is right if it matches some reference skill;
    a reference skill is found if some predicted skill matches it. Not one to one: "Python
    programming" and "Python scripting" both cover "Python". Empty predictions: (0, 0)."""
    unique = list(dict.fromkeys(s.strip() for s in predicted if s.strip()))
    if not unique:
        return 0.0, 0.0
    right = sum(any(matches(p, r, SKILL_THRESHOLD) for r in reference) for p in unique)
    found = sum(any(matches(p, r, SKILL_THRESHOLD) for p in unique) for r in reference)
    return right / len(unique), (found / len(reference) if reference else 1.0)
