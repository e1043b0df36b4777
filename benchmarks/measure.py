"""Figures (median of repeats with min-max), scenario results, and a description of the machine."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import statistics
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs

__all__ = (
    "Figure",
    "Table",
    "Target",
    "Chart",
    "ScenarioResult",
    "Settings",
    "figure",
    "percentile",
    "machine",
    "pinned",
    "rss_bytes",
)


@attrs.frozen
class Figure:
    """The median of repeated measurements, with their min and max."""

    median: float
    min: float
    max: float
    unit: str
    samples: tuple[float, ...] = ()

    def text(self, digits: int = 1) -> str:
        """``median (min-max) unit``."""
        if len(self.samples) <= 1:
            return f"{self.median:,.{digits}f} {self.unit}"
        return (
            f"{self.median:,.{digits}f} ({self.min:,.{digits}f}-{self.max:,.{digits}f}) {self.unit}"
        )


def figure(samples: Sequence[float], unit: str) -> Figure:
    """The :class:`Figure` of ``samples`` (at least one)."""
    if not samples:
        raise ValueError("a figure needs at least one sample")
    values = tuple(float(s) for s in samples)
    return Figure(statistics.median(values), min(values), max(values), unit, values)


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``values`` by linear interpolation."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@attrs.frozen
class Table:
    """A Markdown table of a scenario's report."""

    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@attrs.frozen
class Target:
    """A target from the engine issue, met or missed."""

    name: str
    figure: Figure
    limit: float
    comparison: str = "<="

    @property
    def met(self) -> bool:
        """Whether the median meets the limit."""
        if self.comparison == "<=":
            return self.figure.median <= self.limit
        return self.figure.median >= self.limit


@attrs.frozen
class Chart:
    """A bar chart: one bar per label, the median with a min-max error bar."""

    file: str
    title: str
    labels: tuple[str, ...]
    figures: tuple[Figure, ...]
    ylabel: str


@attrs.frozen
class ScenarioResult:
    """What one scenario measured."""

    name: str
    title: str
    description: str
    tables: tuple[Table, ...] = ()
    targets: tuple[Target, ...] = ()
    charts: tuple[Chart, ...] = ()
    figures: dict[str, Figure] = attrs.field(factory=dict)
    notes: tuple[str, ...] = ()
    skipped: str | None = None


@attrs.frozen
class Settings:
    """How hard to measure: sizes and repeats (``--quick`` makes everything small)."""

    quick: bool
    out: Path
    repeats: int
    overhead_n: int
    calls: int
    in_flight: int
    memory_small: int
    memory_large: int
    consensus_n: int
    telemetry_n: int
    local_n: int
    baseline: str | None = None
    """A git ref whose engine is measured beside this one (before/after)."""

    @classmethod
    def create(cls, *, quick: bool, out: Path, baseline: str | None = None) -> Settings:
        """The quick or the full settings."""
        if quick:
            return cls(quick, out, 3, 300, 512, 256, 1_000, 10_000, 4, 500, 1, baseline)
        return cls(quick, out, 5, 3_000, 4_096, 256, 10_000, 100_000, 10, 3_000, 3, baseline)


def _version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    """CPU model, cores, memory, OS, Python and the versions of the packages that matter."""
    memory = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    try:
        load = "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    except OSError:
        load = "unknown"
    packages = (
        "tlm",
        "anyio",
        "aiohttp",
        "attrs",
        "cattrs",
        "jsonschema",
        "opentelemetry-sdk",
        "openai",
        "matplotlib",
        "psutil",
    )
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory": memory,
        "load_average": load,
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "packages": {name: _version(name) for name in packages},
    }


@contextmanager
def pinned(core: int) -> Iterator[bool]:
    """Pin this process to ``core`` for the block (yields ``False`` where not possible)."""
    if not hasattr(os, "sched_setaffinity"):
        yield False
        return
    before = os.sched_getaffinity(0)
    if len(before) < 2 or core not in before:
        yield False
        return
    try:
        os.sched_setaffinity(0, {core})
    except OSError:
        yield False
        return
    try:
        yield True
    finally:
        os.sched_setaffinity(0, before)


def rss_bytes() -> int:
    """This process's resident set size."""
    try:
        import psutil  # type: ignore[import-untyped]  # optional, no stubs installed

        return int(psutil.Process().memory_info().rss)
    except ImportError:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
