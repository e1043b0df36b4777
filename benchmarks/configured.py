"""TLM through the public configuration path beside the raw aiohttp client, in one run.

A service configures TLM the way a user does: a project directory with the task definition
(``definitions/tasks/job_detail_extraction/``) and a catalog (``definitions/models.json``) naming
one hosted model served by the fake server (:mod:`benchmarks.fake_server`, its own process),
``TLM_MODELS`` in the environment, nothing else — the default limits, connection pool, store and
spans. It opens ``tlm.Engine()`` and calls ``engine.execute`` or streams ``engine.map``.
Nothing is injected (no provider, no catalog object), so limits set by default are measured.

``python -m benchmarks.configured --base-url URL [--calls N] [--in-flight N] [--client C]``, run
in a project directory (:func:`write_project`), prints one JSON line ``{"throughput": calls/s,
"p50": ms, "p99": ms, "wall_s": s, "cpu_us": client CPU per call}``. ``--in-flight 1`` calls
``engine.execute`` one at a time (sequential); more use ``engine.map``. ``--client raw`` makes the
same HTTP calls with a bare aiohttp session (the floor, :func:`benchmarks.throughput.raw_aiohttp`)
in the same kind of fresh, pinned process; ``--client tlm-nostore`` sets ``TLM_STORE=0``. The
harness runs it in a subprocess with ``PYTHONPATH`` pointing at this checkout and, with
``--baseline REF``, at REF's ``tlm`` (the same files work for both: a complete catalog is also a
valid project overlay).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio

from benchmarks.fixtures import INPUT, REPO, TASK_ID, catalog_data, task_document
from benchmarks.measure import percentile

__all__ = (
    "MODEL",
    "CLIENTS",
    "write_project",
    "measure",
    "measure_raw",
    "run_in_subprocess",
    "main",
)

MODEL = "bench-a"


def write_project(root: Path, base_url: str) -> None:
    """The project: the benchmark task and a catalog with one model at ``base_url``."""
    task_dir = root / "definitions" / "tasks" / TASK_ID
    task_dir.mkdir(parents=True)
    document = task_document()
    (task_dir / f"{document['version']}.json").write_text(json.dumps(document))
    catalog = catalog_data((MODEL,), base_url=base_url)
    (root / "definitions" / "models.json").write_text(json.dumps(catalog))


async def measure(calls: int, in_flight: int) -> dict[str, float]:
    """Warm up, then time ``calls`` executions through ``tlm.Engine()`` from the cwd's project."""
    import tlm

    async with tlm.Engine() as engine:

        async def stream(count: int) -> list[float]:
            latencies: list[float] = []
            if in_flight == 1:  # sequential: one execute at a time, as a script would
                for _ in range(count):
                    start = time.perf_counter()  # as the caller sees it: the commit included
                    await engine.execute(TASK_ID, INPUT)
                    latencies.append((time.perf_counter() - start) * 1000)
                return latencies
            inputs = itertools.repeat(INPUT, count)
            async with engine.map(TASK_ID, inputs, max_in_flight=in_flight) as results:
                async for result in results:
                    if result.error is not None:
                        raise result.error
                    latencies.append(result.latency_s * 1000)
            return latencies

        await stream(max(2 * in_flight, 100))
        engine.flush()
        started = time.perf_counter()
        cpu = time.process_time()
        latencies = await stream(calls)
        engine.flush()
        cpu = time.process_time() - cpu
        wall = time.perf_counter() - started
    return {
        "throughput": calls / wall,
        "p50": percentile(latencies, 50),
        "p99": percentile(latencies, 99),
        "wall_s": wall,
        "cpu_us": cpu / calls * 1e6,
    }


async def measure_raw(base_url: str, calls: int, in_flight: int) -> dict[str, float]:
    """The floor: the same calls with a bare aiohttp session (warm-up included, then measured)."""
    from benchmarks.throughput import raw_aiohttp

    run = await raw_aiohttp(base_url, calls, in_flight)
    millis = [x * 1000 for x in run.latencies_s]
    return {
        "throughput": run.calls / run.wall_s,
        "p50": percentile(millis, 50),
        "p99": percentile(millis, 99),
        "wall_s": run.wall_s,
        "cpu_us": run.cpu_s / run.calls * 1e6,
    }


CLIENTS = ("raw", "tlm", "tlm-nostore")


def run_in_subprocess(
    tlm_root: Path,
    base_url: str,
    calls: int,
    in_flight: int,
    *,
    core: int | None = 0,
    client: str = "tlm",
) -> dict[str, float]:
    """One measurement with the ``tlm`` package found under ``tlm_root``, in a fresh process."""
    command = [
        sys.executable,
        "-m",
        "benchmarks.configured",
        "--base-url",
        base_url,
        "--calls",
        str(calls),
        "--in-flight",
        str(in_flight),
        "--client",
        client,
    ]
    if core is not None:
        command += ["--core", str(core)]
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "project"
        write_project(project, base_url)
        keep = {k: v for k, v in os.environ.items() if not k.startswith(("TLM_", "OTEL_"))}
        env = {
            **keep,
            "PYTHONPATH": os.pathsep.join([str(tlm_root), str(REPO)]),
            "TLM_MODELS": MODEL,
            "TLM_CACHE": "0",  # every input is the same: measure calls, not cache hits
        }
        if client == "tlm-nostore":
            env["TLM_STORE"] = "0"
        completed = subprocess.run(
            command, cwd=project, env=env, capture_output=True, text=True, check=False
        )
    if completed.returncode != 0:
        raise RuntimeError(f"configured throughput run failed:\n{completed.stderr[-4000:]}")
    result: dict[str, float] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Measure once from the working directory's project; print one JSON line."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.configured")
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--calls", type=int, default=2048)
    parser.add_argument("--in-flight", type=int, default=256)
    parser.add_argument("--core", type=int, default=None, help="pin to this CPU core")
    parser.add_argument("--client", choices=CLIENTS, default="tlm")
    args = parser.parse_args(argv)
    if args.core is not None and hasattr(os, "sched_setaffinity"):
        try:
            os.sched_setaffinity(0, {args.core})
        except OSError:
            pass
    if args.client == "raw":
        figures: dict[str, Any] = anyio.run(measure_raw, args.base_url, args.calls, args.in_flight)
    else:
        figures = anyio.run(measure, args.calls, args.in_flight)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
