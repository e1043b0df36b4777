"""Workflow runs, rollouts and rankings: one contract on both backends (SQLite/file, PostgreSQL)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from tlm.definition.model import RankingCriteria
from tlm.errors import ConfigurationError, StoreError
from tlm.learn.rankings import ModelPosterior, Rankings, TaskRanking
from tlm.learn.rankings_store import RankingsFile, RankingsStore, open_rankings
from tlm.rollout.records import EvalItem
from tlm.rollout.repository import Rollouts, open_rollouts
from tlm.rollout.state import RolloutStore
from tlm.rollout.state_pg import PostgresRolloutStore
from tlm.workflow.record import StepRun, WorkflowRun
from tlm.workflow.store import WorkflowRuns, WorkflowStore, open_workflow_store
from tlm.workflow.store_pg import PostgresWorkflowStore


def run_of(run_id: str, *, workflow: str = "jobs", at: str = "2026-01-01T10:00:00Z") -> WorkflowRun:
    steps = (
        StepRun("extract", "task", "succeeded", 0.0, 0.5, 0.001, "t", "1.0.0", "e1", "verified"),
        StepRun("score[0]", "function", "failed", 0.5, 0.1, error="ValueError: bad\x00"),
    )
    return WorkflowRun(
        run_id=run_id,
        workflow=workflow,
        status="failed",
        started_at=at,
        latency_s=0.6,
        cost_usd=0.001,
        steps=steps,
        error="ValueError: bad",
        output={"score": 3, "text": "é ☃"},
    )


# --- workflow runs ------------------------------------------------------------------------------


def test_the_factory_picks_the_backend(backend: str | None, tmp_path: Path) -> None:
    store = open_workflow_store(tmp_path / "data", backend)
    assert isinstance(store, WorkflowRuns)
    expected = WorkflowStore if backend is None else PostgresWorkflowStore
    assert type(store) is expected
    assert (tmp_path / "data" / "workflows.db").exists() is False  # nothing until first use


def test_workflow_runs_round_trip_replace_and_list(backend: str | None, tmp_path: Path) -> None:
    store = open_workflow_store(tmp_path / "data", backend)
    first = run_of("aaaa1111", at="2026-01-01T10:00:00Z")
    store.write(first)
    assert store.get("aaaa1111") == first
    assert store.get("aaaa") == first  # a unique prefix
    rewritten = WorkflowRun(
        "aaaa1111", "jobs", "succeeded", first.started_at, 1.0, 0.002, (), None, [1]
    )
    store.write(rewritten)  # same id: replaced, the old steps gone
    assert store.get("aaaa1111") == rewritten
    store.write(run_of("aaaa2222", workflow="other", at="2026-01-02T10:00:00Z"))
    store.write(run_of("bbbb3333", at="2026-01-03T10:00:00Z"))
    with pytest.raises(KeyError, match="ambiguous"):
        store.get("aaaa")
    with pytest.raises(KeyError, match="no workflow run"):
        store.get("zzzz")
    assert [r.run_id for r in store.list()] == ["bbbb3333", "aaaa2222", "aaaa1111"]
    assert [r.run_id for r in store.list(workflow="jobs")] == ["bbbb3333", "aaaa1111"]
    assert [r.run_id for r in store.list(limit=1)] == ["bbbb3333"]
    assert store.list()[0].steps == ()  # lists leave the steps out


def test_workflow_runs_written_by_another_store_are_seen(
    backend: str | None, tmp_path: Path
) -> None:
    writer = open_workflow_store(tmp_path / "data", backend)
    reader = open_workflow_store(tmp_path / "data", backend)
    writers = [
        threading.Thread(target=lambda i=i: writer.write(run_of(f"run{i:04d}"))) for i in range(20)
    ]
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join()
    assert len(reader.list(limit=100)) == 20


def test_postgres_workflow_store_unreachable_is_a_clear_error() -> None:
    with pytest.raises(StoreError, match="cannot open the workflow store") as caught:
        open_workflow_store(".", "postgresql://tlm:s3cret@127.0.0.1:1/nothing")
    assert "s3cret" not in str(caught.value)


def test_a_url_that_is_not_postgres_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="postgresql://"):
        open_workflow_store(tmp_path, "mysql://x@y/z")
    with pytest.raises(ConfigurationError):
        open_rollouts(tmp_path, "sqlite:///x.db")
    with pytest.raises(ConfigurationError):
        open_rankings(tmp_path, "http://x")


# --- rollouts -----------------------------------------------------------------------------------


def rollouts_on(backend: str | None, tmp_path: Path) -> Rollouts:
    return open_rollouts(tmp_path / "data", backend)


def test_rollouts_factory_and_lifecycle(backend: str | None, tmp_path: Path) -> None:
    store = rollouts_on(backend, tmp_path)
    assert isinstance(store, Rollouts)
    assert type(store) is (RolloutStore if backend is None else PostgresRolloutStore)
    assert store.latest("t") is None
    started = store.start("t", "1.0.0", "1.1.0", 0.25, {"min_samples": 5})
    with pytest.raises(StoreError, match="already running"):
        store.start("t", "1.0.0", "1.2.0", 0.5, {})
    assert store.get(started.id[:8]) == started
    with pytest.raises(StoreError, match="too short"):
        store.get(started.id[:3])
    assert store.latest("t") == started
    assert store.decide(started.id, "hold", "not yet", {"n": 3}) is True
    assert store.decide(started.id, "promote", "better", {"n": 50}) is True
    assert store.decide(started.id, "rollback", "late", {}) is False  # already ended
    ended = store.latest("t")
    assert ended is not None
    assert ended.state == "promoted"
    assert ended.ended_at is not None
    assert [d.action for d in store.decisions(started.id)] == ["start", "hold", "promote"]
    assert store.decisions(started.id)[2].evidence == {"n": 50}
    store.pin("t", "1.0.0", "1.1.0")
    pinned = store.latest("t")
    assert pinned is not None
    assert pinned.state == "pinned"
    assert pinned.live_version == "1.0.0"
    assert set(store.all_latest()) == {"t"}
    assert store.all_latest()["t"] == pinned


def test_rollouts_newest_of_equal_start_times_is_the_last_inserted(
    backend: str | None, tmp_path: Path
) -> None:
    store = open_rollouts(tmp_path / "data", backend, clock=lambda: 1000.0)
    store.pin("t", "1.0.0", "0.9.0")
    store.pin("t", "1.1.0", "1.0.0")
    store.pin("t", "1.2.0", "1.1.0")
    latest = store.latest("t")
    assert latest is not None
    assert latest.new_version == "1.2.0"
    assert store.all_latest()["t"].new_version == "1.2.0"


def test_evaluation_runs_and_items(backend: str | None, tmp_path: Path) -> None:
    store = rollouts_on(backend, tmp_path)
    items = [
        EvalItem("h1", 0, {"posting": "a\x00"}, "Chef", "feedback", {"id": "e1"}, "pending", None),
        EvalItem("h2", 1, {"posting": "b"}, None, None, None, "pending", None),
    ]
    run = store.create_run("t", "1.1.0", "1.0.0", {"budget_usd": 1.0}, items)
    assert store.run(run.id[:8]) == run
    assert [i.input_hash for i in store.items(run.id)] == ["h1", "h2"]
    assert store.items(run.id)[0].input == {"posting": "a\x00"}
    store.finish_item(run.id, "h1", {"passed": True}, 0.25)
    store.finish_item(run.id, "h2", {"passed": False}, 0.5)
    assert [i.status for i in store.items(run.id)] == ["done", "done"]
    assert store.items(run.id, pending_only=True) == []
    store.set_run_status(run.id, "done")
    finished = store.run(run.id)
    assert finished.status == "done"
    assert finished.spent_usd == pytest.approx(0.75)
    other = store.create_run("u", "2", "1", {}, [])
    assert [r.id for r in store.runs()] == [other.id, run.id]
    assert [r.id for r in store.runs("t")] == [run.id]


def test_replicas_deciding_at_once_decide_once(backend: str | None, tmp_path: Path) -> None:
    rollout = rollouts_on(backend, tmp_path).start("t", "1", "2", 0.5, {})
    replicas = [rollouts_on(backend, tmp_path) for _ in range(6)]
    taken: list[bool] = []
    barrier = threading.Barrier(len(replicas))

    def decide(store: Rollouts) -> None:
        barrier.wait()
        taken.append(store.decide(rollout.id, "promote", "better", {}))

    threads = [threading.Thread(target=decide, args=(store,)) for store in replicas]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(taken) == [False] * 5 + [True]
    assert [d.action for d in replicas[0].decisions(rollout.id)] == ["start", "promote"]


# --- rankings -----------------------------------------------------------------------------------


def rankings(
    quality_a: float, generated: str = "2026-01-01T00:00:00.000000Z", task: str = "t"
) -> Rankings:
    models = {
        "model-a": ModelPosterior(0.5, quality_a, 1.0 - quality_a, 10, score=quality_a),
        "model-b": ModelPosterior(0.5, 0.5, 0.5, 10, score=0.5),
    }
    return Rankings({task: TaskRanking(RankingCriteria(), models)}, generated, None, 7 * 86_400, 20)


def test_rankings_round_trip_and_version(backend: str | None, tmp_path: Path) -> None:
    store = open_rankings(tmp_path / "data", backend)
    assert isinstance(store, RankingsStore)
    assert store.version() is None
    assert store.load() is None
    store.save(rankings(0.9))
    first = store.version()
    assert first is not None
    loaded = store.load()
    assert loaded is not None
    assert loaded.tasks["t"].order == ("model-a", "model-b")
    assert loaded.to_dict() == rankings(0.9).to_dict()
    other = open_rankings(tmp_path / "data", backend)  # another process's view
    other.save(rankings(0.1, "2026-01-02T00:00:00.000000Z"))
    assert store.version() not in (None, first)
    reloaded = store.load()
    assert reloaded is not None
    assert reloaded.tasks["t"].order == ("model-b", "model-a")
    assert reloaded.generated_at == "2026-01-02T00:00:00.000000Z"
    store.close()
    other.close()


def test_rankings_file_is_the_default(tmp_path: Path) -> None:
    store = open_rankings(tmp_path)
    assert isinstance(store, RankingsFile)
    store.save(rankings(0.7))
    assert (tmp_path / "rankings.json").is_file()


def test_malformed_stored_rankings_are_a_located_error(pg_url: str) -> None:
    import psycopg

    store = open_rankings(".", pg_url)
    store.save(rankings(0.5))
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute('UPDATE rankings SET body = \'{"format": 1, "tasks": {}}\'')
    with pytest.raises(ConfigurationError, match=r"invalid rankings .*@ \$"):
        store.load()
    store.close()
