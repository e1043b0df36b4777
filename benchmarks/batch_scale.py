"""Batch throughput, local (``engine.map``) vs Ray (2 engine actors), at the same number in flight.

One JSONL file of N job postings (each a distinct input), the fake OpenAI server in a process of
its own with 20 ms of model latency, the store on. Local: :func:`tlm.batch.run_local_batch` with
32 in flight. Ray: :func:`tlm.batch.run_ray_batch` over a local Ray (``num_cpus=2``, started
before the clock) with 2 actors x 16 in flight, actor start-up included. Both write the output
file and record every execution; figures are inputs per second of wall-clock time.

``python -m benchmarks.batch_scale [-n N] [--repeats R]`` prints the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import anyio

from benchmarks.fake_server import serve_in_subprocess
from benchmarks.fixtures import INPUT, MODELS, REPO, TASK_ID, build_engine, catalog_data
from tlm.catalog import Catalog

__all__ = ("IN_FLIGHT", "ACTORS", "engine_at", "measure", "main")

IN_FLIGHT = 32
ACTORS = 2
LATENCY_MS = 20.0


def _parts(data_dir: Path, base_url: str) -> tuple[Any, Any]:
    from tlm.providers.openai_compat import OpenAICompatProvider

    catalog = Catalog.from_data(catalog_data(MODELS[:1], base_url=base_url))
    provider = OpenAICompatProvider(
        name="bench", base_url=base_url, catalog=catalog, connector_limit=IN_FLIGHT
    )
    engine = build_engine(
        data_dir, providers={MODELS[0]: provider}, models=MODELS[:1], catalog=catalog
    )
    return engine, provider


def engine_at(data_dir: Path, base_url: str) -> Any:
    """The benchmark engine over the fake server at ``base_url`` (built in each Ray actor)."""
    return _parts(data_dir, base_url)[0]


def _inputs(path: Path, n: int) -> Path:
    with path.open("w", encoding="utf-8") as handle:
        for index in range(n):
            handle.write(json.dumps({**INPUT, "job_id": f"NW-{index}"}) + "\n")
    return path


async def _local(base_url: str, inputs: Path, work: Path) -> float:
    from tlm.batch import run_local_batch

    engine, provider = _parts(work / "data", base_url)
    async with engine:
        started = time.perf_counter()
        report = await run_local_batch(
            engine, TASK_ID, inputs, work / "out.jsonl", max_in_flight=IN_FLIGHT, resume=False
        )
        elapsed = time.perf_counter() - started
    await provider.aclose()
    if report.ok != report.inputs:
        raise RuntimeError(f"local batch: {report.failed} failed")
    return report.inputs / elapsed


async def _ray(base_url: str, inputs: Path, work: Path) -> float:
    from tlm.batch import run_ray_batch

    factory = partial(engine_at, work / "data", base_url)
    engine, provider = _parts(work / "data", base_url)
    async with engine:
        started = time.perf_counter()
        report = await run_ray_batch(
            engine, TASK_ID, inputs, work / "out.jsonl", engine_factory=factory,
            actors=ACTORS, max_in_flight=IN_FLIGHT // ACTORS, resume=False,
        )  # fmt: skip
        elapsed = time.perf_counter() - started
    await provider.aclose()
    if report.ok != report.inputs:
        raise RuntimeError(f"Ray batch: {report.failed} failed")
    return report.inputs / elapsed


async def measure(n: int, repeats: int) -> dict[str, list[float]]:
    """Inputs/s of ``n`` inputs, local and on Ray, interleaved ``repeats`` times."""
    import ray

    samples: dict[str, list[float]] = {"local": [], "ray": []}
    previous = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), previous]))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        with serve_in_subprocess(LATENCY_MS, None) as base_url:
            for _ in range(repeats):
                for name, run in (("local", _local), ("ray", _ray)):
                    with tempfile.TemporaryDirectory() as tmp:
                        work = Path(tmp)
                        inputs = _inputs(work / "in.jsonl", n)
                        samples[name].append(await run(base_url, inputs, work))
    finally:
        ray.shutdown()
        if previous is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = previous
    return samples


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.batch_scale")
    parser.add_argument("-n", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args(argv)
    samples = anyio.run(measure, args.n, args.repeats)
    for name, values in samples.items():
        print(f"{name}: {', '.join(f'{v:,.0f}' for v in values)} inputs/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
