"""``tlm run-workflow``, ``tlm workflow-runs`` and ``tlm codegen``."""

from __future__ import annotations

import difflib
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import anyio
import click
from rich.console import Console
from rich.table import Table

from tlm.cli.params import Integer, Number
from tlm.cli.run import read_input
from tlm.errors import TLMError

__all__ = ("COMMANDS", "run_workflow_command", "workflow_runs_command", "codegen_command")


def load_workflow(path: Path, name: str | None) -> Any:
    """The :class:`~tlm.workflow.Workflow` defined in the Python file ``path``."""
    from tlm.workflow import Workflow

    if not path.is_file():
        raise click.BadParameter(f"{path}: no such file")
    root = str(Path.cwd())
    if root not in sys.path:
        sys.path.insert(0, root)
    spec = importlib.util.spec_from_file_location(f"_tlm_workflow_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise click.BadParameter(f"{path}: not a Python module")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    found = {v.name: v for v in vars(module).values() if isinstance(v, Workflow)}
    if name is not None:
        if name not in found:
            raise click.BadParameter(f"{path}: no workflow {name!r} (has: {', '.join(found)})")
        return found[name]
    if len(found) != 1:
        raise click.BadParameter(
            f"{path}: defines {len(found)} workflows ({', '.join(found) or 'none'}); "
            "choose one with --name"
        )
    return next(iter(found.values()))


def _status_style(status: str) -> str:
    return {
        "succeeded": "green",
        "failed": "red",
        "cancelled": "yellow",
        "skipped": "yellow",
        "defaulted": "yellow",
    }.get(status, "white")


def _steps_table(run: Any) -> Table:
    table = Table(title=f"workflow {run.workflow} · run {run.run_id} · {run.status}")
    for column in ("step", "status", "latency s", "cost $", "execution"):
        table.add_column(column)
    for s in run.steps:
        table.add_row(
            s.path,
            f"[{_status_style(s.status)}]{s.status}[/]",
            f"{s.latency_s:.2f}",
            f"{s.cost_usd:.6f}",
            (s.execution_id or "")[:12],
        )
    return table


@click.command("run-workflow")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--input", "input_value", required=True, help="Input as JSON, a file, or -.")
@click.option("--name", help="The workflow to run when the file defines several.")
@click.option("--max-cost", type=Number(minimum=0.0), help="Workflow-wide cost budget in USD.")
@click.option(
    "--deadline",
    type=Number(minimum=0.0, exclusive_minimum=True),
    help="Workflow-wide deadline in seconds.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the output only, as JSON.")
def run_workflow_command(
    path: Path,
    input_value: str,
    name: str | None,
    max_cost: float | None,
    deadline: float | None,
    as_json: bool,
) -> None:
    """Run the workflow defined in PATH on an input, with progress, and print its output."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from tlm.definition.model import Budget
    from tlm.engine import Engine
    from tlm.workflow import StepEvent, WorkflowResult

    workflow = load_workflow(path, name)
    value = read_input(input_value)
    console = Console(stderr=True)
    budget = Budget(max_cost_usd=max_cost, deadline_s=deadline)

    async def main() -> WorkflowResult[Any]:
        with Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as progress:
            running: dict[str, Any] = {}
            overall = progress.add_task(f"workflow {workflow.name}", total=None)

            def observe(event: StepEvent) -> None:
                s = event.step
                if event.kind == "started":
                    running[s.path] = progress.add_task(f"  {s.path}", total=None)
                    return
                task = running.pop(s.path, None)
                if task is not None:
                    progress.remove_task(task)
                cost = f" ${s.cost_usd:.6f}" if s.kind == "task" else ""
                progress.console.print(
                    f"[{_status_style(s.status)}]{s.status:>9}[/] {s.path} "
                    f"({s.latency_s:.1f}s{cost})"
                )

            async with Engine() as engine:
                try:
                    done: WorkflowResult[Any] = await workflow.run(
                        engine, value, budget=budget, observer=observe
                    )
                    return done
                finally:
                    progress.remove_task(overall)

    try:
        result = anyio.run(main)
    except (TLMError, ExceptionGroup, OSError) as exc:
        console.print(f"[red]error:[/] {exc}")
        for note in getattr(exc, "__notes__", ()):
            console.print(f"  {note}")
        sys.exit(1)
    if not as_json:
        console.print(_steps_table(result.run))
        console.print(f"cost ${result.cost_usd:.6f} · {result.run.latency_s:.1f}s")
    click.echo(json.dumps(result.output, indent=2, ensure_ascii=False, default=str))


@click.command("workflow-runs")
@click.argument("run_id", required=False)
@click.option("--workflow", help="Only runs of this workflow.")
@click.option("--limit", type=Integer(minimum=1), default=20, show_default=True)
def workflow_runs_command(run_id: str | None, workflow: str | None, limit: int) -> None:
    """List recent workflow runs, or show one run (RUN_ID, a unique prefix is enough)."""
    from tlm.engine import load_config
    from tlm.errors import TLMError
    from tlm.workflow.store import DB_NAME, open_workflow_store

    console = Console()
    config = load_config()
    path = Path(config.data_dir) / DB_NAME
    if config.database is None and not path.is_file():
        raise click.ClickException(f"{path}: no workflow runs recorded yet")
    try:
        store = open_workflow_store(config.data_dir, config.database)
    except TLMError as exc:
        raise click.ClickException(str(exc)) from None
    if run_id is not None:
        try:
            run = store.get(run_id)
        except KeyError as exc:
            raise click.ClickException(str(exc.args[0])) from None
        console.print(_steps_table(run))
        console.print(f"started {run.started_at} · {run.latency_s:.2f}s · ${run.cost_usd:.6f}")
        if run.error:
            console.print(f"[red]error:[/] {run.error}")
        return
    table = Table(title="workflow runs")
    for column in ("run", "workflow", "status", "started", "latency s", "cost $"):
        table.add_column(column)
    for run in store.list(workflow=workflow, limit=limit):
        table.add_row(
            run.run_id[:12],
            run.workflow,
            f"[{_status_style(run.status)}]{run.status}[/]",
            run.started_at,
            f"{run.latency_s:.2f}",
            f"{run.cost_usd:.6f}",
        )
    console.print(table)


@click.command("codegen")
@click.option(
    "--definitions",
    "definitions_dir",
    type=click.Path(path_type=Path),
    help="Definitions directory (default: the configured one).",
)
@click.option(
    "--output",
    type=click.Path(path_type=Path),
    default=Path("dsl/tasks.py"),
    show_default=True,
    help="The module to write.",
)
@click.option("--check", is_flag=True, help="Write nothing; exit 1 if the module is out of date.")
def codegen_command(definitions_dir: Path | None, output: Path, check: bool) -> None:
    """Generate typed models (TypedDicts and TaskRefs) of every task's input and output."""
    from tlm.definition.registry import DefinitionRegistry, default_definitions_dir
    from tlm.engine import load_config
    from tlm.workflow.codegen import generate_module

    try:
        directory = definitions_dir or load_config().definitions_dir or default_definitions_dir()
        source = generate_module(DefinitionRegistry.from_directory(directory))
    except TLMError as exc:
        raise click.ClickException(str(exc)) from None
    current = output.read_text(encoding="utf-8") if output.is_file() else ""
    if check:
        if current == source:
            click.echo(f"{output} is up to date")
            return
        diff = difflib.unified_diff(
            current.splitlines(keepends=True),
            source.splitlines(keepends=True),
            f"{output} (on disk)",
            f"{output} (generated)",
        )
        click.echo("".join(diff), nl=False)
        click.echo(f"{output} is out of date: run `tlm codegen`", err=True)
        sys.exit(1)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(source, encoding="utf-8")
    click.echo(f"wrote {output}")


COMMANDS = (run_workflow_command, workflow_runs_command, codegen_command)
