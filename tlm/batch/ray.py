"""Batches on Ray: Ray Data reads the input, a pool of actors each owning one TLM engine runs it.

Needs the ``tlm[ray]`` extra. :func:`run_ray_batch` connects to a cluster (``address``; default: a
running one or a local one started for the run), reads the input file with a Ray Data datasource
that yields ``(line, text)`` rows (blank lines are not inputs; inputs already done are left out,
see :mod:`tlm.batch.resume`), and maps them over ``actors`` actors. Each actor opens one engine
once, runs at most ``max_in_flight`` executions at a time, and returns one output line per row
after its record is committed; the driver writes them to the output file as they arrive.

Execution ids are derived from the run and the line number, so when an actor dies and Ray runs its
rows again, the new record replaces the old one (the store upserts by id): every input ends as
exactly one record and one output line.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from collections.abc import Callable, Iterator, Mapping
from functools import partial
from typing import Any

import anyio
import anyio.from_thread
import pyarrow as pa
import ray
import ray.data
from ray.data.block import BlockMetadata
from ray.data.datasource import Datasource, ReadTask

from tlm.batch.driver import BatchReport
from tlm.batch.local import engine_report, result_line
from tlm.batch.requests import parse_line
from tlm.batch.resume import carry_over, input_lines
from tlm.engine.execution import new_job, run_inline
from tlm.engine.result import ExecuteOptions, coerce_options
from tlm.errors import InputInvalid, TLMError

__all__ = (
    "run_ray_batch",
    "execution_id_for",
    "LinesDatasource",
    "EngineActor",
    "DriverEnvironment",
)


def execution_id_for(run_id: str, line: int) -> str:
    """The execution id of input ``line`` in run ``run_id`` (the same on every retry)."""
    return hashlib.sha256(f"tlm-batch:{run_id}:{line}".encode()).hexdigest()[:32]


class DriverEnvironment(Mapping[str, str]):
    """The driver's ``TLM_*`` variables on their way to the actors, values never shown.

    ``TLM_DATABASE_URL`` may carry a password: the repr (what Ray logs of an actor's arguments,
    what a traceback prints) names the variables only; pickling keeps the values.
    """

    def __init__(self, values: Mapping[str, str]) -> None:
        self._values = dict(values)

    def __getitem__(self, key: str) -> str:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"DriverEnvironment({', '.join(f'{k}=***' for k in sorted(self._values))})"

    __str__ = __repr__


def default_engine(workdir: str | None = None, env: Mapping[str, str] | None = None) -> Any:
    """``Engine()`` as the driver would build it: in ``workdir`` (when that directory exists on
    the worker) with the driver's ``TLM_*`` variables ``env`` set. Provider keys are not sent:
    the workers need them in their own environment."""
    from tlm.engine import Engine

    if workdir is not None and os.path.isdir(workdir):
        os.chdir(workdir)  # each actor is a process of its own
    os.environ.update(env or {})
    return Engine()


def driver_settings() -> tuple[str, DriverEnvironment]:
    """The current directory and the ``TLM_*`` variables, for :func:`default_engine` (their
    values hidden from every repr: ``TLM_DATABASE_URL`` may hold a password)."""
    return os.getcwd(), DriverEnvironment(
        {k: v for k, v in os.environ.items() if k.startswith("TLM_")}
    )


class LinesDatasource(Datasource):
    """The non-blank lines of a JSONL file as rows ``{line, text}``, except ``skip``."""

    def __init__(self, path: str, skip: frozenset[int] = frozenset(), rows: int = 64) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._path = path
        self._skip = skip
        self._rows = rows

    def estimate_inmemory_data_size(self) -> int | None:
        return os.path.getsize(self._path)

    def get_read_tasks(
        self, parallelism: int, per_task_row_limit: int | None = None, data_context: Any = None
    ) -> list[ReadTask]:
        del parallelism, data_context
        path, skip, rows = self._path, self._skip, self._rows

        def read() -> Iterator[pa.Table]:
            lines: list[int] = []
            texts: list[str] = []
            for number, text in input_lines(path):
                if number in skip:
                    continue
                lines.append(number)
                texts.append(text)
                if len(lines) == rows:
                    yield pa.table({"line": lines, "text": texts})
                    lines, texts = [], []
            if lines:
                yield pa.table({"line": lines, "text": texts})

        metadata = BlockMetadata(
            num_rows=None,
            size_bytes=os.path.getsize(path),
            input_files=(path,),
            exec_stats=None,
        )
        return [ReadTask(read, metadata, per_task_row_limit=per_task_row_limit)]


class EngineActor:
    """A Ray Data actor: one engine, opened once, at most ``max_in_flight`` executions at once."""

    def __init__(
        self,
        engine_factory: Callable[[], Any],
        task: str,
        version: str,
        options: ExecuteOptions,
        max_in_flight: int,
        run_id: str,
        source: str,
    ) -> None:
        self._portal_context = anyio.from_thread.start_blocking_portal()
        self._portal = self._portal_context.__enter__()
        self._engine = engine_factory()
        self._portal.call(self._engine.open)
        self._compiled = self._engine.compiled(task, version)
        self._options = options
        self._run_id = run_id
        self._source = source
        self._limit = self._portal.call(partial(_semaphore, max_in_flight))

    def __call__(self, batch: Mapping[str, Any]) -> dict[str, list[Any]]:
        rows = list(zip(_plain(batch["line"]), _plain(batch["text"]), strict=True))
        done = self._portal.call(self._run, rows)
        return {"line": [number for number, _ in rows], "result": done}

    async def _run(self, rows: list[tuple[int, str]]) -> list[str]:
        lines = [""] * len(rows)

        async def one(index: int, number: int, text: str) -> None:
            async with self._limit:
                lines[index] = await self._execute(number, text)

        async with anyio.create_task_group() as group:
            for index, (number, text) in enumerate(rows):
                group.start_soon(one, index, number, text)
        return lines

    async def _execute(self, number: int, text: str) -> str:
        parsed = parse_line(text, source=self._source, line=number)
        runtime = self._engine._require_open()
        job = new_job(
            runtime,
            self._compiled,
            parsed.value,
            self._options,
            index=number,
            execution_id=execution_id_for(self._run_id, number),
        )
        try:
            result = await run_inline(job)
        except TLMError:
            if job.result is None:
                raise
            result = job.result
        note = parsed.error if isinstance(result.error, InputInvalid) else None
        return json.dumps(result_line(number, result, note), ensure_ascii=False)

    def __del__(self) -> None:
        portal = getattr(self, "_portal", None)
        if portal is None:
            return
        try:  # records are committed before each row returns; this flushes telemetry
            portal.call(self._engine.aclose)
            self._portal_context.__exit__(None, None, None)
        except Exception:  # the process is going away
            pass


def _semaphore(limit: int) -> anyio.Semaphore:
    return anyio.Semaphore(limit)


def _plain(values: Any) -> list[Any]:
    return list(values.tolist() if hasattr(values, "tolist") else values)


async def run_ray_batch(
    engine: Any,
    task: str,
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    *,
    address: str | None = None,
    engine_factory: Callable[[], Any] | None = None,
    actors: int = 2,
    max_in_flight: int = 16,
    rows_per_call: int = 64,
    cpus_per_actor: float = 0.5,
    version: str | None = None,
    options: ExecuteOptions | Mapping[str, Any] | None = None,
    on_done: Callable[[Mapping[str, Any]], None] | None = None,
    resume: bool = True,
) -> BatchReport:
    """Run ``task`` on every line of ``input_path`` on Ray; one output line per input line.

    ``engine`` (the driver's) resolves the task version and finds the inputs already done;
    each actor builds its own engine with ``engine_factory`` (picklable; default:
    :func:`default_engine` with this directory and its ``TLM_*`` variables, so the actors read
    the same tlm.toml and record into the same store). ``max_in_flight`` bounds each actor's
    executions. ``address`` is passed to :func:`ray.init` when Ray is not initialised yet
    (``None``: a running cluster if there is one, else a local one).
    """
    for name, value in (("actors", actors), ("max_in_flight", max_in_flight)):
        if value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")
    await engine.open()
    chosen = coerce_options(options)
    resolved = engine.compiled(task, version).definition.version
    if resume:
        skip = await anyio.to_thread.run_sync(
            carry_over, engine.store, task, resolved, input_path, output_path
        )
    else:
        skip = set()
        await anyio.Path(output_path).write_text("", encoding="utf-8")
    factory = engine_factory or partial(default_engine, *driver_settings())
    run = partial(
        _execute, factory, task, resolved, chosen, str(input_path), str(output_path),
        frozenset(skip), address, actors, max_in_flight, rows_per_call, cpus_per_actor, on_done,
    )  # fmt: skip
    finished, ok, cost = await anyio.to_thread.run_sync(run)
    return engine_report("ray", finished, finished, ok, cost, len(skip), output_path)


def _execute(
    factory: Callable[[], Any],
    task: str,
    version: str,
    options: ExecuteOptions,
    input_path: str,
    output_path: str,
    skip: frozenset[int],
    address: str | None,
    actors: int,
    max_in_flight: int,
    rows_per_call: int,
    cpus_per_actor: float,
    on_done: Callable[[Mapping[str, Any]], None] | None,
) -> tuple[int, int, float]:
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    run_id = secrets.token_hex(16)
    finished = ok = 0
    cost = 0.0
    written: set[int] = set()  # a retried task may hand back rows already written
    try:
        source = LinesDatasource(input_path, skip, rows_per_call)
        dataset = ray.data.read_datasource(source).map_batches(
            EngineActor,
            fn_constructor_args=(
                factory,
                task,
                version,
                options,
                max_in_flight,
                run_id,
                input_path,
            ),
            batch_size=rows_per_call,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(
                size=actors,
                max_concurrent_calls_per_actor=2,
                enable_true_multi_threading=True,
            ),
            num_cpus=cpus_per_actor,
        )
        with open(output_path, "a", encoding="utf-8") as output:
            for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
                for number, text in zip(
                    _plain(batch["line"]), _plain(batch["result"]), strict=True
                ):
                    if number in written:
                        continue
                    written.add(number)
                    output.write(text + "\n")
                    line = json.loads(text)
                    finished += 1
                    ok += line["error"] is None
                    cost += line["cost_usd"]
                    if on_done is not None:
                        on_done(line)
                output.flush()
            os.fsync(output.fileno())
    finally:
        if started:
            ray.shutdown()
    return finished, ok, cost
