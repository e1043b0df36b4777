"""Latency and tokens/s of the embedded local models on the job-extraction task.

For each local model in the catalog: time to prepare the verified model file (assembling it the
first time, a stamp check afterwards), time for its llama.cpp server to start and answer, then N
schema-constrained job-extraction calls (the design document's "structured" prompt) reporting
end-to-end latency, prompt and output tokens, output tokens/s, and how many replies were valid
JSON with the required keys. Each call starts with a distinct request number so llama.cpp cannot
reuse the previous call's prompt cache: every call pays its full prompt processing.

Usage: ``python benchmarks/local_model.py [-n 3] [--model ID ...] [--threads 1]
[--data-dir .tlm/models] [--json]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import anyio

from tlm.catalog import Catalog
from tlm.providers.base import ChatRequest, Message
from tlm.providers.local import LocalProvider

__all__ = ("JOB_POSTING", "JOB_SCHEMA", "job_request", "bench_model", "main")

JOB_POSTING = """\
Senior Software Engineer - Remote (EU time zones)
Company XYZ is looking for a Senior Software Engineer to join our platform team. We are a fast-
growing, fun-loving company with a flat hierarchy, free snacks and a yearly retreat in Portugal!

What you'll do:
- Design, build and maintain Python services that process millions of job postings a day
- Own our PostgreSQL schemas and query performance
- Review code and mentor two junior engineers
- Take part in a fair on-call rotation

What we expect:
- 5+ years of professional Python experience, including asyncio
- Solid SQL and PostgreSQL knowledge
- Experience with Docker and Kubernetes
- Fluent English

We offer 30 days of paid holiday, a learning budget and stock options.
Apply at careers@xyz.example or call +49 30 1234567."""

JOB_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "job_title": {"type": "string"},
        "location": {"type": "string"},
        "responsibilities": {"type": "array", "items": {"type": "string"}},
        "requirements": {"type": "array", "items": {"type": "string"}},
        "contact": {"type": "string"},
    },
    "required": ["job_title", "responsibilities", "requirements"],
}

_PROMPT = (
    "Extract the following information from the job posting in JSON format:\n"
    "- job_title: The title of the position\n"
    "- location: Where the job is located\n"
    "- responsibilities: List of key job responsibilities\n"
    "- requirements: List of technical requirements\n"
    "- contact: Contact information if available\n\n"
    "Exclude company benefits, cultural statements, and marketing content.\n\n"
)


def job_request(model: str, number: int, *, max_tokens: int = 256) -> ChatRequest:
    """The job-extraction request; ``number`` makes its first tokens unique."""
    return ChatRequest(
        model=model,
        messages=(
            Message("system", f"Request {number}. You extract structured data from text."),
            Message("user", _PROMPT + JOB_POSTING),
        ),
        temperature=0,
        max_tokens=max_tokens,
        output_schema=JOB_SCHEMA,
    )


async def bench_model(
    provider: LocalProvider, model: str, runs: int, *, max_tokens: int = 256
) -> dict[str, Any]:
    """Prepare, start and call ``model`` ``runs`` times; the measurements as a dict."""
    t0 = time.perf_counter()
    await provider.prepare(model)
    prepare_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    await provider.start(model)
    start_s = time.perf_counter() - t0
    calls: list[dict[str, Any]] = []
    for number in range(1, runs + 1):
        reply = await provider.complete(job_request(model, number, max_tokens=max_tokens))
        parsed = reply.parsed
        valid = isinstance(parsed, dict) and all(k in parsed for k in JOB_SCHEMA["required"])
        calls.append(
            {
                "latency_s": round(reply.latency_s, 3),
                "input_tokens": reply.usage.input_tokens,
                "output_tokens": reply.usage.output_tokens,
                "tokens_per_s": round(reply.usage.output_tokens / reply.latency_s, 2),
                "finish_reason": reply.finish_reason,
                "valid_json": valid,
            }
        )
    latencies = [c["latency_s"] for c in calls]
    rates = [c["tokens_per_s"] for c in calls]
    return {
        "model": model,
        "prepare_file_s": round(prepare_s, 3),
        "server_start_s": round(start_s, 3),
        "runs": runs,
        "latency_s_median": round(statistics.median(latencies), 3),
        "latency_s_min": min(latencies),
        "latency_s_max": max(latencies),
        "output_tokens_per_s_median": round(statistics.median(rates), 2),
        "valid_json": sum(c["valid_json"] for c in calls),
        "calls": calls,
    }


async def _run(args: argparse.Namespace) -> list[dict[str, Any]]:
    catalog = Catalog.load()
    models = args.model or [card.id for card in catalog.for_provider("local")]
    results = []
    async with LocalProvider(
        catalog=catalog, data_dir=Path(args.data_dir), n_threads=args.threads
    ) as provider:
        for model in models:
            results.append(await bench_model(provider, model, args.n, max_tokens=args.max_tokens))
    return results


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print a table (or JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("-n", type=int, default=3, help="calls per model (default 3, at least 1)")
    parser.add_argument("--model", action="append", help="a local model id (default: all)")
    parser.add_argument("--threads", type=int, default=1, help="server threads (default 1)")
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--data-dir", default=".tlm/models", help="default .tlm/models")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error("-n must be at least 1")
    results = anyio.run(_run, args)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(
        f"{'model':30} {'file s':>7} {'start s':>8} {'lat med':>8} {'lat min':>8} "
        f"{'lat max':>8} {'tok/s':>6} {'in tok':>6} {'out tok':>7} {'valid':>6}"
    )
    for r in results:
        calls = r["calls"]
        print(
            f"{r['model']:30} {r['prepare_file_s']:7.2f} {r['server_start_s']:8.2f} "
            f"{r['latency_s_median']:8.2f} {r['latency_s_min']:8.2f} {r['latency_s_max']:8.2f} "
            f"{r['output_tokens_per_s_median']:6.1f} {calls[0]['input_tokens']:6d} "
            f"{statistics.median(c['output_tokens'] for c in calls):7.0f} "
            f"{r['valid_json']:>3}/{r['runs']}"
        )


if __name__ == "__main__":
    main()
