"""What the result cache costs on the hot path: µs per execution with the cache off, all hits,
all misses.

For ``engine.execute`` (one at a time) and ``engine.map`` (64 in flight), store off (the cache
alone), instant in-process provider: the CPU time (``time.process_time``: every thread, the
cache's included; queued stores are flushed before the clock stops) and the wall time of N
executions, divided by N. ``hit``: the same input every time (one miss, then hits); ``miss``:
a new input each time (a lookup that misses plus a store); ``off``: the same new inputs with
the cache off. The cache's cost is ``hit``/``miss`` minus ``off``. On PostgreSQL (``pg`` modes,
when the binaries are there) the cache sits in a local server started for the run.

``python -m benchmarks.cache_cost --json [-n N] [--repeats R]`` prints the figures as JSON (the
harness runs it in a subprocess, also against a baseline checkout for before/after figures).
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio

from benchmarks.fixtures import INPUT, MODELS, TASK_ID, InstantProvider, build_engine
from benchmarks.measure import Figure, figure

__all__ = ("MODES", "measure_all", "main")

MODES = ("execute/off", "execute/hit", "execute/miss", "map/off", "map/hit", "map/miss")
PG_MODES = ("execute/hit pg", "execute/miss pg", "map/hit pg", "map/miss pg")
_WARMUP = 100
_MAP_IN_FLIGHT = 64


def _inputs(kind: str, start: int, count: int) -> list[dict[str, Any]]:
    if kind == "hit":
        return [INPUT] * count
    return [{**INPUT, "job_id": f"NW-{i}"} for i in range(start, start + count)]


async def _measure(mode: str, n: int, database: str | None) -> tuple[float, float]:
    """``(CPU s, wall s)`` of ``n`` executions in ``mode``."""
    call, kind = mode.split(" ")[0].split("/")
    provider = InstantProvider()
    with tempfile.TemporaryDirectory() as tmp:
        engine = build_engine(
            Path(tmp),
            providers=dict.fromkeys(MODELS, provider),
            store=False,
            cache=kind != "off",
            database=database,
        )
        async with engine:

            async def run(inputs: list[dict[str, Any]]) -> None:
                if call == "execute":
                    for value in inputs:
                        result = await engine.execute(TASK_ID, value)
                        if result.error is not None:
                            raise result.error
                    return
                async with engine.map(TASK_ID, inputs, max_in_flight=_MAP_IN_FLIGHT) as results:
                    async for result in results:
                        if result.error is not None:
                            raise result.error

            await run(_inputs(kind, 0, _WARMUP))
            engine.flush()
            gc.collect()
            wall, cpu = time.perf_counter(), time.process_time()
            await run(_inputs(kind, _WARMUP, n))
            engine.flush()
            return time.process_time() - cpu, time.perf_counter() - wall


async def measure_all(
    n: int, repeats: int, modes: Sequence[str] = MODES, database: str | None = None
) -> dict[str, Figure]:
    """Per mode, CPU and wall µs per execution over ``repeats`` interleaved runs."""
    cpu: dict[str, list[float]] = {mode: [] for mode in modes}
    wall: dict[str, list[float]] = {mode: [] for mode in modes}
    for _ in range(repeats):
        for mode in modes:
            spent, elapsed = await _measure(mode, n, database if " pg" in mode else None)
            cpu[mode].append(spent / n * 1e6)
            wall[mode].append(elapsed / n * 1e6)
    figures = {f"{m} cpu": figure(v, "µs") for m, v in cpu.items()}
    figures.update({f"{m} wall": figure(v, "µs") for m, v in wall.items()})
    return figures


def _with_postgres(n: int, repeats: int) -> dict[str, Figure]:
    from tlm.testing.postgres_server import PostgresServer, find_postgres_bin

    if find_postgres_bin() is None:
        return {}
    server = PostgresServer(fsync=True)
    try:
        url = server.create_database()
        return anyio.run(measure_all, n, repeats, PG_MODES, url)
    finally:
        server.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Print the figures (JSON with ``--json``)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cache_cost")
    parser.add_argument("-n", type=int, default=2000, help="executions per run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--postgres", action="store_true", help="also the PostgreSQL cache")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    figures = anyio.run(measure_all, args.n, args.repeats)
    if args.postgres:
        figures.update(_with_postgres(args.n, args.repeats))
    if args.json:
        payload = {k: [f.median, f.min, f.max, list(f.samples)] for k, f in figures.items()}
        sys.stdout.write(json.dumps(payload) + "\n")
    else:
        for mode, fig in figures.items():
            print(f"{mode:>24}: {fig.text()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
