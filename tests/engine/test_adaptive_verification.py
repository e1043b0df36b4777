"""Cold-start consensus and risk-based lighter verification, driven by the task's own history."""

from __future__ import annotations

import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tests.engine.conftest import MODELS, ScriptedModels, catalog_data, make_task, reply
from tlm.catalog import Catalog
from tlm.definition.registry import DefinitionRegistry
from tlm.engine import Engine, EngineConfig
from tlm.learn.coldstart import VerificationPolicy

CHECKED: list[str] = []


async def checker(payload: Mapping[str, Any]) -> dict[str, Any]:
    CHECKED.append(payload["execution_id"])
    return {"passed": True, "confidence": 0.9}


def build(tmp_path: Path, models: ScriptedModels, policy: VerificationPolicy) -> Engine:
    now = [0.0]

    def clock() -> float:
        now[0] += 31.0  # every reading is past the 30 s history cache
        return now[0]

    task = make_task(
        verification={
            "method": "external",
            "parameters": {"function": "checker"},
            "fallback_strategy": "fail",
        },
        risk="low",
    )
    return Engine(
        EngineConfig(data_dir=tmp_path / "data", models=MODELS, cache=False),
        registry=DefinitionRegistry([task]),
        catalog=Catalog.from_data(catalog_data()),
        providers=dict.fromkeys(MODELS, models),
        functions={"checker": checker},
        verification_policy=policy,
        clock=clock,
    )


async def test_a_new_task_is_verified_by_consensus_until_it_has_history(
    tmp_path: Path, models: ScriptedModels
) -> None:
    CHECKED.clear()
    models.handlers["*"] = reply({"title": "Chef"})
    policy = VerificationPolicy(min_samples=2, reliable_samples=1000)
    async with build(tmp_path, models, policy) as engine:
        first = await engine.execute("title_extraction", {"posting": "Chef"})
        second = await engine.execute("title_extraction", {"posting": "Cook"})
        third = await engine.execute("title_extraction", {"posting": "Baker"})
    assert first.verdict is not None
    assert first.verdict.method == "consensus"
    assert first.verdict.details["cold_start"] is True
    assert len(first.models_used) == 2  # the quorum of two agreed at once
    assert second.verdict is not None
    assert second.verdict.method == "consensus"
    assert third.verdict is not None
    assert third.verdict.method == "external"  # two decided executions: the definition's own
    assert CHECKED == [third.execution_id]


async def test_a_reliable_model_is_verified_less_but_audited(
    tmp_path: Path, models: ScriptedModels
) -> None:
    CHECKED.clear()
    models.handlers["*"] = reply({"title": "Chef"})
    policy = VerificationPolicy(
        min_samples=0,
        reliable_samples=5,
        thresholds={"low": (0.5, 0.25)},
        rng=random.Random(7),
    )
    async with build(tmp_path, models, policy) as engine:
        results = [
            await engine.execute("title_extraction", {"posting": f"job {i}"}) for i in range(40)
        ]
    verdicts = [r.verdict for r in results if r.verdict is not None]
    skipped = [v for v in verdicts if v.details.get("skipped")]
    audited = [v for v in verdicts if v.details.get("audit")]
    assert all(not v.details.get("skipped") for v in verdicts[:5])  # not trusted on 5 samples
    assert skipped  # later, reliable: lighter verification
    assert audited  # yet an audit sample is always kept
    assert len(CHECKED) == len(verdicts) - len(skipped)
    assert all(r.status == "verified" for r in results)


async def test_cold_start_consensus_also_covers_tasks_declared_without_verification(
    tmp_path: Path, models: ScriptedModels
) -> None:
    models.handlers["*"] = reply({"title": "Chef"})
    engine = Engine(
        EngineConfig(data_dir=tmp_path / "data", models=MODELS, cache=False),
        registry=DefinitionRegistry([make_task()]),  # method "none"
        catalog=Catalog.from_data(catalog_data()),
        providers=dict.fromkeys(MODELS, models),
        verification_policy=VerificationPolicy(min_samples=5),
    )
    async with engine:
        result = await engine.execute("title_extraction", {"posting": "Chef"})
    assert result.verdict is not None
    assert result.verdict.method == "consensus"
    assert result.verdict.details["cold_start"] is True
