"""``tlm eval``: replay a new task version against recorded history and report the difference.

State lives in ``<data dir>/rollouts.db`` beside the execution log; see ``docs/rollouts.md``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import attrs
import click

from tlm.cli.executions import _data_dir_option
from tlm.cli.rollout import _current_definition, _engine, _fail, _fmt, _since, _split_ref, _store
from tlm.errors import TLMError

if TYPE_CHECKING:
    from tlm.engine.engine import Engine
    from tlm.rollout.report import EvalReport
    from tlm.rollout.repository import Rollouts

__all__ = ("COMMANDS", "eval_group")


def _print_report(report: EvalReport) -> None:
    run = report.run
    click.echo(
        f"evaluation {run.id} · {run.task_id} {run.new_version} against {run.current_version} · "
        f"{run.status} · spent ${run.spent_usd:.6f}"
        + (
            f" · {report.pending} input(s) pending (resume with `tlm eval resume {run.id[:12]}`)"
            if report.pending
            else ""
        )
    )
    click.echo(
        f"{'version':<18} {'agreement':>9} {'95% CI':>13} {'compared':>8} {'pass rate':>9} "
        f"{'$/execution':>12} {'s/execution':>11} {'failed':>6}"
    )
    for label, summary in (("new", report.new), ("current", report.current)):
        low, high = summary.agreement_interval
        click.echo(
            f"{summary.version + ' (' + label + ')':<18} {_fmt(summary.agreement, '.3f'):>9} "
            f"{f'{low:.2f}-{high:.2f}':>13} {summary.compared:>8} "
            f"{_fmt(summary.pass_rate, '.3f'):>9} {_fmt(summary.mean_cost_usd, '.6f'):>12} "
            f"{_fmt(summary.mean_latency_s, '.2f'):>11} {summary.failed:>6}"
        )
    if report.differences:
        click.echo(f"where the new version differs (worst first, {len(report.differences)}):")
        for diff in report.differences[:10]:
            similarity = "no output" if diff.similarity is None else f"{diff.similarity:.2f}"
            text = json.dumps(diff.input, ensure_ascii=False)
            click.echo(
                f"  #{diff.position} similarity {similarity} vs {diff.compared_with}: "
                f"{text[:100]}{'…' if len(text) > 100 else ''}"
            )
            click.echo(f"      expected {json.dumps(diff.expected, ensure_ascii=False)[:160]}")
            got = diff.error or json.dumps(diff.got, ensure_ascii=False)
            click.echo(f"      got      {got[:160]}")
    verdict = "RECOMMENDED" if report.recommended else "NOT RECOMMENDED"
    click.echo(f"{verdict}: {'; '.join(report.reasons)}")


async def _report(engine: Engine, store: Rollouts, run_id: str, margin: float) -> EvalReport:
    from tlm.rollout.replay import similarity_settings
    from tlm.rollout.report import summarise

    run = store.run(run_id)
    _, threshold = similarity_settings(engine.definition(run.task_id, run.new_version))
    return summarise(run, store.items(run.id), threshold=threshold, margin=margin)


class _EvalGroup(click.Group):
    """``tlm eval TASK@NEW ...`` runs an evaluation; ``show``, ``list``, ``resume`` inspect."""

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["run", *args]
        return super().resolve_command(ctx, args)


@click.group("eval", cls=_EvalGroup)
def eval_group() -> None:
    """Replay recorded inputs through a new task version and compare it with the current one.

    \b
    tlm eval TASK@NEW --against TASK@CURRENT [--since 30d] [--limit N] [--max-cost USD]
    tlm eval show RUN · tlm eval list [TASK] · tlm eval resume RUN
    """


_margin_option = click.option(
    "--margin",
    type=click.FloatRange(0, 1, max_open=True),
    default=0.05,
    show_default=True,
    help="How much lower agreement and pass rate may be and still count as as good.",
)


@eval_group.command("run")
@click.argument("new_ref", metavar="TASK@NEW")
@click.option(
    "--against",
    "current_ref",
    metavar="TASK@CURRENT",
    help="The version to compare with (default: the live version).",
)
@click.option("--since", help="Only inputs recorded in this period, e.g. 30d.")
@click.option("--limit", type=click.IntRange(min=1, max=1_000_000), help="At most N inputs.")
@click.option(
    "--max-cost", type=click.FloatRange(min=0), help="Stop once the run spent this (USD)."
)
@click.option("--concurrency", type=click.IntRange(1, 256), default=4, show_default=True)
@_margin_option
@click.option("--json", "as_json", is_flag=True)
@_data_dir_option
def eval_run(
    new_ref: str,
    current_ref: str | None,
    since: str | None,
    limit: int | None,
    max_cost: float | None,
    concurrency: int,
    margin: float,
    as_json: bool,
    data_dir: Path,
) -> None:
    """Replay TASK's recorded inputs through version NEW."""
    from tlm.rollout.replay import run_replay, start_replay

    task_id, new_version = _split_ref(new_ref, "TASK@NEW")
    when = _since(since)

    async def main() -> EvalReport:
        async with _engine(data_dir) as engine:
            new = engine.definition(task_id, new_version)
            current = await _current_definition(engine, task_id, current_ref, new.version)
            store = _store(data_dir)
            run = await start_replay(
                engine,
                store,
                task_id,
                new.version,
                current.version,
                since=when,
                limit=limit,
                max_cost_usd=max_cost,
            )
            click.echo(f"evaluation {run.id}: replaying inputs …", err=True)
            await run_replay(engine, store, run, concurrency=concurrency)
            return await _report(engine, store, run.id, margin)

    try:
        report = anyio.run(main)
    except TLMError as exc:
        _fail(exc)
    _emit(report, as_json)


def _emit(report: EvalReport, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2, ensure_ascii=False, default=str))
    else:
        _print_report(report)


@eval_group.command("resume")
@click.argument("run_id", metavar="RUN")
@click.option("--max-cost", type=click.FloatRange(min=0), help="A new total budget (USD).")
@click.option("--concurrency", type=click.IntRange(1, 256), default=4, show_default=True)
@_margin_option
@click.option("--json", "as_json", is_flag=True)
@_data_dir_option
def eval_resume(
    run_id: str,
    max_cost: float | None,
    concurrency: int,
    margin: float,
    as_json: bool,
    data_dir: Path,
) -> None:
    """Run what an evaluation stopped before (its budget, or a crash)."""
    from tlm.rollout.replay import run_replay

    async def main() -> EvalReport:
        async with _engine(data_dir) as engine:
            store = _store(data_dir)
            run = store.run(run_id)
            if max_cost is not None:
                run = attrs.evolve(run, settings={**run.settings, "max_cost_usd": max_cost})
            await run_replay(engine, store, run, concurrency=concurrency)
            return await _report(engine, store, run.id, margin)

    try:
        report = anyio.run(main)
    except TLMError as exc:
        _fail(exc)
    _emit(report, as_json)


@eval_group.command("show")
@click.argument("run_id", metavar="RUN")
@_margin_option
@click.option("--json", "as_json", is_flag=True)
@_data_dir_option
def eval_show(run_id: str, margin: float, as_json: bool, data_dir: Path) -> None:
    """Show an evaluation run's figures and the inputs where the versions differ."""

    async def main() -> EvalReport:
        async with _engine(data_dir) as engine:
            return await _report(engine, _store(data_dir), run_id, margin)

    try:
        report = anyio.run(main)
    except TLMError as exc:
        _fail(exc)
    _emit(report, as_json)


@eval_group.command("list")
@click.argument("task_id", required=False)
@_data_dir_option
def eval_list(task_id: str | None, data_dir: Path) -> None:
    """List evaluation runs, newest first."""
    try:
        runs = _store(data_dir).runs(task_id)
    except TLMError as exc:
        _fail(exc)
    for run in runs:
        when = datetime.fromtimestamp(run.created_at, UTC).strftime("%Y-%m-%d %H:%M")
        click.echo(
            f"{run.id[:12]}  {when}  {run.task_id} {run.new_version} vs {run.current_version}  "
            f"{run.status}  ${run.spent_usd:.6f}"
        )


# --- rollouts ---------------------------------------------------------------------------------


COMMANDS = (eval_group,)
