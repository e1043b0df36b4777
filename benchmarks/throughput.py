"""Throughput, latency percentiles and client CPU against the fake server in another process.

The server (:mod:`benchmarks.fake_server`) runs in its own process, pinned to one core while the
client is pinned to another where the machine allows. At each model latency, with the same number
of calls in flight, the same job-extraction work goes through:

- ``raw aiohttp`` (the floor): POST the chat body, decode the JSON, parse the reply's JSON;
- ``tlm``: ``engine.map`` with the OpenAI-compatible provider, store on (validation, spans, record);
- the peers (:mod:`benchmarks.peers`, those installed; extra ``bench-peers``): the openai SDK,
  LangChain, DSPy, LiteLLM, Instructor and Pydantic AI, each rendering the prompt, calling the
  model and parsing and validating the JSON its own way, with its caches, telemetry and retries
  off where it allows; each runs in a fresh process of its own (pinned like this one).

Latency is per call, from its start to its parsed result; CPU is the client process's
``time.process_time`` divided by the calls.
"""

from __future__ import annotations

import itertools
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks import peers
from benchmarks.fake_server import serve_in_subprocess
from benchmarks.fixtures import (
    INPUT,
    MODELS,
    TASK_ID,
    benchmark_task,
    build_engine,
    catalog_data,
)
from benchmarks.measure import Figure, figure, percentile, pinned
from benchmarks.peers.base import Run, Runner, measured
from benchmarks.peers.openai_sdk import run as openai_sdk
from tlm.catalog import Catalog
from tlm.providers.openai_compat import OpenAICompatProvider

__all__ = (
    "Run",
    "RUNNERS",
    "PEERS_LEFT_OUT",
    "raw_aiohttp",
    "tlm_engine",
    "openai_sdk",
    "run_latency",
)


def _prompt_and_schema() -> tuple[str, str, dict[str, Any]]:
    task = benchmark_task()
    variant = next(p for p in task.prompts if p.id == "standard")
    prompt = variant.text
    for name in variant.template_variables:
        prompt = prompt.replace("{{" + name + "}}", str(INPUT.get(name, "")))
    schema = dict(task.output.schema)
    system = "Answer with one JSON value that satisfies this JSON Schema:\n" + json.dumps(schema)
    return system, prompt, schema


async def raw_aiohttp(base_url: str, calls: int, in_flight: int) -> Run:
    """The floor: the same HTTP calls with a bare aiohttp session."""
    system, prompt, schema = _prompt_and_schema()
    body = {
        "model": MODELS[0],
        "messages": [{"role": "system", "content": system}, {"role": "user", "content": prompt}],
        "temperature": 0.0,
        "max_tokens": 1024,
        "seed": 0,
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "output", "schema": schema, "strict": False},
        },
    }
    url = f"{base_url}/chat/completions"
    connector = aiohttp.TCPConnector(limit=in_flight)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one() -> None:
            async with session.post(url, json=body) as response:
                payload = await response.json()
            json.loads(payload["choices"][0]["message"]["content"])

        return await measured(calls, in_flight, one)


async def tlm_engine(base_url: str, calls: int, in_flight: int) -> Run:
    """TLM: ``engine.map`` over the OpenAI-compatible provider, store on."""
    data = catalog_data(MODELS[:1], base_url=base_url)
    catalog = Catalog.from_data(data)
    provider = OpenAICompatProvider(
        name="bench", base_url=base_url, catalog=catalog, connector_limit=in_flight
    )
    with tempfile.TemporaryDirectory() as tmp:
        engine = build_engine(
            Path(tmp),
            providers={MODELS[0]: provider},
            models=MODELS[:1],
            catalog=catalog,
            store=True,
        )
        async with engine:

            async def stream(count: int) -> list[float]:
                latencies: list[float] = []
                inputs = itertools.repeat(INPUT, count)
                async with engine.map(TASK_ID, inputs, max_in_flight=in_flight) as results:
                    async for result in results:
                        if result.error is not None:
                            raise result.error
                        latencies.append(result.latency_s)
                return latencies

            await stream(2 * in_flight)
            engine.flush()
            wall = time.perf_counter()
            cpu = time.process_time()
            latencies = await stream(calls)
            engine.flush()
            run = Run(time.perf_counter() - wall, time.process_time() - cpu, tuple(latencies))
        await provider.aclose()
    return run


RUNNERS: dict[str, Runner] = {
    "raw aiohttp": raw_aiohttp,
    "tlm": tlm_engine,
    **peers.available(),
}
"""The floor, TLM, then every installed peer (each in a process of its own)."""
PEERS_LEFT_OUT = peers.missing()
"""Peer -> why it is not in :data:`RUNNERS`."""


async def run_latency(
    latency_ms: float, calls: int, in_flight: int, repeats: int, on_step: Callable[[], None]
) -> tuple[dict[str, dict[str, Figure]], bool]:
    """Per runner: throughput, p50, p99 and CPU per call (figures over ``repeats``)."""
    samples: dict[str, dict[str, list[float]]] = {
        name: {"throughput": [], "p50": [], "p99": [], "cpu": []} for name in RUNNERS
    }
    with serve_in_subprocess(latency_ms, core=1) as base_url, pinned(0) as is_pinned:
        for _ in range(repeats):
            for name, runner in RUNNERS.items():
                run = await runner(base_url, calls, in_flight)
                millis = [x * 1000 for x in run.latencies_s]
                samples[name]["throughput"].append(run.calls / run.wall_s)
                samples[name]["p50"].append(percentile(millis, 50))
                samples[name]["p99"].append(percentile(millis, 99))
                samples[name]["cpu"].append(run.cpu_s / run.calls * 1e6)
                on_step()
    units = {"throughput": "calls/s", "p50": "ms", "p99": "ms", "cpu": "µs"}
    figures = {
        name: {key: figure(values, units[key]) for key, values in per.items()}
        for name, per in samples.items()
    }
    return figures, is_pinned
