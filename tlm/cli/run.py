"""``tlm execute``: run one task end to end and print its output and execution id."""

from __future__ import annotations

import json
import sys
from typing import Any

import anyio
import click
from rich.console import Console
from rich.markup import escape

from tlm.cli.json_input import read_input
from tlm.cli.params import Number
from tlm.errors import BudgetExceeded, RecordNotCommitted, TLMError

__all__ = ("COMMANDS", "execute_command", "read_input", "parse_metadata")


def parse_metadata(items: tuple[str, ...]) -> dict[str, str]:
    """``--metadata KEY=VALUE`` options as a mapping (the value may contain ``=``)."""
    metadata: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{item!r}: expected KEY=VALUE", param_hint="--metadata")
        metadata[key.strip()] = value
    return metadata


@click.command("execute")
@click.argument("task")
@click.option("--input", "input_value", help="Input as JSON, a JSON file, or - for stdin.")
@click.option("--example", type=int, help="Use the definition's N-th input example instead.")
@click.option("--version", "version", help="Exact version or semver range (default: latest).")
@click.option("--model", "models", multiple=True, help="Restrict to these models (in order).")
@click.option("--variant", help="Force a prompt variant by id.")
@click.option("--no-cache", is_flag=True, help="Do not read or write the result cache.")
@click.option(
    "--max-cost", type=Number(minimum=0.0), help="Cost budget in USD for this execution (>= 0)."
)
@click.option(
    "--deadline",
    type=Number(minimum=0.0, exclusive_minimum=True),
    help="Deadline in seconds for this execution (> 0).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the whole result as JSON.")
@click.option("--session-id", help="Group this execution with others (recorded, traced).")
@click.option("--user-id", help="Whom this execution runs for (recorded, traced).")
@click.option("--tag", "tags", multiple=True, help="A tag for filtering (repeatable).")
@click.option(
    "--metadata",
    "metadata_items",
    multiple=True,
    metavar="KEY=VALUE",
    help="A fact recorded with the execution (repeatable).",
)
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
    session_id: str | None,
    user_id: str | None,
    tags: tuple[str, ...],
    metadata_items: tuple[str, ...],
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
        session_id=session_id,
        user_id=user_id,
        tags=tags,
        metadata=parse_metadata(metadata_items),
    )
    console = Console(stderr=True)
    given = None if input_value is None else read_input(input_value)  # before any set-up

    async def main() -> ExecutionResult:
        async with Engine() as engine:
            if example is not None:
                examples = engine.definition(task, version).input.examples
                if not 0 <= example < len(examples):
                    raise click.BadParameter(f"{task} has {len(examples)} input example(s)")
                data = examples[example]
            else:
                data = given
            with console.status(f"executing {task} …"):
                return await engine.execute(task, data, version=version, options=options)

    try:
        result = anyio.run(main)
    except BudgetExceeded as exc:
        _print_error(console, exc)
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
        _print_error(console, exc)
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
        soft_wrap=True,  # one line, whatever the terminal width
    )


def _print_error(console: Console, exc: Exception) -> None:
    """``error: <message>``: the message verbatim (no markup, not wrapped at the width)."""
    console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)


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
