"""Consensus latency and cost with three models of different latency, with and without early exit.

Three in-process models answer the same valid extraction after 20, 60 and 150 ms. The
job-extraction task is verified by consensus (structured similarity, threshold 0.75) under three
policies:

- ``quorum 2, ask 2``: two votes first (the primary and the next model); the third model is never
  asked when they agree;
- ``quorum 2, ask 3``: all three asked at once; the slowest call is cancelled (and not paid for)
  as soon as two agree: early exit;
- ``quorum 3 (no early exit)``: all three must answer before the verdict.

Latency is the wall time of one ``engine.execute``; cost is the execution's catalog cost.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import anyio
import attrs

from benchmarks.fixtures import (
    INPUT,
    MODELS,
    OUTPUT_TEXT,
    TASK_ID,
    benchmark_task,
    build_engine,
)
from benchmarks.measure import Figure, figure
from tlm.providers.base import ChatRequest, ChatResponse, Usage

__all__ = ("LATENCIES_S", "POLICIES", "SlowModels", "run_policies")

LATENCIES_S = {MODELS[0]: 0.020, MODELS[1]: 0.060, MODELS[2]: 0.150}
POLICIES: dict[str, dict[str, Any]] = {
    "quorum 2, ask 2": {"min_models": 2, "max_models": 3},
    "quorum 2, ask 3 (early exit)": {"min_models": 3, "max_models": 3, "consensus_count": 2},
    "quorum 3 (no early exit)": {"min_models": 3, "max_models": 3, "consensus_count": 3},
}


@attrs.define
class SlowModels:
    """An in-process provider that answers after a fixed latency per model."""

    latencies: Mapping[str, float]
    name: str = "bench"
    completed: list[str] = attrs.Factory(list)

    async def complete(self, request: ChatRequest, /) -> ChatResponse:
        """The valid extraction, after the model's latency."""
        await anyio.sleep(self.latencies[request.model])
        self.completed.append(request.model)
        return ChatResponse(
            text=OUTPUT_TEXT,
            model=request.model,
            provider=self.name,
            usage=Usage(input_tokens=420, output_tokens=80),
            finish_reason="stop",
        )

    async def aclose(self) -> None:
        """Nothing to release."""


async def run_policies(
    n: int,
    repeats: int,
    on_step: Callable[[], None],
    latencies: Mapping[str, float] = LATENCIES_S,
) -> dict[str, dict[str, Figure]]:
    """Per policy: latency (ms), cost (µUSD) and model calls per execution."""
    samples: dict[str, dict[str, list[float]]] = {
        name: {"latency": [], "cost": [], "calls": []} for name in POLICIES
    }
    for _ in range(repeats):
        for name, params in POLICIES.items():
            verification = {
                "method": "consensus",
                "parameters": {
                    "similarity_threshold": 0.75,
                    "similarity_metric": "structured",
                    **params,
                },
                "fallback_strategy": "fail",
            }
            provider = SlowModels(latencies)
            with tempfile.TemporaryDirectory() as tmp:
                engine = build_engine(
                    Path(tmp),
                    providers=dict.fromkeys(MODELS, provider),
                    definitions=[benchmark_task(verification)],
                    store=True,
                )
                async with engine:
                    walls: list[float] = []
                    costs: list[float] = []
                    for _ in range(n):
                        start = time.perf_counter()
                        result = await engine.execute(TASK_ID, INPUT)
                        walls.append(time.perf_counter() - start)
                        costs.append(result.cost_usd)
                        if result.status != "verified":
                            raise RuntimeError(f"{name}: not verified ({result.status})")
            per = samples[name]
            per["latency"].append(sorted(walls)[len(walls) // 2] * 1000)
            per["cost"].append(sum(costs) / n * 1e6)
            per["calls"].append(len(provider.completed) / n)
            on_step()
    units = {"latency": "ms", "cost": "µUSD", "calls": "calls"}
    return {
        name: {key: figure(values, units[key]) for key, values in per.items()}
        for name, per in samples.items()
    }
