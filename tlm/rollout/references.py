"""The recorded inputs a replay evaluation re-runs, and the outputs it trusts for each.

An input's reference is, in order of trust: an output a person edited in review (``edited``); an
output a person approved in review or marked correct with ``tlm feedback`` (``approved``); an
output that passed verification and that no person marked incorrect (``verified``). Inputs are
grouped by the hash of their canonical JSON, newest first; an input with no trusted output has no
reference (the replay then re-runs the current version beside the new one).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from tlm.rollout.state import EvalItem
from tlm.similarity.canonical import canonical_json
from tlm.telemetry.records import ExecutionRecord

if TYPE_CHECKING:
    from tlm.store.base import ExecutionLog as ExecutionStore
    from tlm.verify.review_queue import Review

__all__ = ("input_hash", "gather_items", "TRUST")

TRUST = {"edited": 3, "approved": 2, "verified": 1}
"""How much each kind of reference is trusted (higher first)."""


def input_hash(value: Any) -> str:
    """The content hash of an input (its canonical JSON), hex."""
    material = canonical_json(value).encode("utf-8", "surrogatepass")
    return hashlib.sha256(material).hexdigest()


def _human_verdict(record: ExecutionRecord) -> bool | None:
    for feedback in reversed(record.feedback):
        if feedback.source == "human" and feedback.correct is not None:
            return feedback.correct
    return None


def _trusted(
    record: ExecutionRecord, decisions: Mapping[str, tuple[str, Any]]
) -> tuple[str, Any] | None:
    """The kind and output this record offers as a reference, if any."""
    if record.execution_id in decisions:
        return decisions[record.execution_id]
    if record.status != "ok" or record.output is None:
        return None
    human = _human_verdict(record)
    if human is True:
        return "approved", record.output
    if human is None and record.passed is True:
        return "verified", record.output
    return None


def _snapshot(record: ExecutionRecord) -> dict[str, Any]:
    return {
        "execution_id": record.execution_id,
        "output": record.output,
        "passed": record.passed,
        "status": record.status,
        "cost_usd": record.performance.cost,
        "latency_s": record.performance.execution_time,
    }


def _decisions(reviews: Iterable[Review], task_id: str) -> dict[str, tuple[str, Any]]:
    found: dict[str, tuple[str, Any]] = {}
    for review in reviews:
        decision = review.decision
        if review.task_id != task_id or decision is None or not decision.passed:
            continue
        kind = "edited" if decision.action == "edit" else "approved"
        found[review.execution_id] = (kind, decision.output)
    return found


def gather_items(
    executions: ExecutionStore,
    reviews: Iterable[Review],
    task_id: str,
    current_version: str,
    *,
    since: datetime | None = None,
    limit: int | None = None,
) -> list[EvalItem]:
    """The distinct recorded inputs of ``task_id`` (newest first) with their references."""
    decisions = _decisions(reviews, task_id)
    order: list[str] = []
    inputs: dict[str, Any] = {}
    best: dict[str, tuple[int, str, Any]] = {}
    recorded: dict[str, dict[str, Any]] = {}
    for record in executions.iter_query(task_id=task_id, since=since, newest_first=True):
        if record.input is None:
            continue
        key = input_hash(record.input)
        if key not in inputs:
            if limit is not None and len(order) >= limit:
                continue
            order.append(key)
            inputs[key] = record.input
        trusted = _trusted(record, decisions)
        if trusted is not None:
            kind, output = trusted
            if key not in best or TRUST[kind] > best[key][0]:
                best[key] = (TRUST[kind], kind, output)
        if record.task_version == current_version and key not in recorded:
            recorded[key] = _snapshot(record)
    return [
        EvalItem(
            input_hash=key,
            position=position,
            input=inputs[key],
            reference=best[key][2] if key in best else None,
            reference_kind=best[key][1] if key in best else None,
            recorded=recorded.get(key),
            status="pending",
            outcome=None,
        )
        for position, key in enumerate(order)
    ]
