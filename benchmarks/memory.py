"""RSS after N streamed executions: does memory stay flat when the stream gets 10 times longer?

One fresh process streams ``--large`` executions through ``engine.map`` (instant provider, store
on, 64 in flight) from a generator and reports its resident set size (after a flush and a garbage
collection) once ``--small`` and once ``--large`` results were consumed.

``python -m benchmarks.memory --small 10000 --large 100000`` prints the figures as JSON.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import anyio

from benchmarks.fixtures import INPUT, MODELS, REPO, TASK_ID, InstantProvider, build_engine
from benchmarks.measure import rss_bytes

__all__ = ("stream_rss", "measure_in_subprocess", "main")


def _inputs(count: int) -> Iterator[dict[str, Any]]:
    for number in range(count):
        yield {**INPUT, "job_id": f"job-{number}"}


async def stream_rss(small: int, large: int, in_flight: int = 64) -> dict[str, int]:
    """RSS in bytes at the start, after ``small`` and after ``large`` streamed executions."""
    provider = InstantProvider()
    found: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        engine = build_engine(Path(tmp), providers=dict.fromkeys(MODELS, provider), store=True)
        async with engine:
            gc.collect()
            found["start"] = rss_bytes()
            done = 0
            async with engine.map(TASK_ID, _inputs(large), max_in_flight=in_flight) as results:
                async for result in results:
                    if result.error is not None:
                        raise result.error
                    done += 1
                    if done in (small, large):
                        engine.flush()
                        gc.collect()
                        found[str(done)] = rss_bytes()
            if engine.store is not None:
                found["records"] = engine.store.count()
    return found


def measure_in_subprocess(small: int, large: int) -> dict[str, int]:
    """Run :func:`stream_rss` in a fresh interpreter and return its figures."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks.memory", "--small", str(small), "--large", str(large)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        cwd=REPO,
    )
    figures: dict[str, int] = json.loads(completed.stdout.strip().splitlines()[-1])
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    """Print the RSS figures as JSON."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.memory")
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--large", type=int, default=100_000)
    args = parser.parse_args(argv)
    if not 0 < args.small < args.large:
        parser.error("need 0 < --small < --large")
    sys.stdout.write(json.dumps(anyio.run(stream_rss, args.small, args.large)) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
