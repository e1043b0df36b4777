"""Where the client CPU of one execution goes, grouped by what the code does.

TLM runs as a user configures it (:mod:`benchmarks.configured`: a project directory with the task
definition and a catalog, ``TLM_MODELS``, defaults, store on, result cache off) against the fake
OpenAI-compatible server in its own process. Two workloads: ``engine.execute`` one at a time and
``engine.map`` with 64 in flight. The workload process is sampled with ``py-spy`` (every thread,
the store's writer included; idle time left out) when it is installed, else profiled with
``cProfile`` (the event-loop thread only). Each sample goes to the group of the innermost ``tlm``
module on its stack (:data:`GROUPS`), or, with no ``tlm`` frame, to the group of its library
(aiohttp → provider, asyncio → event loop, ...). The process CPU per execution
(``time.process_time``) is then split in proportion to the samples.

``python -m benchmarks.profile_path [--calls N] [--mode execute|map] [--cprofile]`` prints a
table of µs per execution per group (and ``--json``).
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import itertools
import json
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio

from benchmarks.configured import MODEL, write_project
from benchmarks.fake_server import serve_in_subprocess
from benchmarks.fixtures import INPUT, REPO, TASK_ID

__all__ = ("GROUPS", "group_of", "profile", "main")

GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("redaction / key scrubbing", ("tlm/telemetry/redact",)),
    (
        "span machinery",
        (
            "tlm/telemetry/light",
            "tlm/telemetry/spans",
            "tlm/telemetry/scope",
            "tlm/telemetry/calls",
            "tlm/telemetry/conventions",
            "tlm/telemetry/dialects",
            "tlm/telemetry/metrics",
            "tlm/telemetry/content",
            "tlm/telemetry/setup",
            "opentelemetry/",
        ),
    ),
    (
        "record building + serialisation",
        (
            "tlm/telemetry/records",
            "tlm/telemetry/processor",
            "tlm/store/schema",
            "tlm/engine/recording",
        ),
    ),
    (
        "store writer + commit wait",
        ("tlm/store/", "sqlite3/"),
    ),
    (
        "schema + rule checks",
        (
            "tlm/engine/output",
            "tlm/engine/json_values",
            "tlm/engine/compiled",
            "tlm/rules/",
            "tlm/json_reply",
            "fastjsonschema",
            "jsonschema",
        ),
    ),
    ("prompt rendering", ("tlm/prompts",)),
    (
        "provider request/response",
        ("tlm/providers/", "aiohttp/", "yarl/", "multidict/", "aiohappyeyeballs/", "tenacity/"),
    ),
    (
        "engine: selection, budget, stages",
        ("tlm/engine/", "tlm/catalog", "tlm/definition/", "tlm/numbers", "tlm/verify/", "attr/"),
    ),
    ("event loop + anyio hops", ("anyio/", "asyncio/", "selectors", "sniffio/")),
    ("json (stdlib/orjson)", ("json/", "orjson")),
)
"""Group name -> path fragments; the first group whose fragment is in a frame's file wins."""
OTHER = "other (interpreter, gc, stdlib)"


def group_of(path: str) -> str | None:
    """The group of a source file, or ``None`` for a file no group names."""
    path = path.replace(os.sep, "/")
    for name, fragments in GROUPS:
        if any(fragment in path for fragment in fragments):
            return name
    return None


def _group_of_stack(files: Sequence[str]) -> str:
    """Innermost ``tlm`` frame's group; else the innermost frame a group names; else other."""
    for path in reversed(files):
        path = "/" + path.replace(os.sep, "/")
        if "/tlm/" in path:
            return group_of(path[path.rfind("/tlm/") + 1 :]) or OTHER
    for path in reversed(files):
        found = group_of(path)
        if found is not None:
            return found
    return OTHER


async def _workload(mode: str, calls: int) -> float:
    """Run the workload from the cwd's project; the process CPU seconds it took."""
    import tlm

    async with tlm.Engine() as engine:

        async def run(count: int) -> None:
            if mode == "execute":
                for _ in range(count):
                    await engine.execute(TASK_ID, INPUT)
                return
            inputs = itertools.repeat(INPUT, count)
            async with engine.map(TASK_ID, inputs, max_in_flight=64) as results:
                async for result in results:
                    if result.error is not None:
                        raise result.error

        await run(200)
        engine.flush()
        print("WARM", flush=True)  # a sampler attaches now (see :func:`profile`)
        await anyio.sleep(1.0)
        started = time.process_time()
        await run(calls)
        engine.flush()
        return time.process_time() - started


def _run_workload(args: argparse.Namespace) -> int:
    profiler = cProfile.Profile() if args.cprofile else None
    if profiler is not None:
        profiler.enable()
    cpu = anyio.run(_workload, args.mode, args.calls)
    if profiler is not None:
        profiler.disable()
        totals: collections.Counter[str] = collections.Counter()
        stats = pstats.Stats(profiler)
        for (path, _line, _name), row in stats.stats.items():  # type: ignore[attr-defined]
            totals[group_of(path) or OTHER] += row[2]  # tottime
        Path(args.cprofile).write_text(json.dumps(totals))
    print(json.dumps({"cpu_s": cpu}))
    return 0


def _parse_raw(text: str) -> collections.Counter[str]:
    """py-spy's raw (collapsed) stacks -> samples per group."""
    counts: collections.Counter[str] = collections.Counter()
    for line in text.splitlines():
        stack, _, number = line.rpartition(" ")
        if not stack or not number.isdigit():
            continue
        files = []
        for frame in stack.split(";"):
            open_at = frame.rfind("(")
            files.append(frame[open_at + 1 :].rsplit(":", 1)[0] if open_at >= 0 else frame)
        counts[_group_of_stack(files)] += int(number)
    return counts


def profile(
    mode: str, calls: int, *, use_cprofile: bool = False, tlm_root: Path = REPO
) -> dict[str, Any]:
    """Profile one workload with the ``tlm`` under ``tlm_root``; ``{"cpu_us": per execution,
    "groups": {group: µs}, "tool": "py-spy" or "cProfile"}``."""
    spy = None if use_cprofile else shutil.which("py-spy")
    with serve_in_subprocess(0, core=1) as base_url, tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "project"
        write_project(project, base_url)
        keep = {k: v for k, v in os.environ.items() if not k.startswith(("TLM_", "OTEL_"))}
        env = {
            **keep,
            "PYTHONPATH": os.pathsep.join([str(tlm_root), str(REPO)]),
            "TLM_MODELS": MODEL,
            "TLM_CACHE": "0",
        }
        command = [sys.executable, "-m", "benchmarks.profile_path", "--workload"]
        command += ["--mode", mode, "--calls", str(calls)]
        raw_path = Path(tmp) / "profile.out"
        if spy is None:
            command += ["--cprofile", str(raw_path)]
        process = subprocess.Popen(
            command, cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        assert process.stdout is not None
        sampler = None
        raw_to = ("--format", "raw", "-o", str(raw_path))
        if process.stdout.readline().strip() == "WARM" and spy is not None:
            # --gil: only samples holding the GIL (Python CPU, not threads waiting on locks)
            sampler = subprocess.Popen(
                [spy, "record", "--pid", str(process.pid), "--gil", "-r", "250", *raw_to],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        out, err = process.communicate()
        if sampler is not None:
            sampler.wait(timeout=60)
        if process.returncode != 0:
            raise RuntimeError(f"profiled workload failed:\n{err[-3000:]}")
        cpu_s = json.loads([x for x in out.splitlines() if x.startswith("{")][-1])["cpu_s"]
        if spy is None:
            counts = collections.Counter(json.loads(raw_path.read_text()))
        else:
            counts = _parse_raw(raw_path.read_text())
    total = sum(counts.values()) or 1
    per_call = cpu_s / calls * 1e6
    groups = {name: per_call * counts[name] / total for name, _ in (*GROUPS, (OTHER, ()))}
    return {"cpu_us": per_call, "groups": groups, "tool": "cProfile" if spy is None else "py-spy"}


def _median_run(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per group and in total, the median over ``runs``."""
    return {
        "cpu_us": statistics.median(r["cpu_us"] for r in runs),
        "groups": {g: statistics.median(r["groups"][g] for r in runs) for g in runs[0]["groups"]},
        "tool": runs[0]["tool"],
        "runs": len(runs),
    }


def _table(results: dict[str, dict[str, Any]]) -> str:
    modes = list(results)
    lines = [
        "| µs per execution | " + " | ".join(modes) + " |",
        "|---" * (len(modes) + 1) + "|",
    ]
    for name in [g for g, _ in GROUPS] + [OTHER]:
        cells = [f"{results[m]['groups'][name]:,.0f}" for m in modes]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    totals = " | ".join(f"**{results[m]['cpu_us']:,.0f}**" for m in modes)
    lines.append(f"| **total client CPU** | {totals} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Profile the workloads and print the breakdown."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile_path")
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--mode", choices=("execute", "map", "both"), default="both")
    parser.add_argument("--cprofile", nargs="?", const="", default=None)
    parser.add_argument("--workload", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--repeats", type=int, default=1, help="median of this many runs")
    parser.add_argument("--baseline", help="also profile this git ref's tlm, in the same run")
    args = parser.parse_args(argv)
    if args.workload:
        return _run_workload(args)
    modes = ("execute", "map") if args.mode == "both" else (args.mode,)
    use_cprofile = args.cprofile is not None
    with tempfile.TemporaryDirectory() as tmp:
        roots = {"": REPO}
        if args.baseline:
            from benchmarks.scenarios import _checkout

            roots[f" (before, {args.baseline})"] = _checkout(args.baseline, Path(tmp))
        runs: dict[str, list[dict[str, Any]]] = {}
        for _ in range(args.repeats):  # alternating, so before and after share the load
            for mode in modes:
                for label, root in roots.items():
                    run = profile(mode, args.calls, use_cprofile=use_cprofile, tlm_root=root)
                    runs.setdefault(f"{mode}{label}", []).append(run)
    results = {name: _median_run(per) for name, per in runs.items()}
    if args.json:
        print(json.dumps(results))
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"tool: {next(iter(results.values()))['tool']}; load average at the end: {load}")
    print(_table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
