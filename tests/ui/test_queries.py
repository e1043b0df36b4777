"""The console's read side: keyset pages, filters, bounded text search, and analysis figures
equal to ``tlm analyze``'s."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest

from benchmarks.ui_pages import synthetic_records
from tlm.learn.analysis import analyze
from tlm.store.sqlite import ExecutionStore
from tlm.telemetry.records import ExecutionRecord, VerificationResults, format_timestamp
from tlm.ui.pages.workflows import step_tree
from tlm.ui.queries import ExecutionFilter, ExecutionQueries
from tlm.ui.textdiff import side_by_side
from tlm.ui.waterfall import waterfall
from tlm.workflow.record import StepRun

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)


def _records() -> list[ExecutionRecord]:
    records = list(synthetic_records(400, now=NOW, days=10))
    # adaptive verification skipped some: they count as neither pass nor fail
    for index in range(0, 400, 37):
        r = records[index]
        if r.verification_results is not None:
            records[index] = attrs.evolve(
                r,
                verification_results=VerificationResults(
                    r.verification_results.method_used, True, 0.9, {"skipped": True}
                ),
            )
    # consensus records name several models: the first is the primary
    records[5] = attrs.evolve(records[5], models_used=("gpt-4o-mini", "smollm2-135m-instruct"))
    return records


@pytest.fixture
def store_and_queries(tmp_path: Path) -> tuple[list[ExecutionRecord], ExecutionQueries]:
    records = _records()
    with ExecutionStore(tmp_path / "tlm.db") as store:
        for record in records:
            store.write(record)
        store.flush()
        for index, record in enumerate(records[::9]):
            store.add_feedback(
                record.execution_id,
                correct=index % 3 != 0,
                score=None if index % 2 else index / 50,
                note="n",
            )
        with_feedback = [store.get(r.execution_id) for r in records]
    queries = ExecutionQueries(tmp_path / "tlm.db")
    return [r for r in with_feedback if r is not None], queries


def _walk(queries: ExecutionQueries, flt: ExecutionFilter, size: int) -> list[str]:
    ids: list[str] = []
    cursor: str | None = None
    while True:
        page = queries.page(flt, size=size, after=cursor)
        ids += [r.execution_id for r in page.rows]
        if page.older is None:
            return ids
        cursor = page.older


def test_keyset_pages_walk_every_record_once_newest_first(
    store_and_queries: tuple[list[ExecutionRecord], ExecutionQueries],
) -> None:
    records, queries = store_and_queries
    expected = [
        r.execution_id
        for r in sorted(records, key=lambda r: (r.timestamp, r.execution_id), reverse=True)
    ]
    assert _walk(queries, ExecutionFilter(), 37) == expected
    # and back: the newer cursor of page 3 leads to page 2
    first = queries.page(ExecutionFilter(), size=20)
    second = queries.page(ExecutionFilter(), size=20, after=first.older)
    third = queries.page(ExecutionFilter(), size=20, after=second.older)
    back = queries.page(ExecutionFilter(), size=20, before=third.newer)
    assert back.rows == second.rows
    assert first.newer is None


@pytest.mark.parametrize(
    ("flt", "keep"),
    [
        (ExecutionFilter(task="skill_decomposition"), lambda r: r.task_id == "skill_decomposition"),
        (ExecutionFilter(version="1.1.0"), lambda r: r.task_version == "1.1.0"),
        (ExecutionFilter(model="gpt-4o-mini"), lambda r: "gpt-4o-mini" in r.models_used),
        (ExecutionFilter(status="error"), lambda r: r.status == "error"),
        (ExecutionFilter(verdict="fail"), lambda r: r.passed is False),
        (ExecutionFilter(verdict="pass"), lambda r: r.passed is True),
        (ExecutionFilter(verdict="none"), lambda r: r.verification_results is None),
        (ExecutionFilter(feedback="any"), lambda r: bool(r.feedback)),
        (ExecutionFilter(feedback="none"), lambda r: not r.feedback),
        (ExecutionFilter(feedback="incorrect"),
         lambda r: any(f.correct is False for f in r.feedback)),
        (ExecutionFilter(since=format_timestamp(NOW - timedelta(days=2))),
         lambda r: r.timestamp >= format_timestamp(NOW - timedelta(days=2))),
        (ExecutionFilter(until=format_timestamp(NOW - timedelta(days=8))),
         lambda r: r.timestamp < format_timestamp(NOW - timedelta(days=8))),
        (ExecutionFilter(text="#17 in Berlin"), lambda r: "#17 in Berlin" in str(r.input)),
        (ExecutionFilter(task="job_detail_extraction", verdict="fail", model="gpt-4o-mini"),
         lambda r: r.task_id == "job_detail_extraction" and r.passed is False
         and "gpt-4o-mini" in r.models_used),
    ],
    ids=lambda v: "" if callable(v) else repr(v)[16:70],
)  # fmt: skip
def test_filters_select_exactly_the_matching_records(
    store_and_queries: tuple[list[ExecutionRecord], ExecutionQueries],
    flt: ExecutionFilter,
    keep: object,
) -> None:
    records, queries = store_and_queries
    expected = {r.execution_id for r in records if keep(r)}  # type: ignore[operator]
    assert expected
    assert set(_walk(queries, flt, 25)) == expected


def test_a_text_search_reads_a_bounded_window_and_continues(
    store_and_queries: tuple[list[ExecutionRecord], ExecutionQueries],
) -> None:
    records, queries = store_and_queries
    flt = ExecutionFilter(text="in Berlin")  # every record matches
    page = queries.page(flt, size=50, search_window=20)
    assert len(page.rows) == 20
    assert page.searched_to is not None
    newest = ExecutionFilter(text="#399 in Berlin")  # one record, within the first window
    assert [r.execution_id for r in queries.page(newest, size=5).rows] == [
        records[399].execution_id
    ]
    ids: list[str] = []
    cursor = None
    pages = 0
    while True:
        found = queries.page(
            ExecutionFilter(text="#3 in Berlin"), size=10, after=cursor, search_window=50
        )
        pages += 1
        ids += [r.execution_id for r in found.rows]
        if found.older is None:
            break
        cursor = found.older
    assert ids == [
        r.execution_id
        for r in sorted(records, key=lambda r: r.timestamp, reverse=True)
        if "#3 in Berlin" in str(r.input)
    ]
    assert pages >= 400 // 50  # the search went on window by window


def _approx(stats: Any) -> Any:
    """``stats`` with every float field wrapped in ``pytest.approx`` (for ``==``)."""
    fields = attrs.asdict(stats, recurse=False)
    return attrs.evolve(
        stats,
        **{k: pytest.approx(v, rel=1e-12) for k, v in fields.items() if isinstance(v, float)},
    )


def _assert_same_figures(got: Any, expected: Any) -> None:
    # sums of costs are added in another order (SQL): equal up to rounding
    assert _approx(got.overall) == expected.overall
    assert [_approx(g) for g in got.groups] == list(expected.groups)
    assert [_approx(t) for t in got.trend] == list(expected.trend)
    assert got.variant_executions == expected.variant_executions
    assert got.failures == expected.failures


def test_figures_stay_right_when_a_past_day_changes(
    store_and_queries: tuple[list[ExecutionRecord], ExecutionQueries], tmp_path: Path
) -> None:
    records, queries = store_and_queries
    task_id = "job_detail_extraction"
    first = queries.analysis(task_id, since=None)
    _assert_same_figures(first, analyze(records, task_id=task_id))
    assert queries.analysis(task_id, since=None) == first  # the days came from the cache
    # a late record five days back, and a replaced one (same id, now failed): both are seen
    late = attrs.evolve(
        next(r for r in records if r.task_id == task_id),
        execution_id="late0000000000000000000000000001",
        feedback=(),  # feedback is not written with a record
        timestamp=format_timestamp(NOW - timedelta(days=5, hours=3)),
    )
    replaced = next(r for r in records if r.task_id == task_id and r.passed is True)
    replaced = attrs.evolve(
        replaced,
        verification_results=VerificationResults("consensus", False, 0.1, {"issues": ["bad"]}),
    )
    with ExecutionStore(tmp_path / "tlm.db") as store:
        store.write(late)
        store.write(replaced)
    changed = [replaced if r.execution_id == replaced.execution_id else r for r in records]
    changed.append(late)
    second = queries.analysis(task_id, since=None)
    assert second.overall.executions == first.overall.executions + 1
    _assert_same_figures(second, analyze(changed, task_id=task_id))


def test_figures_equal_tlm_analyze(
    store_and_queries: tuple[list[ExecutionRecord], ExecutionQueries],
) -> None:
    records, queries = store_and_queries
    since = NOW - timedelta(days=6, hours=5)
    for task_id in ("job_detail_extraction", "skill_decomposition"):
        for version in (None, "1.1.0"):
            chosen = [r for r in records if r.timestamp >= format_timestamp(since)]
            expected = analyze(chosen, task_id=task_id, since=since, version=version)
            got = queries.analysis(task_id, since=format_timestamp(since), version=version)
            _assert_same_figures(got, expected)
            assert got.failures  # the synthetic data has failures
            _assert_same_figures(  # again, from the day cache
                queries.analysis(task_id, since=format_timestamp(since), version=version),
                expected,
            )


def test_waterfall_lays_out_the_span_tree() -> None:
    spans: tuple[dict[str, Any], ...] = (
        {"name": "root", "parent": None, "start_ms": 0, "duration_ms": 200, "status": "ok",
         "kind": "internal", "attributes": {}},
        {"name": "verify", "parent": 0, "start_ms": 150, "duration_ms": 40, "status": "error",
         "kind": "internal", "attributes": {"error.type": "Boom"}},
        {"name": "chat m", "parent": 0, "start_ms": 10, "duration_ms": 100, "status": "ok",
         "kind": "client", "attributes": {"gen_ai.usage.input_tokens": 12, "tlm.cost.usd": 0.1}},
        {"name": "retry", "parent": 2, "start_ms": 60, "duration_ms": 50, "status": "ok",
         "kind": "client", "attributes": {}},
    )  # fmt: skip
    bars = waterfall(spans)
    assert [(b.name, b.depth) for b in bars] == [
        ("root", 0), ("chat m", 1), ("retry", 2), ("verify", 1)
    ]  # fmt: skip
    assert bars[0].left_pct == 0
    assert bars[0].width_pct == 100
    assert bars[1].left_pct == 5
    assert bars[1].width_pct == 50
    assert ("input_tokens", "12") in bars[1].facts
    assert ("cost_usd", "0.1") in bars[1].facts
    assert bars[3].status == "error"
    assert waterfall(()) == ()


def test_side_by_side_pairs_lines() -> None:
    rows = side_by_side("a\nb\nc\n", "a\nB\nc\nd\n")
    assert [(r.tag, r.left, r.right) for r in rows] == [
        ("equal", "a", "a"), ("replace", "b", "B"), ("equal", "c", "c"), ("insert", "", "d")
    ]  # fmt: skip


def test_step_tree_nests_mapped_items_under_their_step() -> None:
    steps = (
        StepRun("b[1]", "task", "failed", 1.0, 1.0),
        StepRun("a", "task", "succeeded", 0.0, 1.0),
        StepRun("b[0]", "task", "succeeded", 1.0, 1.0),
    )
    rows = step_tree(steps)
    assert [(r["group"], r["depth"], r["step"].path if r["step"] else None) for r in rows] == [
        (None, 0, "a"), ("b", 0, None), (None, 1, "b[0]"), (None, 1, "b[1]")
    ]  # fmt: skip
