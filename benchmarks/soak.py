"""Soak: executions through ``engine.map`` against a faulty server; every one must be on disk.

The fake OpenAI-compatible server of ``tlm.testing`` (a real socket, in this process) answers 30%
of the requests with a fault, every kind in turn: 429 (``Retry-After: 0``), 500, 503, a reset
connection, a truncated body, malformed JSON, a hang (the execution's 2 s deadline ends it), a
context-length error, a 401, and a reply that is not valid output; the rest get a valid
extraction. Every 1,000th input carries a lone surrogate (``"\\ud800"``). Three models share the
server; the provider retries (3 attempts, short back-off) and the engine falls back to the next
model, with the store on, durable (the default), 64 in flight.

Reported: executions returned vs records on disk (must be equal), root spans still open at the
end (must be 0), records lost (saved to the fallback file instead), RSS after 1,000 executions,
at the end and at its peak (the fake server's request log is cleared as it goes: it is not TLM's
memory), time, and the outcomes by error type.

``python -m benchmarks.soak [-n N] [--json]``; the harness runs it in a fresh process.
"""

from __future__ import annotations

import argparse
import collections
import gc
import json
import os
import random
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import anyio

from benchmarks.fixtures import (
    INPUT,
    MODELS,
    OUTPUT_TEXT,
    REPO,
    TASK_ID,
    build_engine,
    catalog_data,
)
from benchmarks.measure import rss_bytes
from tlm.catalog import Catalog
from tlm.providers.openai_compat import OpenAICompatProvider
from tlm.providers.retry import RetryingProvider, RetryPolicy
from tlm.telemetry.light import LightTracerProvider
from tlm.testing import (
    FakeOpenAIServer,
    Reply,
    context_length_exceeded,
    hang,
    malformed,
    rate_limited,
    reset,
    server_error,
    truncated,
    unauthorized,
)

__all__ = ("FAULTS", "soak", "run_in_subprocess", "main")

FAULT_RATE = 0.30
POISON_EVERY = 1_000
IN_FLIGHT = 64
DEADLINE_S = 2.0
FAULTS: dict[str, Any] = {
    "429": lambda: rate_limited(retry_after=0),
    "500": lambda: server_error(500),
    "503": lambda: server_error(503),
    "reset": reset,
    "truncated": truncated,
    "malformed": malformed,
    "hang": hang,
    "context length": context_length_exceeded,
    "401": unauthorized,
    "invalid output": lambda: '{"job_title": 42}',
}
"""Fault kind -> a reply of that kind (injected in turn)."""


class _FaultyScript:
    """The server's script: a valid extraction, or (30%) the next kind of fault."""

    def __init__(self, seed: int = 12) -> None:
        self._rng = random.Random(seed)
        self._kinds = list(FAULTS)
        self.sent: collections.Counter[str] = collections.Counter()

    def __call__(self, body: dict[str, Any]) -> Reply | str:
        if self._rng.random() >= FAULT_RATE:
            self.sent["ok"] += 1
            return OUTPUT_TEXT
        kind = self._kinds[sum(self.sent.values()) % len(self._kinds)]
        self.sent[kind] += 1
        reply: Reply | str = FAULTS[kind]()
        return reply


def _inputs(count: int) -> Iterator[dict[str, Any]]:
    for number in range(count):
        if number % POISON_EVERY == POISON_EVERY - 1:
            yield {**INPUT, "job_posting": INPUT["job_posting"] + " \ud800", "job_id": f"p{number}"}
        else:
            yield {**INPUT, "job_id": f"job-{number}"}


async def soak(n: int) -> dict[str, Any]:
    """Run the soak over ``n`` inputs and return its figures."""
    script = _FaultyScript()
    found: dict[str, Any] = {"executions": n}
    outcomes: collections.Counter[str] = collections.Counter()
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        async with FakeOpenAIServer(script) as server:
            catalog = Catalog.from_data(catalog_data(MODELS, base_url=server.base_url))
            http = OpenAICompatProvider(
                name="bench", base_url=server.base_url, catalog=catalog, connector_limit=IN_FLIGHT
            )
            policy = RetryPolicy(max_attempts=3, base_delay_s=0.01, max_delay_s=0.1)
            provider = RetryingProvider(http, policy)
            engine = build_engine(
                data_dir, providers=dict.fromkeys(MODELS, provider), catalog=catalog
            )
            options = {"budget": {"deadline_s": DEADLINE_S}}
            started = time.perf_counter()
            returned = 0
            async with engine:
                async with engine.map(
                    TASK_ID, _inputs(n), options=options, max_in_flight=IN_FLIGHT
                ) as results:
                    async for result in results:
                        returned += 1
                        outcomes[type(result.error).__name__ if result.error else "ok"] += 1
                        if returned % 500 == 0:
                            server.requests.clear()  # the fake server's log is not TLM's memory
                        if returned == 1_000:
                            gc.collect()
                            found["rss after 1,000 MiB"] = rss_bytes() / 2**20
                tracer = engine.tracer_provider
                found["open spans"] = (
                    tracer.open_executions if isinstance(tracer, LightTracerProvider) else -1
                )
                store = engine.store
                assert store is not None
            await http.aclose()
            found["seconds"] = time.perf_counter() - started
        found["returned"] = returned
        found["lost"] = store.lost
        conn = sqlite3.connect(data_dir / "tlm.db")
        try:
            found["records on disk"] = conn.execute("SELECT count(*) FROM executions").fetchone()[0]
            found["records with errors"] = conn.execute(
                "SELECT count(*) FROM executions WHERE status = 'error'"
            ).fetchone()[0]
        finally:
            conn.close()
        fallback = data_dir / "unrecorded.jsonl"
        found["unrecorded lines"] = (
            len(fallback.read_text().splitlines()) if fallback.exists() else 0
        )
    gc.collect()
    found["rss final MiB"] = rss_bytes() / 2**20
    found["rss peak MiB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    found["outcomes"] = dict(outcomes)
    found["faults sent"] = dict(script.sent)
    return found


def run_in_subprocess(n: int) -> dict[str, Any]:
    """Run :func:`soak` in a fresh interpreter (for a clean RSS) and return its figures."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks.soak", "--json", "-n", str(n)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        cwd=REPO,
    )
    figures: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    """Print the soak's figures."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak")
    parser.add_argument("-n", type=int, default=10_000, help="executions")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    found = anyio.run(soak, args.n)
    if args.json:
        sys.stdout.write(json.dumps(found) + "\n")
    else:
        for key, value in found.items():
            print(f"{key:>20}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
