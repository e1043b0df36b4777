"""``tlm review``: answer the human review queue (list, show, approve, reject, edit).

The queue lives in ``<data dir>/reviews.db``; the data directory comes from ``--data-dir``, else
``TLM_DATA_DIR``, else ``./.tlm``. A decision is seen at once by an execution waiting on it.

A review is named by its full id or a unique prefix of at least 8 characters. ``edit`` checks the
corrected output against the reviewed task version's output schema and rules (definitions from
``--definitions``, else the configured directory, else the output spec kept with the review) and
refuses it with every located problem.
``list`` and ``show`` mask the configured redacted fields (``redact`` in tlm.toml).
"""

from __future__ import annotations

import datetime
import getpass
import json
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from tlm.cli.executions import configured_data_dir
from tlm.errors import ConfigurationError, OutputInvalid, StoreError, TLMError
from tlm.store import ExecutionStore, default_db_path
from tlm.store.base import ExecutionLog
from tlm.telemetry.redact import Redaction
from tlm.verify.review_queue import (
    REVIEWS_FILE,
    Decision,
    Review,
    ReviewQueue,
    feedback_hook,
    open_review_queue,
)

__all__ = ("COMMANDS", "review")


def _queue(ctx: click.Context) -> ReviewQueue:
    data_dir: Path = ctx.obj["data_dir"]
    database = _config().database
    if database:  # the queue every replica shares (tlm.toml database / TLM_DATABASE_URL)
        try:
            return open_review_queue(data_dir, database, redact=_redacted_fields())
        except StoreError as exc:
            raise click.ClickException(str(exc)) from None
    path = data_dir / REVIEWS_FILE
    if not path.is_file():
        raise click.ClickException(
            f"no review queue at {path}: nothing was queued there yet "
            "(check --data-dir or TLM_DATA_DIR)"
        )
    try:
        return ReviewQueue(path, redact=_redacted_fields())
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None


def _config() -> Any:
    from tlm.engine.config import load_config

    try:
        return load_config()
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from None


def _redacted_fields() -> tuple[str, ...]:
    return tuple(_config().redact)


def _execution_store(data_dir: Path) -> ExecutionLog | None:
    """The execution store beside the queue, where decisions are recorded as feedback."""
    database = _config().database
    if database:
        from tlm.store.backend import open_store

        return open_store(data_dir, database)
    path = default_db_path(data_dir)
    return ExecutionStore(path) if path.is_file() else None


def _when(timestamp: float) -> str:
    moment = datetime.datetime.fromtimestamp(timestamp, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%SZ")


def _review_json(review: Review, redaction: Redaction) -> dict[str, Any]:
    """The review as JSON, redacted fields masked (also in reviews stored before redaction)."""
    scope = redaction.for_input(review.input)
    data: dict[str, Any] = {
        "id": review.id,
        "status": review.status,
        "queue": review.queue,
        "task_id": review.task_id,
        "task_version": review.task_version,
        "execution_id": review.execution_id,
        "created_at": _when(review.created_at),
        "input": scope.value(review.input),
        "output": scope.value(review.output),
    }
    if review.decision is not None:
        d = review.decision
        data["decision"] = {
            "action": d.action,
            "output": scope.value(d.output),
            "note": d.note,
            "reviewer": d.reviewer,
            "decided_at": _when(d.decided_at),
        }
    return data


def _default_reviewer() -> str | None:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return None


def _parse_output(value: str) -> Any:
    """``--output``: JSON text, or ``@path`` to a JSON file."""
    source = "--output"
    text = value
    if value.startswith("@"):
        path = Path(value[1:])
        source = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise click.BadParameter(f"cannot read {path}: {exc.strerror}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(
            f"{source}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None


def _decide(ctx: click.Context, action: str, review_id: str, **kwargs: Any) -> Decision:
    queue = _queue(ctx)
    if action == "edit":
        queue.output_check = _output_check(ctx)
    store: ExecutionLog | None = None
    try:
        review = queue.get(review_id)
        store = _execution_store(ctx.obj["data_dir"])  # decisions become feedback there
        queue.on_decision = feedback_hook(store) if store is not None else None
        decide = getattr(queue, action)
        decision: Decision = decide(review.id, **kwargs)
    except OutputInvalid as exc:
        lines = "\n".join(f"  {p}" for p in exc.problems)
        raise click.ClickException(
            f"the edited output for review {review_id} is not valid for task "
            f"{exc.task_id!r}; nothing was recorded:\n{lines}"
        ) from None
    except TLMError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        if store is not None:
            store.close()
    click.echo(f"{review.id}: {decision.action} recorded")
    return decision


def _output_check(ctx: click.Context) -> Any:
    """The check an edited output must pass: its task version's output schema and rules."""
    from tlm.definition.registry import DefinitionRegistry, default_definitions_dir, tasks_dir
    from tlm.verify.human import edited_output_check

    explicit = ctx.obj.get("definitions")
    root = default_definitions_dir(explicit or _config().definitions_dir)
    registry: DefinitionRegistry | None
    try:
        registry = DefinitionRegistry.from_directory(tasks_dir(root), strict=False)
    except (TLMError, OSError) as exc:
        if explicit:
            raise click.ClickException(f"cannot load definitions from {root}: {exc}") from None
        registry = None  # the output spec kept with the review is checked instead
    return edited_output_check(registry)


@click.group()
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=configured_data_dir,
    show_default="TLM_DATA_DIR, else data_dir in tlm.toml, else .tlm",
    help="Directory holding reviews.db.",
)
@click.option(
    "--definitions",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Definitions directory the edited output is checked against (default: configured).",
)
@click.pass_context
def review(ctx: click.Context, data_dir: Path, definitions: Path | None) -> None:
    """Answer the human review queue."""
    ctx.ensure_object(dict)
    ctx.obj["data_dir"] = data_dir
    ctx.obj["definitions"] = definitions


@review.command("list")
@click.option("--queue", "queue_name", default=None, help="Only this queue.")
@click.option("--all", "show_all", is_flag=True, help="Include decided reviews.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines instead of a table.")
@click.pass_context
def list_reviews(ctx: click.Context, queue_name: str | None, show_all: bool, as_json: bool) -> None:
    """List pending reviews (oldest first)."""
    queue = _queue(ctx)
    reviews = queue.list(status=None if show_all else "pending", queue=queue_name)
    if as_json:
        for item in reviews:
            click.echo(json.dumps(_review_json(item, queue.redaction), ensure_ascii=False))
        return
    if not reviews:
        click.echo("no reviews" if show_all else "no pending reviews")
        return
    table = Table("id", "status", "queue", "task", "execution", "created")
    for item in reviews:
        table.add_row(
            item.id,
            item.status,
            item.queue,
            f"{item.task_id}@{item.task_version}",
            item.execution_id,
            _when(item.created_at),
        )
    Console(width=max(160, Console().width)).print(table)


@review.command("show")
@click.argument("review_id")
@click.pass_context
def show(ctx: click.Context, review_id: str) -> None:
    """Show one review (input, output, decision) as JSON."""
    queue = _queue(ctx)
    try:
        item = queue.get(review_id)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps(_review_json(item, queue.redaction), indent=2, ensure_ascii=False))


@review.command("approve")
@click.argument("review_id")
@click.option("--note", default=None, help="Why (optional).")
@click.pass_context
def approve(ctx: click.Context, review_id: str, note: str | None) -> None:
    """Accept the output as it is."""
    _decide(ctx, "approve", review_id, note=note, reviewer=_default_reviewer())


@review.command("reject")
@click.argument("review_id")
@click.option("--note", required=True, help="Why the output is wrong.")
@click.pass_context
def reject(ctx: click.Context, review_id: str, note: str) -> None:
    """Reject the output."""
    _decide(ctx, "reject", review_id, note=note, reviewer=_default_reviewer())


@review.command("edit")
@click.argument("review_id")
@click.option("--output", "new_output", required=True, help="Corrected output: JSON or @file.")
@click.option("--note", default=None, help="What was changed (optional).")
@click.pass_context
def edit(ctx: click.Context, review_id: str, new_output: str, note: str | None) -> None:
    """Replace the output with a corrected one."""
    value = _parse_output(new_output)
    _decide(ctx, "edit", review_id, new_output=value, note=note, reviewer=_default_reviewer())


COMMANDS = (review,)
