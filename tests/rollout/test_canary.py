"""Canary rollouts over the fake server: traffic split, promotion, rollback, shared state."""

from __future__ import annotations

from pathlib import Path

import pytest

from tlm.errors import StoreError
from tlm.rollout.decide import CanaryPolicy
from tlm.rollout.router import bucket_of
from tlm.rollout.state import RolloutStore
from tlm.testing import FakeOpenAIServer

from .support import CHECKED, TASK, Behaviour, engine, posting

POLICY = CanaryPolicy(min_samples=20, min_rollback_samples=8, max_samples=400)


def start(data_dir: Path, share: float = 0.5, policy: CanaryPolicy = POLICY) -> str:
    store = RolloutStore.in_data_dir(data_dir)
    return store.start(TASK, "1.0.0", "1.1.0", share, policy.to_dict()).id


def test_the_split_is_stable_and_close_to_the_share() -> None:
    inputs = [posting(i) for i in range(4000)]
    buckets = [bucket_of("rollout-1", value) for value in inputs]
    assert buckets == [bucket_of("rollout-1", value) for value in inputs]
    share = sum(b < 0.1 for b in buckets) / len(buckets)
    assert 0.085 < share < 0.115
    # Key order does not matter; another rollout splits differently.
    assert bucket_of("r", {"a": 1, "b": 2}) == bucket_of("r", {"b": 2, "a": 1})
    assert [b < 0.5 for b in buckets[:64]] != [bucket_of("rollout-2", v) < 0.5 for v in inputs[:64]]


async def test_unpinned_traffic_is_split_and_the_same_input_keeps_its_version(
    tmp_path: Path,
) -> None:
    behaviour = Behaviour()
    start(tmp_path, share=0.3)
    async with FakeOpenAIServer(behaviour) as server, engine(server, tmp_path) as live:
        first = [(await live.execute(TASK, posting(i))).task_version for i in range(40)]
        again = [(await live.execute(TASK, posting(i))).task_version for i in range(40)]
        pinned = await live.execute(TASK, posting(1), version="1.0.0")
    assert first == again
    assert set(first) == {"1.0.0", "1.1.0"}
    assert pinned.task_version == "1.0.0"  # an explicit version is never routed


async def test_a_new_version_that_degrades_is_rolled_back_within_the_guardrail(
    tmp_path: Path,
) -> None:
    degrade_after = 10
    behaviour = Behaviour(v2=lambda title, calls: title if calls < degrade_after else "Janitor")
    rollout_id = start(tmp_path)
    async with (
        FakeOpenAIServer(behaviour) as server,
        engine(server, tmp_path, verification=CHECKED) as live,
    ):
        assert live.rollouts is not None
        live.rollouts.check_every = 5
        versions = []
        for i in range(300):
            versions.append((await live.execute(TASK, posting(i))).task_version)
            if live.rollouts.decisions:
                break
        after = [(await live.execute(TASK, posting(i))).task_version for i in range(300, 340)]

    store = RolloutStore.in_data_dir(tmp_path)
    rollout = store.get(rollout_id)
    assert rollout.state == "rolled_back"
    decision = store.decisions(rollout_id)[-1]
    assert decision.action == "rollback"
    assert decision.actor == "auto"
    evidence = decision.evidence
    assert evidence["p_worse"] >= POLICY.confidence
    # Rolled back soon after the answers degraded: within the rollback guardrail plus one
    # check interval of the first bad answer.
    assert evidence["new"]["judged"] <= degrade_after + POLICY.min_rollback_samples + 5
    assert evidence["new"]["judged"] >= POLICY.min_rollback_samples
    assert after == ["1.0.0"] * 40


async def test_a_new_version_that_holds_is_promoted(tmp_path: Path) -> None:
    behaviour = Behaviour()  # both versions right; 1.1.0 is cheaper
    rollout_id = start(tmp_path)
    async with (
        FakeOpenAIServer(behaviour) as server,
        engine(server, tmp_path, verification=CHECKED) as live,
    ):
        assert live.rollouts is not None
        live.rollouts.check_every = 5
        for i in range(300):
            await live.execute(TASK, posting(i))
            if live.rollouts.decisions:
                break
        after = [(await live.execute(TASK, posting(i))).task_version for i in range(300, 320)]

    store = RolloutStore.in_data_dir(tmp_path)
    assert store.get(rollout_id).state == "promoted"
    decision = store.decisions(rollout_id)[-1]
    assert decision.action == "promote"
    assert "cheaper" in decision.reason
    assert decision.evidence["new"]["judged"] >= POLICY.min_samples
    assert decision.evidence["current"]["judged"] >= POLICY.min_samples
    assert after == ["1.1.0"] * 20


async def test_map_routes_each_input_and_judges_the_canary(tmp_path: Path) -> None:
    behaviour = Behaviour(v2=lambda title, calls: "Janitor")
    rollout_id = start(tmp_path)
    async with (
        FakeOpenAIServer(behaviour) as server,
        engine(server, tmp_path, verification=CHECKED) as live,
    ):
        assert live.rollouts is not None
        live.rollouts.check_every = 5
        async with live.map(TASK, [posting(i) for i in range(200)], max_in_flight=4) as results:
            versions = {result.task_version async for result in results}
    assert versions == {"1.0.0", "1.1.0"}
    assert RolloutStore.in_data_dir(tmp_path).get(rollout_id).state == "rolled_back"


async def test_replicas_share_the_split_and_the_decision(tmp_path: Path) -> None:
    behaviour = Behaviour()
    rollout_id = start(tmp_path)
    async with (
        FakeOpenAIServer(behaviour) as server,
        engine(server, tmp_path) as one,
        engine(server, tmp_path) as two,
    ):
        assert one.rollouts is not None
        assert two.rollouts is not None
        for i in range(20):
            a = await one.execute(TASK, posting(i))
            b = await two.execute(TASK, posting(i))
            assert a.task_version == b.task_version
        # A person pins 1.0.0 through another store object (another process, in production).
        RolloutStore.in_data_dir(tmp_path).pin(TASK, "1.0.0", "1.0.0", actor="tester")
        await one.rollouts.refresh(force=True)
        await two.rollouts.refresh(force=True)
        assert {(await one.execute(TASK, posting(i))).task_version for i in range(20)} == {"1.0.0"}
        assert {(await two.execute(TASK, posting(i))).task_version for i in range(20)} == {"1.0.0"}
    store = RolloutStore.in_data_dir(tmp_path)
    assert store.get(rollout_id).state == "aborted"
    assert [d.action for d in store.decisions(rollout_id)] == ["start", "abort"]


def test_only_one_replica_takes_a_decision(tmp_path: Path) -> None:
    rollout_id = start(tmp_path)
    a, b = RolloutStore.in_data_dir(tmp_path), RolloutStore.in_data_dir(tmp_path)
    assert a.decide(rollout_id, "promote", "first", {"n": 1}) is True
    assert b.decide(rollout_id, "rollback", "second", {"n": 2}) is False
    assert a.get(rollout_id).state == "promoted"
    assert [d.reason for d in b.decisions(rollout_id)] == [
        "50% of inputs to 1.1.0",
        "first",
    ]
    start(tmp_path)  # the promoted one ended: a new one may start …
    with pytest.raises(StoreError, match="already running"):
        start(tmp_path)  # … but not two at once


def test_rollout_ids_must_be_long_enough_and_unique(tmp_path: Path) -> None:
    rollout_id = start(tmp_path)
    store = RolloutStore.in_data_dir(tmp_path)
    assert store.get(rollout_id[:8]).id == rollout_id
    with pytest.raises(StoreError, match="too short"):
        store.get("")
    with pytest.raises(StoreError, match="no rollout"):
        store.get("ffffffffffff")
    with pytest.raises(ValueError, match="share"):
        store.start(TASK, "1.0.0", "1.1.0", 1.0, {})
