"""Every answer is evidence: what one execution record says about each model that answered.

An execution verified by consensus or a cascade holds several models' answers, grouped into
clusters of agreeing answers (``verification_results.details["votes"]``, each with its
``model`` and ``cluster``). The record's judgement — people's and systems' feedback when there
is any, else the automatic verdict — is about the answer the execution returned (the cluster's
``representative``, else the verifier's primary answer). It is credited to every model by its
cluster:

* the judged answer was good: models in its cluster succeeded, models in other clusters failed
  (they disagreed with a good answer);
* it was bad: models in its cluster failed; the others get no evidence (a different answer is
  not necessarily a right one).

A record without votes credits its primary model alone (as before). A verdict marked
``unchecked`` (a cascade that answered at the top of its ladder without a check) or skipped
(adaptive verification) is no automatic evidence; feedback still is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from tlm.learn.analysis import primary_model, verdict_of
from tlm.telemetry.records import ExecutionRecord

__all__ = (
    "AUTO_WEIGHT",
    "HUMAN_WEIGHT",
    "SYSTEM_WEIGHT",
    "ModelEvidence",
    "Judgement",
    "judgement_of",
    "tally",
    "answers_of",
    "answer_evidence",
)

AUTO_WEIGHT = 1.0
"""Weight of an automatic verdict (verifier pass/fail, invalid output)."""
HUMAN_WEIGHT = 3.0
"""Weight of a person's feedback."""
SYSTEM_WEIGHT = 1.0
"""Weight of feedback from a system (e.g. a downstream check)."""


@attrs.frozen
class ModelEvidence:
    """What one record says about one model's answer (weights before any decay)."""

    model: str
    successes: float
    failures: float
    human: int = 0
    primary: bool = False
    """Whether this model produced the execution's primary answer."""


@attrs.frozen
class Judgement:
    """The record's weighted verdict on the answer it returned."""

    successes: float
    failures: float
    human: int


def judgement_of(record: ExecutionRecord) -> Judgement | None:
    """Feedback and automatic verdict on the returned answer; ``None`` if there is none."""
    details = record.verification_results.details if record.verification_results else {}
    return tally(record, None if details.get("unchecked") else verdict_of(record))


def tally(record: ExecutionRecord, passed: bool | None) -> Judgement | None:
    """The weighted successes and failures of an automatic verdict ``passed`` (an invalid
    output counting as a failure when there is none) and of ``record``'s feedback."""
    successes = failures = 0.0
    human = 0
    if passed is not None:
        successes += AUTO_WEIGHT if passed else 0.0
        failures += 0.0 if passed else AUTO_WEIGHT
    elif record.status == "error" and record.error and record.error.type.endswith("OutputInvalid"):
        failures += AUTO_WEIGHT
    for feedback in record.feedback:
        weight = HUMAN_WEIGHT if feedback.source == "human" else SYSTEM_WEIGHT
        if feedback.correct is not None:
            share = 1.0 if feedback.correct else 0.0
        elif feedback.score is not None:
            share = min(max(feedback.score, 0.0), 1.0)
        else:
            continue
        successes += weight * share
        failures += weight * (1.0 - share)
        human += feedback.source == "human"
    if successes == 0.0 and failures == 0.0:
        return None
    return Judgement(successes, failures, human)


def answers_of(record: ExecutionRecord) -> tuple[list[tuple[str, int]], str | None]:
    """``([(model, cluster), ...], judged_model)`` of a record with votes; ``([], None)`` without.

    The judged model is the one whose answer was returned (the representative, else the
    primary's model).
    """
    details: Mapping[str, Any] = (
        record.verification_results.details if record.verification_results else {}
    )
    votes = details.get("votes")
    if not isinstance(votes, Sequence) or not votes:
        return [], None
    answers: list[tuple[str, int]] = []
    for vote in votes:
        if isinstance(vote, Mapping) and isinstance(vote.get("model"), str):
            cluster = vote.get("cluster")
            answers.append((vote["model"], cluster if isinstance(cluster, int) else -1))
    judged = details.get("representative")
    if not isinstance(judged, str) or all(m != judged for m, _ in answers):
        # the verifier's primary: the vote marked so, else its first vote (after a fallback the
        # verified candidate is not necessarily the record's first model)
        marked = [v["model"] for v in votes if isinstance(v, Mapping) and v.get("primary")]
        judged = marked[0] if marked and isinstance(marked[0], str) else answers[0][0]
    return answers, judged


def answer_evidence(record: ExecutionRecord) -> list[ModelEvidence]:
    """The evidence ``record`` gives about every model that answered (see the module doc)."""
    judgement = judgement_of(record)
    if judgement is None:
        return []
    primary = primary_model(record)
    answers, judged = answers_of(record)
    if not answers:
        return [
            ModelEvidence(primary, judgement.successes, judgement.failures, judgement.human, True)
        ]
    judged_cluster = next((c for m, c in answers if m == judged), None)
    total = judgement.successes + judgement.failures
    good = judgement.successes / total
    evidence: list[ModelEvidence] = []
    seen: set[str] = set()
    for model, cluster in answers:
        if model in seen:
            continue
        seen.add(model)
        agrees = judged_cluster is not None and cluster == judged_cluster and cluster >= 0
        if model == judged or agrees:
            successes, failures = judgement.successes, judgement.failures
        else:
            # disagreed with the judged answer: wrong as far as that answer was right
            successes, failures = 0.0, good * total
        if successes == 0.0 and failures == 0.0:
            continue
        evidence.append(
            ModelEvidence(model, successes, failures, judgement.human, model == primary)
        )
    if primary not in seen and record.fallback is None:
        evidence.append(
            ModelEvidence(primary, judgement.successes, judgement.failures, judgement.human, True)
        )
    return evidence
