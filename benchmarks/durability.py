"""What the durability contract costs: durable (return after commit) vs relaxed (after queueing).

Both modes run side by side in one process, interleaved per repeat, against an instant in-process
provider with the store on (so the commit wait is all that differs): ``engine.execute`` one at a
time (wall-clock latency per execution, p50 and p99) and ``engine.map`` with 64 in flight
(wall-clock per execution, i.e. 1 / throughput), once with the instant provider (the pipeline
then holds about 2 executions at a time, so there is little to group: about one transaction per
1.5 executions) and once with 10 ms of model latency (64 really in flight: one transaction serves
about 10 executions), each with the CPU time per execution of the whole process (writer thread
included; the store is flushed before the clock stops, so relaxed mode pays its commits too).

``python -m benchmarks.durability [-n N] [--repeats R]`` prints the figures.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import anyio
import attrs

from benchmarks.fixtures import INPUT, MODELS, TASK_ID, InstantProvider, build_engine
from benchmarks.measure import Figure, figure, percentile
from tlm.engine import Engine
from tlm.engine.config import Durability
from tlm.providers.base import ChatRequest, ChatResponse

__all__ = ("MODES", "measure_mode", "measure_all", "main")

MODES: tuple[Durability, ...] = ("durable", "relaxed")
_WARMUP = 100
_MAP_IN_FLIGHT = 64
_LATENCY_S = 0.01


class _SlowProvider(InstantProvider):
    """The instant provider behind a fixed model latency."""

    async def complete(self, request: ChatRequest, /) -> ChatResponse:
        await anyio.sleep(_LATENCY_S)
        return await super().complete(request)


def _engine(data_dir: Path, mode: Durability, provider: InstantProvider) -> Engine:
    engine = build_engine(data_dir, providers=dict.fromkeys(MODELS, provider))
    engine.config = attrs.evolve(engine.config, durability=mode)  # same settings, this mode
    return engine


async def measure_mode(mode: Durability, n: int) -> dict[str, float]:
    """Per-execution figures (µs) of ``n`` executions in ``mode``."""
    with tempfile.TemporaryDirectory() as tmp:
        engine = _engine(Path(tmp), mode, InstantProvider())
        async with engine:
            for _ in range(_WARMUP):
                await engine.execute(TASK_ID, INPUT)
            engine.flush()
            gc.collect()
            latencies = []
            start = time.perf_counter()
            cpu = time.process_time()
            for _ in range(n):
                began = time.perf_counter()
                await engine.execute(TASK_ID, INPUT)
                latencies.append((time.perf_counter() - began) * 1e6)
            execute_wall = (time.perf_counter() - start) / n * 1e6
            engine.flush()
            execute_cpu = (time.process_time() - cpu) / n * 1e6
            start = time.perf_counter()
            cpu = time.process_time()
            inputs = itertools.repeat(INPUT, n)
            async with engine.map(TASK_ID, inputs, max_in_flight=_MAP_IN_FLIGHT) as results:
                async for result in results:
                    if result.error is not None:
                        raise result.error
            map_wall = (time.perf_counter() - start) / n * 1e6
            engine.flush()
            map_cpu = (time.process_time() - cpu) / n * 1e6
        slow = _engine(Path(tmp) / "slow", mode, _SlowProvider())
        async with slow:
            start = time.perf_counter()
            cpu = time.process_time()
            inputs = itertools.repeat(INPUT, n)
            async with slow.map(TASK_ID, inputs, max_in_flight=_MAP_IN_FLIGHT) as results:
                async for result in results:
                    if result.error is not None:
                        raise result.error
            slow_wall = (time.perf_counter() - start) / n * 1e6
            slow.flush()
            slow_cpu = (time.process_time() - cpu) / n * 1e6
    return {
        "execute p50": percentile(latencies, 50),
        "execute p99": percentile(latencies, 99),
        "execute mean": statistics.fmean(latencies),
        "execute wall": execute_wall,
        "execute cpu": execute_cpu,
        "map wall": map_wall,
        "map cpu": map_cpu,
        "map 10 ms wall": slow_wall,
        "map 10 ms cpu": slow_cpu,
    }


async def measure_all(n: int, repeats: int) -> dict[str, Figure]:
    """``"{mode} {figure}"`` -> figure over ``repeats`` interleaved runs, plus the differences."""
    samples: dict[str, list[float]] = {}
    for _ in range(repeats):
        found = {mode: await measure_mode(mode, n) for mode in MODES}
        for mode, figures in found.items():
            for key, value in figures.items():
                samples.setdefault(f"{mode} {key}", []).append(value)
        for key in found["durable"]:
            added = found["durable"][key] - found["relaxed"][key]
            samples.setdefault(f"added {key}", []).append(added)
    return {key: figure(values, "µs") for key, values in samples.items()}


def main(argv: Sequence[str] | None = None) -> int:
    """Print the figures."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.durability")
    parser.add_argument("-n", type=int, default=2000, help="executions per run and mode")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    figures = anyio.run(measure_all, args.n, args.repeats)
    for key, fig in figures.items():
        print(f"{key:>28}: {fig.text()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
