"""The scenarios of the benchmark harness, each returning a :class:`ScenarioResult`."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Awaitable, Callable
from io import BytesIO
from pathlib import Path

import anyio

from benchmarks import configured, consensus_latency, memory, overhead, throughput
from benchmarks.fake_server import serve_in_subprocess
from benchmarks.fixtures import REPO
from benchmarks.measure import (
    Chart,
    Figure,
    ScenarioResult,
    Settings,
    Table,
    Target,
    figure,
)

__all__ = ("Step", "SCENARIOS", "OVERHEAD_TARGET_US", "RSS_TARGET")

Step = Callable[[], None]
Scenario = Callable[[Settings, Step], Awaitable[ScenarioResult]]
OVERHEAD_TARGET_US = 100.0
RSS_TARGET = 0.10


def _overhead_subprocess(settings: Settings, tlm_root: Path) -> dict[str, Figure]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tlm_root), str(REPO)])}
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.overhead",
            "--json",
            "-n",
            str(settings.overhead_n),
            "--repeats",
            str(settings.repeats),
        ],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        cwd=tempfile.gettempdir(),
    )
    raw = json.loads(completed.stdout.strip().splitlines()[-1])
    return {k: figure(v[3], "µs") for k, v in raw.items()}


def _checkout(ref: str, into: Path) -> Path:
    archive = subprocess.run(
        ["git", "archive", ref, "tlm", "definitions"], cwd=REPO, capture_output=True, check=True
    ).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


async def engine_overhead(settings: Settings, step: Step) -> ScenarioResult:
    """(a) CPU µs per execution over a direct provider call, store on and off."""
    figures = await anyio.to_thread.run_sync(_overhead_subprocess, settings, REPO)
    step()
    baseline: dict[str, Figure] = {}
    if settings.baseline:
        with tempfile.TemporaryDirectory() as tmp:
            root = _checkout(settings.baseline, Path(tmp))
            baseline = await anyio.to_thread.run_sync(_overhead_subprocess, settings, root)
    step()
    rows = []
    for mode in overhead.MODES:
        row = [mode, figures[mode].text(), figures[f"{mode} total"].text()]
        if baseline:
            row.append(baseline[mode].text())
        rows.append(tuple(row))
    columns = ["mode", "overhead per execution", "engine CPU per execution"]
    if baseline:
        columns.append(f"overhead before ({settings.baseline})")
    targets = tuple(
        Target(f"engine overhead, {mode}", figures[mode], OVERHEAD_TARGET_US)
        for mode in overhead.MODES
    )
    labels = list(overhead.MODES)
    bars = [figures[m] for m in overhead.MODES]
    if baseline:
        labels += [f"{m} (before)" for m in overhead.MODES]
        bars += [baseline[m] for m in overhead.MODES]
    return ScenarioResult(
        name="overhead",
        title="Engine overhead (instant in-process provider)",
        description=overhead.__doc__ or "",
        tables=(Table("CPU µs per execution", tuple(columns), tuple(rows)),),
        targets=targets,
        charts=(Chart("overhead.png", "Engine overhead", tuple(labels), tuple(bars), "CPU µs"),),
        figures={**figures, **{f"before {k}": v for k, v in baseline.items()}},
    )


def _peer_notes() -> list[str]:
    from benchmarks import peers

    measured = [p for p in peers.PEERS if p.name in throughput.RUNNERS]
    notes = []
    if measured:
        notes.append(
            "Peers measured (each in a fresh process; caches, telemetry and retries off where "
            "the framework allows): "
            + "; ".join(f"{p.name} ({p.distribution} {p.version()})" for p in measured)
            + "."
        )
        notes += [f"{p.name}: left on, {p.left_on}." for p in measured if p.left_on]
    notes += [f"{name}: left out, {why}." for name, why in throughput.PEERS_LEFT_OUT.items()]
    return notes


async def http_throughput(settings: Settings, step: Step) -> ScenarioResult:
    """(b) Throughput, p50/p99 and client CPU against the fake server, next to the floor."""
    tables = []
    charts = []
    figures: dict[str, Figure] = {}
    notes = []
    for latency_ms in (0, 50):
        per_runner, is_pinned = await throughput.run_latency(
            latency_ms, settings.calls, settings.in_flight, settings.repeats, step
        )
        notes.append(
            f"{latency_ms} ms: client and server "
            + ("pinned to cores 0 and 1" if is_pinned else "not pinned (one core or no affinity)")
        )
        floor = per_runner["raw aiohttp"]
        rows = []
        for name, figs in per_runner.items():
            ratio = figs["throughput"].median / floor["throughput"].median
            added = figs["cpu"].median - floor["cpu"].median
            rows.append(
                (
                    name,
                    figs["throughput"].text(0),
                    f"{ratio:.2f}",
                    figs["p50"].text(1),
                    figs["p99"].text(1),
                    figs["cpu"].text(0),
                    f"{figs['cpu'].median / floor['cpu'].median:.2f}",
                    f"{added:+,.0f}",
                )
            )
            for key, fig in figs.items():
                figures[f"{latency_ms}ms {name} {key}"] = fig
        tables.append(
            Table(
                f"{latency_ms} ms model latency, {settings.in_flight} in flight, "
                f"{settings.calls} calls",
                (
                    "client",
                    "throughput",
                    "x floor",
                    "p50",
                    "p99",
                    "client CPU per call",
                    "CPU x floor",
                    "CPU µs added",
                ),
                tuple(rows),
            )
        )
        names = tuple(per_runner)
        charts.append(
            Chart(
                f"throughput_{latency_ms}ms.png",
                f"Throughput at {latency_ms} ms model latency",
                names,
                tuple(per_runner[n]["throughput"] for n in names),
                "calls/s",
            )
        )
        charts.append(
            Chart(
                f"cpu_per_call_{latency_ms}ms.png",
                f"Client CPU per call at {latency_ms} ms model latency",
                names,
                tuple(per_runner[n]["cpu"] for n in names),
                "CPU µs per call",
            )
        )
    notes += _peer_notes()
    return ScenarioResult(
        name="throughput",
        title="Throughput and latency against the fake server (separate process)",
        description=throughput.__doc__ or "",
        tables=tuple(tables),
        charts=tuple(charts),
        figures=figures,
        notes=tuple(notes),
    )


async def rss(settings: Settings, step: Step) -> ScenarioResult:
    """(c) RSS at the small and the large count of streamed executions."""
    growth: list[float] = []
    small_mib: list[float] = []
    large_mib: list[float] = []
    for _ in range(max(1, settings.repeats // 2)):
        found = await anyio.to_thread.run_sync(
            memory.measure_in_subprocess, settings.memory_small, settings.memory_large
        )
        small = found[str(settings.memory_small)]
        large = found[str(settings.memory_large)]
        growth.append((large - small) / small * 100)
        small_mib.append(small / 2**20)
        large_mib.append(large / 2**20)
        step()
    growth_fig = figure(growth, "%")
    small_fig = figure(small_mib, "MiB")
    large_fig = figure(large_mib, "MiB")
    return ScenarioResult(
        name="memory",
        title="Memory of streamed executions",
        description=memory.__doc__ or "",
        tables=(
            Table(
                "RSS (engine.map, instant provider, store on, 64 in flight)",
                (f"after {settings.memory_small:,}", f"after {settings.memory_large:,}", "growth"),
                ((small_fig.text(1), large_fig.text(1), growth_fig.text(1)),),
            ),
        ),
        targets=(
            Target(
                f"RSS growth {settings.memory_small:,} → {settings.memory_large:,}",
                growth_fig,
                RSS_TARGET * 100,
            ),
        ),
        charts=(
            Chart(
                "memory.png",
                "RSS of streamed executions",
                (f"{settings.memory_small:,}", f"{settings.memory_large:,}"),
                (small_fig, large_fig),
                "MiB",
            ),
        ),
        figures={"rss small": small_fig, "rss large": large_fig, "rss growth": growth_fig},
    )


async def consensus(settings: Settings, step: Step) -> ScenarioResult:
    """(d) Consensus latency and cost, with and without early exit."""
    per_policy = await consensus_latency.run_policies(settings.consensus_n, settings.repeats, step)
    rows = tuple(
        (name, f["latency"].text(1), f["cost"].text(1), f["calls"].text(2))
        for name, f in per_policy.items()
    )
    names = tuple(per_policy)
    return ScenarioResult(
        name="consensus",
        title="Consensus latency and cost (models at 20, 60 and 150 ms)",
        description=consensus_latency.__doc__ or "",
        tables=(
            Table(
                "per execution (median latency of the run; mean cost and calls)",
                ("policy", "latency", "cost", "model calls"),
                rows,
            ),
        ),
        charts=(
            Chart(
                "consensus_latency.png",
                "Consensus latency",
                names,
                tuple(per_policy[n]["latency"] for n in names),
                "ms",
            ),
        ),
        figures={f"{n} {k}": f for n, figs in per_policy.items() for k, f in figs.items()},
    )


async def telemetry(settings: Settings, step: Step) -> ScenarioResult:
    """(e) Telemetry cost: spans alone and spans with the durable record."""
    from benchmarks import telemetry_cost

    samples: dict[str, list[float]] = {"noop": [], "spans": [], "store": []}

    def measure_all() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            for index in range(settings.repeats):
                for mode in samples:
                    path = Path(tmp) / str(index)
                    path.mkdir(exist_ok=True)
                    samples[mode].append(telemetry_cost.measure(mode, settings.telemetry_n, path))
                step()

    await anyio.to_thread.run_sync(measure_all)
    figures = {mode: figure(values, "µs") for mode, values in samples.items()}
    return ScenarioResult(
        name="telemetry",
        title="Telemetry cost per execution (store on vs off)",
        description=telemetry_cost.__doc__ or "",
        tables=(
            Table(
                "CPU µs per execution (root span, one model call, one verification)",
                ("mode", "CPU per execution"),
                tuple((mode, fig.text()) for mode, fig in figures.items()),
            ),
        ),
        charts=(
            Chart(
                "telemetry.png",
                "Telemetry cost",
                tuple(figures),
                tuple(figures.values()),
                "CPU µs per execution",
            ),
        ),
        figures=figures,
    )


async def replay(settings: Settings, step: Step) -> ScenarioResult:
    """(e) The real-data consensus replay (RouterBench, GSM8K)."""
    from benchmarks import consensus_replay

    data = consensus_replay.DEFAULT_DATA
    if not (data / "routerbench_train.jsonl").exists():
        step()
        return ScenarioResult(
            "replay", "Consensus replay", "", skipped=f"no RouterBench data in {data}"
        )
    report = await consensus_replay.build_report(data)
    (settings.out / "consensus_replay.md").write_text(report)
    step()
    body = report.split("\n", 1)[1] if report.startswith("#") else report
    return ScenarioResult(
        name="replay",
        title="Consensus replay on real model answers",
        description=(consensus_replay.__doc__ or "").split("\n\n")[0],
        notes=(body.replace("\n## ", "\n#### "),),
    )


async def local(settings: Settings, step: Step) -> ScenarioResult:
    """(e) The embedded local model, when installed."""
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        step()
        return ScenarioResult(
            "local", "Embedded local model", "", skipped="the `local` extra is not installed"
        )
    from benchmarks import local_model
    from tlm.catalog import Catalog
    from tlm.providers.local import LocalProvider

    catalog = Catalog.load()
    rows = []
    figures: dict[str, Figure] = {}
    async with LocalProvider(
        catalog=catalog, data_dir=REPO / ".tlm" / "models", n_threads=1
    ) as provider:
        for card in catalog.for_provider("local"):
            found = await local_model.bench_model(provider, card.id, settings.local_n)
            latency = figure([c["latency_s"] for c in found["calls"]], "s")
            rate = figure([c["tokens_per_s"] for c in found["calls"]], "tok/s")
            figures[f"{card.id} latency"] = latency
            figures[f"{card.id} tokens/s"] = rate
            rows.append(
                (
                    card.id,
                    f"{found['server_start_s']:.2f} s",
                    latency.text(2),
                    rate.text(1),
                    f"{found['valid_json']}/{found['runs']}",
                )
            )
            step()
    return ScenarioResult(
        name="local",
        title="Embedded local model (job extraction, 1 thread)",
        description=(local_model.__doc__ or "").split("\n\n")[0],
        tables=(
            Table(
                "per model",
                ("model", "server start", "end-to-end latency", "output tokens/s", "valid JSON"),
                tuple(rows),
            ),
        ),
        figures=figures,
    )


async def durability_cost(settings: Settings, step: Step) -> ScenarioResult:
    """What returning only after the record is committed costs, next to relaxed mode."""
    from benchmarks import durability

    figures = await durability.measure_all(settings.overhead_n, settings.repeats)
    step()
    keys = (
        "execute p50",
        "execute p99",
        "execute wall",
        "execute cpu",
        "map wall",
        "map cpu",
        "map 10 ms wall",
        "map 10 ms cpu",
    )
    rows = tuple(
        (key, *(figures[f"{mode} {key}"].text(0) for mode in durability.MODES),
         figures[f"added {key}"].text(0))
        for key in keys
    )  # fmt: skip
    return ScenarioResult(
        name="durability",
        title="Durability: return after commit (durable) vs after queueing (relaxed)",
        description=durability.__doc__ or "",
        tables=(
            Table(
                f"µs per execution, {settings.overhead_n} executions per mode and repeat",
                ("figure", *durability.MODES, "added by durable"),
                rows,
            ),
        ),
        charts=(
            Chart(
                "durability.png",
                "Latency of one execute",
                tuple(f"{mode} p50" for mode in durability.MODES),
                tuple(figures[f"{mode} execute p50"] for mode in durability.MODES),
                "µs",
            ),
        ),
        figures=figures,
    )


async def soak(settings: Settings, step: Step) -> ScenarioResult:
    """Executions through map against a faulty server: returned vs on disk, open spans, RSS."""
    from benchmarks import soak as soak_module

    n = 2_000 if settings.quick else 10_000
    found = await anyio.to_thread.run_sync(soak_module.run_in_subprocess, n)
    step()
    missing = figure([found["returned"] - found["records on disk"]], "records")
    open_spans = figure([found["open spans"]], "spans")
    rows = tuple(
        (key, f"{found[key]:,.1f}" if isinstance(found[key], float) else f"{found[key]:,}")
        for key in (
            "executions",
            "returned",
            "records on disk",
            "records with errors",
            "lost",
            "unrecorded lines",
            "open spans",
            "seconds",
            "rss after 1,000 MiB",
            "rss peak MiB",
            "rss final MiB",
        )
    )
    return ScenarioResult(
        name="soak",
        title=f"Soak: {n:,} executions, 30% faults, a poisoned input every 1,000",
        description=soak_module.__doc__ or "",
        tables=(
            Table("figures", ("figure", "value"), rows),
            Table(
                "outcomes (results returned by map)",
                ("outcome", "count"),
                tuple((k, str(v)) for k, v in sorted(found["outcomes"].items())),
            ),
            Table(
                "replies the server sent",
                ("reply", "count"),
                tuple((k, str(v)) for k, v in sorted(found["faults sent"].items())),
            ),
        ),
        targets=(
            Target("executions returned but not on disk", missing, 0),
            Target("root spans open at the end", open_spans, 0),
        ),
        figures={"missing": missing, "open spans": open_spans},
    )


CONFIGURED_CASES: tuple[tuple[str, int, int], ...] = (
    ("sequential, 0 ms", 0, 1),
    ("64 in flight, 0 ms", 0, 64),
    ("256 in flight, 50 ms", 50, 256),
)
"""(case, model latency ms, calls in flight) of the ``configured`` scenario."""
CONFIGURED_CLIENTS = ("raw", "tlm", "tlm-nostore")
_CLIENT_LABELS = {"raw": "raw aiohttp", "tlm": "tlm (store on)", "tlm-nostore": "tlm, store off"}


def _configured_calls(settings: Settings, in_flight: int) -> int:
    if in_flight == 1:
        return 300 if settings.quick else 1_000
    return max(settings.calls, 8 * in_flight)


def _configured_targets(ratio: Callable[[str, str, str], Figure]) -> tuple[Target, ...]:
    seq, c64, c256 = (case for case, _, _ in CONFIGURED_CASES)
    return (
        Target("sequential p50 latency / raw (store on)", ratio(seq, "tlm", "p50"), 1.25),
        Target("sequential client CPU over raw, µs (store on)", ratio(seq, "tlm", "cpu+"), 100),
        Target("64 in flight, 0 ms: throughput / raw", ratio(c64, "tlm", "throughput"), 0.8, ">="),
        Target(
            "256 in flight, 50 ms: throughput / raw", ratio(c256, "tlm", "throughput"), 0.9, ">="
        ),
        Target("map CPU per item / execute CPU per call", ratio(c64, "tlm", "map/execute"), 1.0),
    )


async def configured_throughput(settings: Settings, step: Step) -> ScenarioResult:
    """TLM as a user configures it beside the raw aiohttp client, each run in a fresh pinned
    process, paired (raw right before TLM) and interleaved; ratios per pair, median of repeats.
    With ``--baseline REF``, REF's ``tlm`` (store on) is measured in each pair too."""
    # samples[case][client][metric]
    samples: dict[str, dict[str, dict[str, list[float]]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        roots = dict.fromkeys(CONFIGURED_CLIENTS, REPO)
        if settings.baseline:
            roots[f"before ({settings.baseline})"] = _checkout(settings.baseline, Path(tmp))
        for latency_ms in sorted({latency for _, latency, _ in CONFIGURED_CASES}):
            with serve_in_subprocess(latency_ms, core=1) as base_url:
                for _ in range(settings.repeats):
                    for case, latency, in_flight in CONFIGURED_CASES:
                        if latency != latency_ms:
                            continue
                        calls = _configured_calls(settings, in_flight)
                        for name, root in roots.items():
                            client = name if name in CONFIGURED_CLIENTS else "tlm"
                            got = await anyio.to_thread.run_sync(
                                functools.partial(
                                    configured.run_in_subprocess,
                                    root,
                                    base_url,
                                    calls,
                                    in_flight,
                                    client=client,
                                )
                            )
                            per = samples.setdefault(case, {}).setdefault(name, {})
                            for key, value in got.items():
                                per.setdefault(key, []).append(value)
                    step()

    def ratio(case: str, name: str, metric: str) -> Figure:
        per, raw = samples[case][name], samples[case]["raw"]
        if metric == "cpu+":
            return figure([t - r for t, r in zip(per["cpu_us"], raw["cpu_us"], strict=True)], "µs")
        if metric == "map/execute":
            seq = samples[CONFIGURED_CASES[0][0]][name]["cpu_us"]
            return figure([m / e for m, e in zip(per["cpu_us"], seq, strict=True)], "x")
        return figure([t / r for t, r in zip(per[metric], raw[metric], strict=True)], "x")

    rows = []
    for case, _, _ in CONFIGURED_CASES:
        for name in roots:
            per = samples[case][name]
            rows.append(
                (
                    case,
                    _CLIENT_LABELS.get(name, name),
                    figure(per["p50"], "ms").text(2),
                    ratio(case, name, "p50").text(2),
                    figure(per["throughput"], "calls/s").text(0),
                    ratio(case, name, "throughput").text(2),
                    figure(per["cpu_us"], "µs").text(0),
                    ratio(case, name, "cpu+").text(0),
                )
            )
    figures = {
        f"{case} {name} {key}": figure(values, key)
        for case, per_case in samples.items()
        for name, per in per_case.items()
        for key, values in per.items()
    }
    targets = _configured_targets(ratio)
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return ScenarioResult(
        name="configured",
        title="TLM through the public configuration path beside raw aiohttp (issue #15's table)",
        description=(configured.__doc__ or "")
        + f"\n\nLoad average at the end of the run: {load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f}.",
        tables=(
            Table(
                "Paired runs, ratios to the raw client in the same pair (median, min-max)",
                (
                    "case",
                    "client",
                    "p50 latency",
                    "p50 / raw",
                    "throughput",
                    "throughput / raw",
                    "client CPU per call",
                    "CPU over raw",
                ),
                tuple(rows),
            ),
        ),
        targets=targets,
        charts=(
            Chart(
                "configured.png",
                "Throughput / raw aiohttp, default configuration",
                tuple(f"{case}: {name}" for case, _, _ in CONFIGURED_CASES for name in roots),
                tuple(
                    ratio(case, name, "throughput")
                    for case, _, _ in CONFIGURED_CASES
                    for name in roots
                ),
                "x raw",
            ),
        ),
        figures=figures,
    )


async def ui(settings: Settings, step: Step) -> ScenarioResult:
    """(f) The console's pages with 100,000 executions in the store (20,000 with --quick)."""
    from benchmarks import ui_pages

    n = 20_000 if settings.quick else 100_000
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        ids = await anyio.to_thread.run_sync(lambda: ui_pages.seed(data_dir, n))
        await anyio.to_thread.run_sync(
            lambda: ui_pages.seed_reviews_and_runs(data_dir, ids, reviews=1_000, runs=200)
        )
        step()
        samples = await ui_pages.measure_pages(
            data_dir, REPO / "definitions", ids[len(ids) // 2], repeats=max(5, settings.repeats)
        )
        step()
    figures = {page: figure(values, "ms") for page, values in samples.items()}
    return ScenarioResult(
        name="ui",
        title=f"Console pages with {n:,} executions: server time per page",
        description=ui_pages.__doc__ or "",
        tables=(
            Table(
                "Server time per page request (ms)",
                ("page", "server time"),
                tuple((page, fig.text(2)) for page, fig in figures.items()),
            ),
        ),
        targets=tuple(
            Target(f"console page {page}", fig, ui_pages.TARGET_MS)
            for page, fig in figures.items()
            if not page.startswith(ui_pages.NO_CACHE)
        ),
        figures=figures,
    )


async def batch_scale(settings: Settings, step: Step) -> ScenarioResult:
    """(issue #17) Batch throughput, local vs Ray, at the same number in flight."""
    from benchmarks import batch_scale as bench

    n = 500 if settings.quick else 2_000
    repeats = 1 if settings.quick else max(1, settings.repeats // 3)
    samples = await bench.measure(n, repeats)
    step()
    figures = {name: figure(values, "inputs/s") for name, values in samples.items()}
    ratio = figures["ray"].median / figures["local"].median
    return ScenarioResult(
        name="batch-scale",
        title=f"tlm batch: {n:,} inputs, local vs Ray, {bench.IN_FLIGHT} in flight",
        description=bench.__doc__ or "",
        tables=(
            Table(
                f"{n:,} inputs, {bench.LATENCY_MS:.0f} ms model latency, store on",
                ("mode", "in flight", "throughput", "ratio to local"),
                (
                    ("local (engine.map)", str(bench.IN_FLIGHT), figures["local"].text(0), "1.00"),
                    (
                        f"Ray ({bench.ACTORS} actors)",
                        f"{bench.ACTORS} x {bench.IN_FLIGHT // bench.ACTORS}",
                        figures["ray"].text(0),
                        f"{ratio:.2f}",
                    ),
                ),
            ),
        ),
        figures=figures,
    )


async def scale(settings: Settings, step: Step) -> ScenarioResult:
    """Recorded executions/s, SQLite vs PostgreSQL, with 1, 2 and 4 processes on one store."""
    from benchmarks import scale as scale_module

    counts = (1, 2, 4)
    n = 500 if settings.quick else 2000
    found = await anyio.to_thread.run_sync(scale_module.measure, n, counts)
    step()
    figures = {
        f"{key} executions/s": figure([values["executions/s"]], "executions/s")
        for key, values in found.items()
    }
    rate = {key: values["executions/s"] for key, values in found.items()}
    rows = tuple(
        (
            str(p),
            f"{rate[f'sqlite {p}']:,.0f}",
            f"{rate[f'postgresql {p}']:,.0f}",
            f"{rate[f'postgresql {p}'] / rate[f'sqlite {p}']:.2f}",
            " / ".join(
                f"{found[f'{b} {p}']['records']:,.0f} of {found[f'{b} {p}']['executions']:,.0f}"
                for b in scale_module.BACKENDS
            ),
        )
        for p in counts
    )
    return ScenarioResult(
        name="scale",
        title="Scale: recorded executions/s, SQLite vs PostgreSQL, 1-4 processes",
        description=scale_module.__doc__ or "",
        tables=(
            Table(
                f"{n} executions per process, durable, one run per cell",
                ("processes", "SQLite /s", "PostgreSQL /s", "PG / SQLite", "records (SQLite / PG)"),
                rows,
            ),
        ),
        figures=figures,
    )


def _cache_subprocess(settings: Settings, tlm_root: Path, postgres: bool) -> dict[str, Figure]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tlm_root), str(REPO)])}
    n = 300 if settings.quick else 2000
    command = [sys.executable, "-m", "benchmarks.cache_cost", "--json", "-n", str(n)]
    command += ["--repeats", str(settings.repeats)] + (["--postgres"] if postgres else [])
    completed = subprocess.run(
        command, capture_output=True, text=True, check=True, env=env, cwd=tempfile.gettempdir()
    )
    raw = json.loads(completed.stdout.strip().splitlines()[-1])
    return {k: figure(v[3], "µs") for k, v in raw.items()}


async def cache_cost(settings: Settings, step: Step) -> ScenarioResult:
    """The result cache on the hot path: µs per execution, cache off / all hits / all misses."""
    from benchmarks import cache_cost as bench

    figures = await anyio.to_thread.run_sync(_cache_subprocess, settings, REPO, True)
    step()
    before: dict[str, Figure] = {}
    if settings.baseline:
        with tempfile.TemporaryDirectory() as tmp:
            root = _checkout(settings.baseline, Path(tmp))
            before = await anyio.to_thread.run_sync(_cache_subprocess, settings, root, False)
    step()
    rows = []
    for mode in (*bench.MODES, *bench.PG_MODES):
        if f"{mode} cpu" not in figures:
            continue
        row = [mode, figures[f"{mode} cpu"].text(), figures[f"{mode} wall"].text()]
        if before:
            was = before.get(f"{mode} cpu"), before.get(f"{mode} wall")
            row += [was[0].text() if was[0] else "-", was[1].text() if was[1] else "-"]
        rows.append(tuple(row))
    columns = ["mode", "CPU per execution", "wall per execution"]
    if before:
        columns += [f"CPU before ({settings.baseline})", f"wall before ({settings.baseline})"]
    return ScenarioResult(
        name="cache",
        title="Result cache cost (instant in-process provider, store off)",
        description=bench.__doc__ or "",
        tables=(Table("µs per execution", tuple(columns), tuple(rows)),),
        figures={**figures, **{f"before {k}": v for k, v in before.items()}},
    )


async def local_quality(settings: Settings, step: Step) -> ScenarioResult:
    """(f) Answer quality of the embedded models on the labelled postings, per configuration."""
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        step()
        return ScenarioResult(
            "local-quality", "Local model quality", "", skipped="the `local` extra is not installed"
        )
    from benchmarks import local_quality

    return await local_quality.scenario(settings, step)


SCENARIOS: dict[str, tuple[Scenario, Callable[[Settings], int]]] = {
    "overhead": (engine_overhead, lambda s: 2),
    "throughput": (http_throughput, lambda s: 2 * s.repeats * len(throughput.RUNNERS)),
    "memory": (rss, lambda s: max(1, s.repeats // 2)),
    "consensus": (consensus, lambda s: s.repeats * len(consensus_latency.POLICIES)),
    "telemetry": (telemetry, lambda s: s.repeats),
    "replay": (replay, lambda s: 1),
    "local": (local, lambda s: 2),
    "durability": (durability_cost, lambda s: 1),
    "soak": (soak, lambda s: 1),
    "configured": (configured_throughput, lambda s: s.repeats),
    "ui": (ui, lambda s: 2),
    "batch-scale": (batch_scale, lambda s: 1),
    "scale": (scale, lambda s: 1),
    "cache": (cache_cost, lambda s: 2),
    "local-quality": (local_quality, lambda s: 1),
}
"""Name -> (scenario, how many progress steps it reports)."""
