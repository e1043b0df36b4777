"""``tlm analyze``'s :class:`~tlm.learn.analysis.Analysis`, computed from narrow index rows.

:func:`tlm.learn.analysis.analyze` walks whole records; with tens of thousands of records in a
period that takes longer than a page may. This module computes the same figures from a covering
index (:data:`ANALYSIS_INDEX`: only the columns the figures use, so no record is read) and reads
whole rows only for the failed executions, grouped by identical failure text in SQL. Each figure
keeps the definition of :mod:`tlm.learn.analysis` (same grouping, pass rates without skipped
verification, Wilson intervals, percentiles, failure signatures from
:func:`~tlm.learn.analysis.failures_of`); the tests check the two agree.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from datetime import date, timedelta
from typing import Any, Final

from tlm.learn.analysis import (
    NO_MODEL,
    NO_VARIANT,
    Analysis,
    FailurePattern,
    GroupStats,
    TrendPoint,
    failures_of,
)
from tlm.learn.stats import percentile, wilson_interval
from tlm.telemetry.records import ErrorInfo, ExecutionRecord, Performance, VerificationResults
from tlm.ui.daycache import DayCache, DayRow

__all__ = (
    "ANALYSIS_INDEX",
    "SKIPPED_INDEX",
    "FAILURES_INDEX",
    "SKIPPED",
    "SIGNATURE",
    "compute_analysis",
    "day_sums",
)

SKIPPED: Final = "instr(coalesce(verification_details, ''), '\"skipped\":true') > 0"
"""Whether verification was skipped as reliable (the store writes compact JSON)."""
ANALYSIS_INDEX: Final = (
    "CREATE INDEX IF NOT EXISTS executions_analysis ON executions (task_id, timestamp,"
    " task_version, prompt_variant, models_used, status, passed, execution_time, tokens_used,"
    " cost, fallback, cache_hit, execution_id)"
)
"""Covers every column the figures read, and the id that feedback joins on."""
SKIPPED_INDEX: Final = (
    "CREATE INDEX IF NOT EXISTS executions_skipped ON executions (task_id, timestamp)"
    f" WHERE {SKIPPED}"
)
"""A partial index of the (few) executions whose verification was skipped."""
FAILED: Final = "(status = 'error' OR passed = 0)"
FAILURES_INDEX: Final = (
    "CREATE INDEX IF NOT EXISTS executions_failures ON executions (task_id, timestamp,"
    " task_version, prompt_variant, models_used, status, error_type, error_message,"
    " verification_method,"
    f" passed, verification_details, execution_id) WHERE {FAILED}"
)
"""A partial index covering what the failure patterns read, for the failed executions only
(their texts are read without touching the records' inputs, outputs and prompts)."""


def _where(task_id: str, since: str | None, version: str | None) -> tuple[str, list[Any]]:
    sql, args = "task_id = ?", [task_id]
    if since:
        sql += " AND timestamp >= ?"
        args.append(since)
    if version:
        sql += " AND task_version = ?"
        args.append(version)
    return sql, args


_MODEL = f"coalesce(json_extract(models_used, '$[0]'), '{NO_MODEL}')"
_VARIANT = f"coalesce(prompt_variant, '{NO_VARIANT}')"


class _Tally:
    """Running figures of one group of executions."""

    __slots__ = ("cache", "cost", "decided", "errors", "fallback", "feedback", "latencies",
                 "marks", "n", "passed", "scores", "tokens")  # fmt: skip

    def __init__(self) -> None:
        self.n = self.errors = self.decided = self.passed = self.tokens = 0
        self.fallback = self.cache = self.feedback = 0
        self.cost = 0.0
        self.latencies: list[float] = []
        self.scores: list[float] = []
        self.marks: list[bool] = []

    def stats(self, model: str, variant: str, version: str) -> GroupStats:
        n, decided, passed = self.n, self.decided, self.passed
        scores, marks = self.scores, self.marks
        latencies = sorted(self.latencies)  # sorted runs: near linear; percentile re-sorts in O(n)
        return GroupStats(
            model=model,
            prompt_variant=variant,
            task_version=version,
            executions=n,
            errors=self.errors,
            verified=decided,
            passed=passed,
            pass_rate=passed / decided if decided else None,
            pass_interval=wilson_interval(passed, decided) if decided else None,
            feedback_count=self.feedback,
            feedback_mean_score=sum(scores) / len(scores) if scores else None,
            feedback_correct_pct=100.0 * sum(marks) / len(marks) if marks else None,
            latency_p50_s=percentile(latencies, 50),
            latency_p95_s=percentile(latencies, 95),
            tokens_total=self.tokens,
            tokens_mean=self.tokens / n if n else 0.0,
            cost_total_usd=self.cost,
            cost_per_success_usd=self.cost / passed if passed else None,
            fallback_rate=self.fallback / n if n else 0.0,
            cache_hit_rate=self.cache / n if n else 0.0,
        )


def _failure_record(row: Sequence[Any]) -> ExecutionRecord:
    _, _, _, error_type, error_message, method, passed, details, _, _ = row
    verification = None
    if method is not None:
        loaded = json.loads(details) if details else {}
        verification = VerificationResults(
            method, None if passed is None else bool(passed), 0.0, loaded
        )
    return ExecutionRecord(
        execution_id="",
        task_id="",
        task_version="",
        input=None,
        output=None,
        models_used=(),
        verification_results=verification,
        performance=Performance(0.0, 0, 0.0),
        timestamp="",
        error=None if error_type is None else ErrorInfo(error_type, error_message or ""),
    )


def _patterns(failed: Iterable[Sequence[Any]], n: int, top: int) -> tuple[FailurePattern, ...]:
    """Failure patterns from rows grouped by identical failure text, weighted by their count."""
    counts: Counter[tuple[str, str]] = Counter()
    first: dict[tuple[str, str], Any] = {}
    variants: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    models: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    examples: dict[tuple[str, str], list[tuple[str, str, str]]] = defaultdict(list)
    for row in failed:
        variant, model, count = row[0], row[1], int(row[8])
        stamped = [item.split(" ", 1) for item in str(row[9]).split(",")[:3]]
        seen: set[tuple[str, str]] = set()
        for failure in failures_of(_failure_record(row)):
            key = (failure.kind, failure.key)
            if key in seen:
                continue
            seen.add(key)
            counts[key] += count
            first.setdefault(key, failure)
            variants[key][variant] += count
            models[key][model] += count
            examples[key] += [(at, eid, failure.text[:200]) for at, eid in stamped]
    patterns = [
        FailurePattern(
            kind=kind,
            key=key,
            count=count,
            share=count / (n or 1),
            path=first[(kind, key)].path,
            error=first[(kind, key)].error,
            variants=dict(variants[(kind, key)]),
            models=dict(models[(kind, key)]),
            examples=tuple(
                {"execution_id": eid, "text": text}
                for _, eid, text in sorted(examples[(kind, key)])[:3]
            ),
        )
        for (kind, key), count in counts.items()
    ]
    patterns.sort(key=lambda p: (-p.count, p.kind, p.key))
    return tuple(patterns[:top])


SIGNATURE: Final = "count(*), max(rowid), total(execution_time), count(passed), total(passed)"
"""What a day's rows are checked against before its cached sums are reused (see DayCache): a
late record changes the count and greatest rowid, a rewritten one (same rowid) its latency or
verdict sums (a rewrite is another run of the execution: its latency differs), and a changed
skipped verification the day's skipped count."""
_DAY = "substr(timestamp, 1, 10)"


def _next_day(day: str) -> str:
    return (date.fromisoformat(day) + timedelta(days=1)).isoformat()


def _segments(
    conn: sqlite3.Connection, task_id: str, version: str | None, since: str | None
) -> list[tuple[str, str | None, tuple[Any, ...]]]:
    """``[lower, upper)`` timestamp ranges, one per UTC day with records (the last one open),
    each with the signature of its rows: one range read of the covering index per day (no
    sorting), the skipped counts from the partial index."""
    where, args = _where(task_id, since, version)
    first, last = conn.execute(
        f"SELECT min(timestamp), max(timestamp) FROM executions INDEXED BY executions_analysis"
        f" WHERE {where}",
        args,
    ).fetchone()
    if first is None:
        return []
    skipped = dict(
        conn.execute(
            f"SELECT {_DAY}, count(*) FROM executions INDEXED BY executions_skipped"
            f" WHERE {where} AND {SKIPPED} GROUP BY 1",
            args,
        ).fetchall()
    )
    base, base_args = _where(task_id, None, version)
    segments: list[tuple[str, str | None, tuple[Any, ...]]] = []
    day = first[:10]
    while day <= last[:10]:
        following = _next_day(day)
        lower = f"{day}T00:00:00.000000Z"
        if since is not None and since > lower:
            lower = since
        upper: str | None = f"{following}T00:00:00.000000Z" if day < last[:10] else None
        signature = conn.execute(
            f"SELECT {SIGNATURE} FROM executions INDEXED BY executions_analysis"
            f" WHERE {base} AND timestamp >= ?" + ("" if upper is None else " AND timestamp < ?"),
            [*base_args, lower, *([] if upper is None else [upper])],
        ).fetchone()
        if signature[0]:
            segments.append((lower, upper, (*signature, skipped.get(day, 0))))
        day = following
    return segments


def _day_rows(conn: sqlite3.Connection, where: str, args: list[Any]) -> list[DayRow]:
    """The group sums of one day, each group's latencies sorted."""
    return [
        (*row[:-1], sorted(map(float, row[-1].split(","))))
        for row in conn.execute(
            "SELECT substr(timestamp, 1, 10), models_used, prompt_variant, task_version,"
            " count(*), sum(status = 'error'), count(verdict), coalesce(sum(verdict), 0),"
            " sum(tokens_used), sum(cost), sum(fallback IS NOT NULL AND fallback != ''),"
            " sum(cache_hit), group_concat(printf('%!.17g', execution_time))"
            " FROM (SELECT *, CASE WHEN passed IS NULL OR rowid IN (SELECT rowid FROM executions"
            f" INDEXED BY executions_skipped WHERE {where} AND {SKIPPED}) THEN NULL"
            " ELSE passed END AS verdict"
            f" FROM executions INDEXED BY executions_analysis WHERE {where})"
            " GROUP BY 1, 2, 3, 4",
            args * 2,
        )
    ]


def day_sums(
    conn: sqlite3.Connection,
    task_id: str,
    *,
    since: str | None = None,
    version: str | None = None,
    cache: DayCache | None = None,
) -> list[DayRow]:
    """``task_id``'s group sums day by day since ``since``; days whose rows still have the
    signature they had when ``cache`` got them are not summed again."""
    rows: list[DayRow] = []
    fresh: list[tuple[tuple[Any, ...], tuple[Any, ...], list[DayRow]]] = []
    base, base_args = _where(task_id, None, version)
    for lower, upper, signature in _segments(conn, task_id, version, since):
        key = (task_id, version, lower, upper)
        found = None if cache is None else cache.get(key, signature)
        if found is None:
            day_where = f"{base} AND timestamp >= ?" + (
                "" if upper is None else " AND timestamp < ?"
            )
            day_args = [*base_args, lower, *([] if upper is None else [upper])]
            found = _day_rows(conn, day_where, day_args)
            fresh.append((key, signature, found))
        rows += found
    if cache is not None and fresh:
        cache.put_many(fresh)
    return rows


def compute_analysis(
    conn: sqlite3.Connection,
    task_id: str,
    *,
    since: str | None = None,
    until: str | None = None,
    version: str | None = None,
    top: int = 10,
    cache: DayCache | None = None,
) -> Analysis:
    """The :class:`Analysis` ``analyze`` would give for ``task_id``'s records since ``since``.

    The records are summed day by day (group sums and latencies, in SQL over the covering
    index); with ``cache``, days whose rows did not change are not summed again.
    """
    where, args = _where(task_id, since, version)
    overall = _Tally()
    groups: dict[tuple[str, str, str], _Tally] = defaultdict(_Tally)
    days: dict[tuple[str, str], _Tally] = defaultdict(_Tally)
    primary: dict[str, str] = {}

    def model_of(models: str) -> str:
        model = primary.get(models)
        if model is None:
            used = json.loads(models)
            model = primary[models] = str(used[0]) if used else NO_MODEL
        return model

    rows = day_sums(conn, task_id, since=since, version=version, cache=cache)
    for (
        day,
        models,
        variant,
        ver,
        n,
        errors,
        decided,
        passed,
        tokens,
        cost,
        fb,
        cache_,
        lat,
    ) in rows:
        model = model_of(models)
        group = groups[(model, variant or NO_VARIANT, ver)]
        for tally in (overall, group, days[(day, model)]):
            tally.n += n
            tally.errors += errors
            tally.decided += decided
            tally.passed += passed
            tally.tokens += tokens
            tally.cost += cost
            tally.fallback += fb
            tally.cache += cache_
        overall.latencies += lat  # the trend shows no latencies
        group.latencies += lat
    for models, variant, ver, score, correct in conn.execute(
        "SELECT e.models_used, e.prompt_variant, e.task_version, f.score, f.correct"
        " FROM executions e INDEXED BY executions_analysis"
        " JOIN feedback f ON f.execution_id = e.execution_id"
        " WHERE " + "e." + where.replace(" AND ", " AND e."),
        args,
    ):
        for tally in (overall, groups[(model_of(models), variant or NO_VARIANT, ver)]):
            tally.feedback += 1
            if score is not None:
                tally.scores.append(score)
            if correct is not None:
                tally.marks.append(bool(correct))
    variants: Counter[str] = Counter()
    for (_, variant, _), tally in groups.items():
        variants[variant] += tally.n
    trend = tuple(
        TrendPoint(
            day=day,
            model=model,
            executions=t.n,
            verified=t.decided,
            passed=t.passed,
            pass_rate=t.passed / t.decided if t.decided else None,
            cost_usd=t.cost,
        )
        for (day, model), t in sorted(days.items())
    )
    failed = conn.execute(  # identical failures once, their ids in time order
        f"SELECT {_VARIANT}, {_MODEL}, NULL, error_type, error_message, verification_method,"
        " passed, verification_details, count(*), group_concat(timestamp || ' ' || execution_id)"
        " FROM (SELECT timestamp, execution_id, prompt_variant, models_used, error_type,"
        " error_message, verification_method, passed, verification_details"
        f" FROM executions INDEXED BY executions_failures WHERE {where} AND {FAILED}"
        " ORDER BY timestamp) GROUP BY 1, 2, 4, 5, 6, 7, 8",
        args,
    ).fetchall()
    return Analysis(
        task_id=task_id,
        since=since,
        until=until,
        version=version,
        overall=overall.stats("*", "*", version or "*"),
        groups=tuple(
            tally.stats(*key)
            for key, tally in sorted(groups.items(), key=lambda kv: (-kv[1].n, kv[0]))
        ),
        trend=trend,
        failures=_patterns(failed, overall.n, top),
        variant_executions=dict(variants),
    )
