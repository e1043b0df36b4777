"""``tlm execute``: run one task end to end and print its output and execution id."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import anyio
import click
from rich.console import Console

from tlm.errors import BudgetExceeded, RecordNotCommitted, TLMError

__all__ = ("COMMANDS", "execute_command", "read_input")


def read_input(value: str) -> Any:
    """The task input from ``--input``: inline JSON, a JSON file's path, or ``-`` for stdin."""
    if value == "-":
        text = sys.stdin.read()
        source = "<stdin>"
    elif value.lstrip().startswith(("{", "[")):
        text, source = value, "--input"
    else:
        path = Path(value)
        if not path.is_file():
            raise click.BadParameter(f"{value}: no such file (give JSON, a file, or -)")
        text, source = path.read_text(encoding="utf-8"), str(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(
            f"{source}: line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None


@click.command("execute")
@click.argument("task")
@click.option("--input", "input_value", help="Input as JSON, a JSON file, or - for stdin.")
@click.option("--example", type=int, help="Use the definition's N-th input example instead.")
@click.option("--version", "version", help="Exact version or semver range (default: latest).")
@click.option("--model", "models", multiple=True, help="Restrict to these models (in order).")
@click.option("--variant", help="Force a prompt variant by id.")
@click.option("--no-cache", is_flag=True, help="Do not read or write the result cache.")
@click.option("--max-cost", type=float, help="Cost budget in USD for this execution.")
@click.option("--deadline", type=float, help="Deadline in seconds for this execution.")
@click.option("--json", "as_json", is_flag=True, help="Print the whole result as JSON.")
def execute_command(
    task: str,
    input_value: str | None,
    example: int | None,
    version: str | None,
    models: tuple[str, ...],
    variant: str | None,
    no_cache: bool,
    max_cost: float | None,
    deadline: float | None,
    as_json: bool,
) -> None:
    """Execute TASK on an input and print the verified output and its execution id."""
    from tlm.definition.model import Budget
    from tlm.engine import Engine, ExecuteOptions
    from tlm.engine.result import ExecutionResult

    if (input_value is None) == (example is None):
        raise click.UsageError("give exactly one of --input or --example")
    options = ExecuteOptions(
        models=models or None,
        prompt_variant=variant,
        cache=not no_cache,
        budget=Budget(max_cost_usd=max_cost, deadline_s=deadline),
    )
    console = Console(stderr=True)

    async def main() -> ExecutionResult:
        async with Engine() as engine:
            if example is not None:
                examples = engine.definition(task, version).input.examples
                if not 0 <= example < len(examples):
                    raise click.BadParameter(f"{task} has {len(examples)} input example(s)")
                data = examples[example]
            else:
                assert input_value is not None
                data = read_input(input_value)
            with console.status(f"executing {task} …"):
                return await engine.execute(task, data, version=version, options=options)

    try:
        result = anyio.run(main)
    except BudgetExceeded as exc:
        console.print(f"[red]error:[/red] {exc}", markup=True, highlight=False)
        if exc.partial is not None:
            console.print("partial result:")
            click.echo(json.dumps(exc.partial, indent=2, ensure_ascii=False))
        _print_execution_id(console, exc.execution_id)
        sys.exit(1)
    except RecordNotCommitted as exc:  # the execution finished: its output is not lost
        console.print(f"[red]error:[/red] {exc}", markup=True, highlight=False, soft_wrap=True)
        if exc.output is not None:
            click.echo(json.dumps(exc.output, indent=2, ensure_ascii=False))
        sys.exit(1)
    except TLMError as exc:
        console.print(f"[red]error:[/red] {exc}", markup=True, highlight=False, soft_wrap=True)
        _print_execution_id(console, getattr(exc, "execution_id", None))
        sys.exit(1)
    if as_json:
        click.echo(json.dumps(_result_json(result), indent=2, ensure_ascii=False))
        return
    click.echo(json.dumps(result.output, indent=2, ensure_ascii=False))
    verdict = result.verdict
    verdict_text = "not verified"
    if verdict is not None:
        outcome = {True: "passed", False: "failed", None: "pending"}[verdict.passed]
        verdict_text = f"{verdict.method} {outcome} (confidence {verdict.confidence:.2f})"
    console.print(
        f"execution {result.execution_id} · {result.status} · {verdict_text} · "
        f"models {', '.join(result.models_used) or '-'} · {result.tokens} tokens · "
        f"${result.cost_usd:.6f} · {result.latency_s:.2f}s"
        + (" · cache hit" if result.cache_hit else "")
        + (f" · fallback {result.fallback}" if result.fallback else ""),
        highlight=False,
    )


def _print_execution_id(console: Console, execution_id: str | None) -> None:
    if execution_id:
        console.print(f"execution {execution_id} (recorded)", highlight=False)


def _result_json(result: Any) -> dict[str, Any]:
    verdict = result.verdict
    return {
        "execution_id": result.execution_id,
        "task_id": result.task_id,
        "task_version": result.task_version,
        "status": result.status,
        "output": result.output,
        "prompt_variant": result.prompt_variant,
        "models_used": list(result.models_used),
        "verification": None
        if verdict is None
        else {
            "method": verdict.method,
            "passed": verdict.passed,
            "confidence": verdict.confidence,
        },
        "cost_usd": result.cost_usd,
        "tokens": {"input": result.usage.input_tokens, "output": result.usage.output_tokens},
        "latency_s": result.latency_s,
        "cache_hit": result.cache_hit,
        "fallback": result.fallback,
        "attempts": result.attempts,
    }


COMMANDS = (execute_command,)
