"""Recorded executions per second with N processes on one store: SQLite file vs PostgreSQL.

Each process runs one engine (durable: an execution returns once its record is committed) over
an instant in-process provider with ``engine.map`` (64 in flight), so recording is what limits
throughput. The processes start together (a shared start time) and the figure is every
execution of every process divided by the wall time from the start to the last one finishing.
SQLite: all processes share one ``tlm.db`` in one data directory (WAL, ``synchronous=NORMAL``).
PostgreSQL: a server started for the run from Debian's binaries (``initdb``, default settings:
``fsync`` and ``synchronous_commit`` on), one database. After each run the store is counted:
``records`` must equal the executions (each recorded exactly once).

``python -m benchmarks.scale [-n N] [--processes 1 2 4]`` prints the figures.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path

__all__ = ("BACKENDS", "measure", "main")

BACKENDS = ("sqlite", "postgresql")
ROOT = Path(__file__).resolve().parents[1]

_WORKER = textwrap.dedent(
    """
    import json, sys, time
    import anyio, attrs
    from benchmarks.fixtures import INPUT, MODELS, TASK_ID, InstantProvider, build_engine

    data_dir, database = sys.argv[1], sys.argv[2] or None
    n, start_at = int(sys.argv[3]), float(sys.argv[4])

    async def main() -> None:
        engine = build_engine(__import__("pathlib").Path(data_dir),
                              providers=dict.fromkeys(MODELS, InstantProvider()))
        engine.config = attrs.evolve(engine.config, database=database)
        async with engine:
            await engine.execute(TASK_ID, INPUT)  # warm up: open the store
            while time.time() < start_at:
                await anyio.sleep(0.001)
            began = time.time()
            inputs = ({**INPUT, "job_id": f"{i}"} for i in range(n))
            async with engine.map(TASK_ID, inputs, max_in_flight=64) as results:
                async for result in results:
                    if result.error is not None:
                        raise result.error
            print(json.dumps({"began": began, "ended": time.time(), "n": n + 1}))

    anyio.run(main)
    """
)


def _run(
    backend: str, processes: int, n: int, database: str | None, data_dir: Path
) -> dict[str, float]:
    start_at = time.time() + 3.0 + processes  # every worker has opened its engine by then
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(data_dir), database or "", str(n), str(start_at)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    outputs = [w.communicate(timeout=900)[0] for w in workers]
    if any(w.returncode for w in workers):
        raise RuntimeError(f"a {backend} worker failed: {outputs}")
    found = [json.loads(out.strip().splitlines()[-1]) for out in outputs]
    wall = max(f["ended"] for f in found) - min(f["began"] for f in found)
    from tlm.store.backend import open_store

    store = open_store(data_dir, database)
    try:
        records = store.count()
    finally:
        store.close()
    return {"executions/s": processes * n / wall, "records": records,
            "executions": sum(f["n"] for f in found)}  # fmt: skip


def measure(n: int, counts: Sequence[int]) -> dict[str, dict[str, float]]:
    """``"{backend} {processes}"`` -> figures of one run each, side by side."""
    from tlm.testing.postgres_server import PostgresServer

    server = PostgresServer(fsync=True)
    results: dict[str, dict[str, float]] = {}
    try:
        for processes in counts:
            for backend in BACKENDS:
                with tempfile.TemporaryDirectory() as tmp:
                    database = server.create_database() if backend == "postgresql" else None
                    results[f"{backend} {processes}"] = _run(
                        backend, processes, n, database, Path(tmp)
                    )
    finally:
        server.close()
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """Print the figures."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scale")
    parser.add_argument("-n", type=int, default=2000, help="executions per process")
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2, 4])
    args = parser.parse_args(argv)
    for key, figures in measure(args.n, args.processes).items():
        print(f"{key:>14}: {json.dumps(figures)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
