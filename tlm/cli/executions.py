"""``tlm executions list|show``, ``tlm export``, ``tlm feedback``: the execution log from a shell.

The store is ``<data dir>/tlm.db``; the data directory comes from ``--data-dir``, else the
``TLM_DATA_DIR`` environment variable, else ``./.tlm``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import click

from tlm.cli.params import InputError, Integer, Number
from tlm.durations import OutOfRange, parse_since
from tlm.errors import StoreError, TLMError
from tlm.numbers import FEEDBACK_SCORE_RANGE
from tlm.store.base import ExecutionLog
from tlm.store.schema import escape_surrogates
from tlm.store.sqlite import default_db_path
from tlm.telemetry.records import ExecutionRecord

__all__ = ("COMMANDS", "executions", "export", "feedback", "parse_since", "finetune_example")


class _Since(click.ParamType[datetime]):
    name = "since"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> datetime:
        if isinstance(value, datetime):
            return value
        try:
            return parse_since(str(value))
        except OutOfRange as exc:
            raise InputError(f"--since: {exc}") from None
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def configured_data_dir() -> Path:
    """The data directory from ``TLM_DATA_DIR``, else ``tlm.toml``, else ``.tlm``."""
    from tlm.engine.config import load_config
    from tlm.errors import ConfigurationError

    try:
        return load_config().data_dir
    except ConfigurationError as exc:
        raise click.UsageError(str(exc)) from None


_data_dir_option = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=configured_data_dir,
    show_default="TLM_DATA_DIR, else data_dir in tlm.toml, else .tlm",
    help="Data directory holding tlm.db.",
)


@contextmanager
def _open_store(data_dir: Path) -> Iterator[ExecutionLog]:
    from tlm.engine.config import load_config
    from tlm.errors import ConfigurationError
    from tlm.store.backend import open_store

    try:
        database = load_config().database  # every replica's records, when shared
    except ConfigurationError as exc:
        raise click.UsageError(str(exc)) from None
    path = default_db_path(data_dir)
    if database is None and not path.exists():
        raise click.ClickException(f"no execution store at {path} (nothing executed yet?)")
    try:
        store = open_store(data_dir, database)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        yield store
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        store.close()


@click.group()
def executions() -> None:
    """Read the execution log."""


@executions.command("list")
@click.option("--task", "task_id", help="Only this task id.")
@click.option("--version", help="Only this task version.")
@click.option("--since", type=_Since(), help="Only since then: 7d, 12h, 30m or an ISO date.")
@click.option("--limit", type=Integer(minimum=1), default=50, show_default=True)
@_data_dir_option
def list_executions(
    task_id: str | None,
    version: str | None,
    since: datetime | None,
    limit: int,
    data_dir: Path,
) -> None:
    """List recent executions, newest first."""
    from rich.console import Console
    from rich.table import Table

    with _open_store(data_dir) as store:
        records = store.query(
            task_id=task_id, version=version, since=since, limit=limit, newest_first=True
        )
    table = Table("execution id", "task", "version", "time (UTC)", "status", "verified", "cost $")
    for r in records:
        verified = "-" if r.passed is None else ("pass" if r.passed else "fail")
        table.add_row(
            r.execution_id,
            r.task_id,
            r.task_version,
            r.timestamp[:19].replace("T", " "),
            r.status,
            verified,
            f"{r.performance.cost:.6f}",
        )
    Console(width=200).print(table)
    click.echo(f"{len(records)} execution(s)")


@executions.command("show")
@click.argument("execution_id")
@click.option("--json", "as_json", is_flag=True, help="Print the record as JSON.")
@_data_dir_option
def show_execution(execution_id: str, as_json: bool, data_dir: Path) -> None:
    """Show one execution record with its feedback."""
    with _open_store(data_dir) as store:
        record = store.get(execution_id)
    if record is None:
        raise click.ClickException(f"no execution with id {execution_id!r}")
    if as_json:
        click.echo(escape_surrogates(json.dumps(record.to_dict(), indent=2, ensure_ascii=False)))
        return
    data = record.to_dict()
    for key in (
        "input",
        "output",
        "verification_results",
        "performance",
        "feedback",
        "error",
        "selection",
    ):
        data[key] = escape_surrogates(json.dumps(data[key], ensure_ascii=False))
    width = max(len(k) for k in data)
    for key, value in data.items():
        click.echo(f"{key.ljust(width)}  {value}")


def finetune_example(record: ExecutionRecord) -> dict[str, Any] | None:
    """An OpenAI chat fine-tuning line for a verified execution, or ``None`` if it is not one."""
    if record.status != "ok" or record.passed is not True or not record.prompt:
        return None
    messages: list[dict[str, str]] = []
    if record.system_prompt:
        messages.append({"role": "system", "content": record.system_prompt})
    messages.append({"role": "user", "content": record.prompt})
    output = (
        record.output
        if isinstance(record.output, str)
        else json.dumps(record.output, ensure_ascii=False)
    )
    messages.append({"role": "assistant", "content": output})
    return {"messages": messages}


@click.command()
@click.option("--format", "fmt", type=click.Choice(["jsonl"]), default="jsonl", show_default=True)
@click.option("--finetune", is_flag=True, help="Verified executions as chat fine-tuning JSONL.")
@click.option("--task", "task_id", help="Only this task id.")
@click.option("--version", help="Only this task version.")
@click.option("--since", type=_Since(), help="Only since then: 7d, 12h, 30m or an ISO date.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Write here instead of standard output.",
)
@_data_dir_option
def export(
    fmt: str,
    finetune: bool,
    task_id: str | None,
    version: str | None,
    since: datetime | None,
    out: Path | None,
    data_dir: Path,
) -> None:
    """Export execution records as JSON lines (or a fine-tuning dataset)."""
    from tlm.engine.config import load_config
    from tlm.telemetry.redact import Redaction

    try:  # records are stored redacted; this also covers records kept before redaction was set
        scope = Redaction(fields=frozenset(load_config().redact))
    except TLMError as exc:
        raise click.ClickException(str(exc)) from None
    count = 0
    with _open_store(data_dir) as store:
        stream: IO[str]
        stream = sys.stdout if out is None else out.open("w", encoding="utf-8")
        try:
            for record in store.iter_query(task_id=task_id, version=version, since=since):
                line = finetune_example(record) if finetune else record.to_dict()
                if line is None:
                    continue
                # a lone surrogate the store kept is written as its JSON escape: valid UTF-8
                stream.write(escape_surrogates(scope.json(line)) + "\n")
                count += 1
        finally:
            if out is not None:
                stream.close()
    if out is not None:
        kind = "fine-tuning example(s)" if finetune else "record(s)"
        click.echo(f"wrote {count} {kind} to {out}", err=True)


@click.command()
@click.argument("execution_id")
@click.option(
    "--score",
    type=Number(minimum=FEEDBACK_SCORE_RANGE[0], maximum=FEEDBACK_SCORE_RANGE[1]),
    help="A score from 0 (wrong) to 1 (right).",
)
@click.option("--correct/--incorrect", default=None, help="Whether the output was right.")
@click.option("--note", help="Free text.")
@click.option(
    "--source", type=click.Choice(["human", "system"]), default="human", show_default=True
)
@_data_dir_option
def feedback(
    execution_id: str,
    score: float | None,
    correct: bool | None,
    note: str | None,
    source: str,
    data_dir: Path,
) -> None:
    """Record feedback on an execution."""
    if score is None and correct is None and not note:
        raise click.UsageError("give --score, --correct/--incorrect or --note")
    with _open_store(data_dir) as store:
        given = store.add_feedback(
            execution_id,
            score=score,
            correct=correct,
            note=note,
            source="human" if source == "human" else "system",
        )
    click.echo(f"feedback recorded for {execution_id} at {given.at}")


COMMANDS = (executions, export, feedback)
