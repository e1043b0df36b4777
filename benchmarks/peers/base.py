"""What every client of the throughput scenario shares: a run, the fan-out, the job-extraction work.

The work is the benchmark task's ``standard`` prompt variant rendered with :data:`INPUT`, its
output JSON Schema, and :class:`JobDetails`, a pydantic model of the same schema for the
frameworks that validate through pydantic (built on first use, so pydantic is needed only then).
"""

from __future__ import annotations

import functools
import itertools
import os
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import anyio
import attrs

from benchmarks.fixtures import INPUT, MODELS, benchmark_task

__all__ = (
    "Run",
    "Runner",
    "fan_out",
    "measured",
    "Work",
    "work",
    "MODEL",
    "API_KEY",
    "job_details_model",
    "environment",
    "TIMEOUT_S",
)

MODEL = MODELS[0]
API_KEY = "bench"
"""A placeholder key: the fake server accepts any."""
TIMEOUT_S = 300.0
"""Every client's request timeout (connect included): CPU-bound at 256 in flight, a client's own
event loop can starve its connects past the usual 5 s connect timeouts."""


@attrs.frozen
class Run:
    """One measured run: wall time, client CPU time and per-call latencies."""

    wall_s: float
    cpu_s: float
    latencies_s: tuple[float, ...]

    @property
    def calls(self) -> int:
        """How many calls were made."""
        return len(self.latencies_s)


Runner = Callable[[str, int, int], Awaitable[Run]]
"""``runner(base_url, calls, in_flight)`` -> the measured :class:`Run` (after a warm-up)."""


async def fan_out(calls: int, in_flight: int, one: Callable[[], Awaitable[object]]) -> Run:
    """``calls`` awaits of ``one()`` with ``in_flight`` of them at a time."""
    latencies: list[float] = []
    counter = itertools.count()

    async def worker() -> None:
        while next(counter) < calls:
            start = time.perf_counter()
            await one()
            latencies.append(time.perf_counter() - start)

    wall = time.perf_counter()
    cpu = time.process_time()
    async with anyio.create_task_group() as tg:
        for _ in range(min(in_flight, calls)):
            tg.start_soon(worker)
    return Run(time.perf_counter() - wall, time.process_time() - cpu, tuple(latencies))


async def measured(calls: int, in_flight: int, one: Callable[[], Awaitable[object]]) -> Run:
    """A warm-up of ``2 * in_flight`` calls, then the measured :func:`fan_out`."""
    await fan_out(2 * in_flight, in_flight, one)
    return await fan_out(calls, in_flight, one)


@attrs.frozen
class Work:
    """The job-extraction work: prompt template, system text, input and output schema."""

    system: str
    template: str
    """The prompt text with ``{{name}}`` placeholders."""
    variables: tuple[str, ...]
    input: Mapping[str, Any]
    schema: Mapping[str, Any]

    def render(self, values: Mapping[str, Any] | None = None) -> str:
        """The prompt with the variables filled in (from :attr:`input` unless given)."""
        values = self.input if values is None else values
        text = self.template
        for name in self.variables:
            text = text.replace("{{" + name + "}}", str(values.get(name, "")))
        return text

    def response_format(self) -> dict[str, Any]:
        """The OpenAI ``response_format`` asking for the output schema."""
        return {
            "type": "json_schema",
            "json_schema": {"name": "output", "schema": dict(self.schema), "strict": False},
        }


@functools.cache
def work() -> Work:
    """The benchmark task's job-extraction work (see the module docstring)."""
    task = benchmark_task()
    variant = next(p for p in task.prompts if p.id == "standard")
    return Work(
        system=variant.system or "",
        template=variant.text,
        variables=tuple(variant.template_variables),
        input=INPUT,
        schema=dict(task.output.schema),
    )


@functools.cache
def job_details_model() -> type[Any]:
    """The output schema as a pydantic model (non-empty lists, as the task's rules demand)."""
    from typing import Annotated, Literal

    from pydantic import BaseModel, ConfigDict, Field

    class SalaryRange(BaseModel):
        """The advertised pay, if the posting states it."""

        model_config = ConfigDict(extra="forbid")
        min: Annotated[float, Field(ge=0)] | None = None
        max: Annotated[float, Field(ge=0)] | None = None
        currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
        period: Literal["hour", "day", "week", "month", "year"]

    class JobDetails(BaseModel):
        """The essential details of a job posting."""

        job_title: str
        location: str | None = None
        responsibilities: Annotated[list[str], Field(min_length=1)]
        requirements: Annotated[list[str], Field(min_length=1)]
        contact: str | None = None
        salary_range: SalaryRange | None = None

    return JobDetails


@contextmanager
def environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for the block (a framework reads them on import), then restore."""
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
