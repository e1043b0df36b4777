"""``tlm batch``: a task over a JSONL file, locally or through the providers' batch APIs.

    tlm batch TASK --input in.jsonl --output out.jsonl                  # engine.map, bounded memory
    tlm batch TASK --input in.jsonl --output out.jsonl --provider-batch  # half price, within 24 h
    tlm batch --resume [--run RUN_ID]     # after a crash or reboot: collect, resubmit, finish
    tlm batch --cancel [--run RUN_ID]     # cancel the provider batches; record the rest
    tlm batch --runs                      # the provider-batch runs and where they stand
    tlm batch TASK --input in.jsonl --output out.jsonl --ray [ADDRESS]   # an actor pool on Ray

Local and Ray runs are resumable: a re-run skips the inputs whose execution already succeeded
(``--fresh`` runs everything again).

The execution mode is one flag among several (``--provider-batch`` now; others may join), each
with the same input, output and record guarantees.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import anyio
import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from tlm.errors import TLMError

__all__ = ("COMMANDS", "batch_command")


def _count_lines(path: Path) -> int:
    with path.open(encoding="utf-8") as handle:
        return sum(1 for line in handle if line.strip())


@click.command("batch")
@click.argument("task", required=False)
@click.option(
    "--input", "input_path", type=click.Path(path_type=Path), help="JSONL, one input a line."
)
@click.option("--output", "output_path", type=click.Path(path_type=Path), help="JSONL results.")
@click.option("--provider-batch", is_flag=True, help="Use the providers' batch APIs (batch price).")
@click.option(
    "--ray",
    "ray_address",
    is_flag=False,
    flag_value="",
    default=None,
    metavar="[ADDRESS]",
    help="Run on Ray (tlm[ray]): a cluster address, or none for RAY_ADDRESS / a local one.",
)
@click.option("--actors", type=int, default=2, show_default=True, help="Ray: engine actors.")
@click.option("--resume", is_flag=True, help="Continue a provider-batch run from its saved state.")
@click.option("--cancel", is_flag=True, help="Cancel a provider-batch run's provider batches.")
@click.option("--runs", "list_runs", is_flag=True, help="List the provider-batch runs.")
@click.option("--run", "run_id", help="The run to resume or cancel (default: the newest open one).")
@click.option("--version", "version", help="Exact version or semver range (default: latest).")
@click.option("--model", "models", multiple=True, help="Restrict to these models (in order).")
@click.option("--max-cost", type=float, help="Budget in USD for the whole run.")
@click.option("--max-in-flight", type=int, default=16, show_default=True)
@click.option("--max-requests-per-batch", type=int, help="Split provider batches smaller.")
@click.option(
    "--poll-interval",
    type=float,
    default=5.0,
    show_default=True,
    help="First wait between status polls, in seconds (doubles while nothing changes).",
)
@click.option("--no-wait", is_flag=True, help="Submit and return; collect later with --resume.")
@click.option(
    "--fresh",
    is_flag=True,
    help="Run every input again (default: skip inputs whose execution already succeeded).",
)
def batch_command(
    task: str | None,
    input_path: Path | None,
    output_path: Path | None,
    provider_batch: bool,
    ray_address: str | None,
    actors: int,
    resume: bool,
    cancel: bool,
    list_runs: bool,
    run_id: str | None,
    version: str | None,
    models: tuple[str, ...],
    max_cost: float | None,
    max_in_flight: int,
    max_requests_per_batch: int | None,
    poll_interval: float,
    no_wait: bool,
    fresh: bool,
) -> None:
    """Run TASK on every line of --input; write one result line per input to --output."""
    from tlm import batch as api
    from tlm.engine import Engine, ExecuteOptions

    modes = sum([resume, cancel, list_runs])
    if modes > 1:
        raise click.UsageError("give at most one of --resume, --cancel and --runs")
    if not modes and (task is None or input_path is None or output_path is None):
        raise click.UsageError("give TASK, --input and --output (or --resume / --cancel / --runs)")
    if input_path is not None and not modes and not input_path.is_file():
        raise click.BadParameter(f"{input_path}: no such file", param_hint="--input")
    if ray_address is not None and (provider_batch or modes):
        raise click.UsageError("--ray runs TASK over --input; it does not mix with other modes")
    if ray_address is not None:
        try:
            import ray  # noqa: F401
        except ImportError:
            raise click.UsageError("--ray needs Ray: pip install 'tlm[ray]'") from None
    console = Console(stderr=True)
    poll = api.PollPolicy(initial_s=poll_interval)
    options = ExecuteOptions(models=models or None)

    async def main() -> Any:
        async with Engine() as engine:
            if list_runs:
                return _list_runs(engine)
            total = _count_lines(input_path) if input_path is not None and not modes else None
            with _progress(console, total) as (progress, advance):
                if resume:
                    return await api.resume_provider_batch(
                        engine, run_id, poll=poll, max_in_flight=max_in_flight,
                        max_requests_per_batch=max_requests_per_batch, wait=not no_wait,
                        on_done=advance,
                    )  # fmt: skip
                if cancel:
                    return await api.cancel_provider_batch(engine, run_id, poll=poll)
                assert task is not None
                assert input_path is not None
                assert output_path is not None
                if provider_batch:
                    progress.console.print(
                        f"planning {total} input(s) for provider batches …", highlight=False
                    )
                    return await api.run_provider_batch(
                        engine, task, input_path, output_path, version=version, options=options,
                        max_cost=max_cost, poll=poll, max_in_flight=max_in_flight,
                        max_requests_per_batch=max_requests_per_batch, wait=not no_wait,
                        on_done=advance,
                    )  # fmt: skip
                if ray_address is not None:
                    return await api.run_ray_batch(
                        engine, task, input_path, output_path, address=ray_address or None,
                        actors=actors, version=version, options=options,
                        max_in_flight=max_in_flight, on_done=advance, resume=not fresh,
                    )  # fmt: skip
                return await api.run_local_batch(
                    engine, task, input_path, output_path, version=version, options=options,
                    max_cost=max_cost, max_in_flight=max_in_flight, on_done=advance,
                    resume=not fresh,
                )  # fmt: skip

    try:
        report = anyio.run(main)
    except KeyboardInterrupt:
        console.print(
            "[yellow]interrupted:[/yellow] the provider batches were cancelled; "
            "`tlm batch --resume` records what they had answered",
            highlight=False,
        )
        sys.exit(130)
    except TLMError as exc:
        console.print(f"[red]error:[/red] {exc}", markup=True, highlight=False)
        sys.exit(1)
    if report is None:
        return
    _print_report(console, report)
    if report.failed:
        sys.exit(1)


class _progress:
    """A progress bar on stderr (when it is a terminal) and the callback that advances it."""

    def __init__(self, console: Console, total: int | None) -> None:
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            disable=not console.is_terminal,
        )
        self._task = self._progress.add_task("executions", total=total)

    def __enter__(self) -> tuple[Progress, Any]:
        self._progress.__enter__()
        return self._progress, lambda result: self._progress.advance(self._task)

    def __exit__(self, *exc_info: object) -> None:
        self._progress.__exit__(None, None, None)


def _list_runs(engine: Any) -> None:
    from tlm.batch import batch_state

    with batch_state(engine) as state:
        for run in state.runs():
            counts = state.counts(run.run_id)
            done = counts.get("done", 0)
            click.echo(
                f"{run.run_id}  {run.status:<9}  {run.task_id}@{run.task_version}  "
                f"{done}/{sum(counts.values())} done  {len(state.submissions(run.run_id))} "
                f"provider batch(es)  {run.created_at}  {run.output_path}"
            )


def _print_report(console: Console, report: Any) -> None:
    if report.status == "running":
        console.print(
            f"run {report.run_id}: {report.inputs} input(s) in {len(report.batches)} provider "
            f"batch(es), {report.finished} finished; collect with "
            f"`tlm batch --resume --run {report.run_id}`",
            highlight=False,
        )
        return
    worst = f" (worst case reserved ${report.worst_case_usd:.6f})" if report.batches else ""
    if report.skipped:
        worst += f" · skipped {report.skipped} already succeeded"
    console.print(
        f"{report.status}: {report.finished} of {report.inputs} input(s) · ok {report.ok} · "
        f"failed {report.failed} · ${report.cost_usd:.6f}{worst} · "
        f"{len(report.batches)} provider batch(es) · output {report.output_path}",
        highlight=False,
    )


COMMANDS = (batch_command,)
