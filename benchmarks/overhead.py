"""Engine overhead: CPU µs per execution with an instant in-process provider.

For ``engine.execute`` (one at a time) and ``engine.map`` (64 in flight), with the store on and
off: the CPU time (``time.process_time``: every thread, the store's writer included; the store is
flushed before the clock stops) of N executions of the job-extraction task, minus a baseline loop
that makes the same N calls to the same provider directly, divided by N. Validation of input and
output, prompt rendering, model ranking, spans and the durable record are all inside the figure.

``python -m benchmarks.overhead --json [-n N] [--repeats R]`` prints the figures as JSON (the
harness runs it in a subprocess, also against a baseline checkout for before/after figures).
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import anyio

from benchmarks.fixtures import INPUT, MODELS, TASK_ID, InstantProvider, build_engine
from benchmarks.measure import Figure, figure
from tlm.providers.base import ChatRequest, Message

__all__ = ("MODES", "measure_mode", "measure_all", "main")

MODES = ("execute/store", "execute/no-store", "map/store", "map/no-store")
_WARMUP = 100
_MAP_IN_FLIGHT = 64


async def _baseline(provider: InstantProvider, n: int) -> float:
    request = ChatRequest(
        model=MODELS[0],
        messages=(Message("system", "s"), Message("user", "u")),
        temperature=0.0,
        max_tokens=1024,
        seed=0,
    )
    start = time.process_time()
    for _ in range(n):
        await provider.complete(request)
    return time.process_time() - start


async def measure_mode(mode: str, n: int) -> tuple[float, float]:
    """``(engine CPU s, baseline CPU s)`` for ``n`` executions in ``mode``."""
    call, store = mode.split("/")
    provider = InstantProvider()
    with tempfile.TemporaryDirectory() as tmp:
        engine = build_engine(
            Path(tmp), providers=dict.fromkeys(MODELS, provider), store=store == "store"
        )
        async with engine:

            async def run(count: int) -> None:
                if call == "execute":
                    for _ in range(count):
                        await engine.execute(TASK_ID, INPUT)
                    return
                inputs = itertools.repeat(INPUT, count)
                async with engine.map(TASK_ID, inputs, max_in_flight=_MAP_IN_FLIGHT) as results:
                    async for result in results:
                        if result.error is not None:
                            raise result.error

            await run(_WARMUP)
            engine.flush()
            gc.collect()
            start = time.process_time()
            await run(n)
            engine.flush()
            elapsed = time.process_time() - start
            baseline = await _baseline(provider, n)
    return elapsed, baseline


async def measure_all(n: int, repeats: int, modes: Sequence[str] = MODES) -> dict[str, Figure]:
    """Per mode, the overhead in µs per execution over ``repeats`` runs (interleaved)."""
    samples: dict[str, list[float]] = {mode: [] for mode in modes}
    engine_cpu: dict[str, list[float]] = {mode: [] for mode in modes}
    for _ in range(repeats):
        for mode in modes:
            elapsed, baseline = await measure_mode(mode, n)
            samples[mode].append((elapsed - baseline) / n * 1e6)
            engine_cpu[mode].append(elapsed / n * 1e6)
    figures = {mode: figure(values, "µs") for mode, values in samples.items()}
    figures.update({f"{m} total": figure(v, "µs") for m, v in engine_cpu.items()})
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    """Print the overhead figures (JSON with ``--json``)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.overhead")
    parser.add_argument("-n", type=int, default=2000, help="executions per run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--mode", action="append", choices=MODES, help="default: all")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    figures = anyio.run(measure_all, args.n, args.repeats, tuple(args.mode or MODES))
    if args.json:
        payload = {k: [f.median, f.min, f.max, list(f.samples)] for k, f in figures.items()}
        sys.stdout.write(json.dumps(payload) + "\n")
    else:
        for mode, fig in figures.items():
            print(f"{mode:>24}: {fig.text()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
