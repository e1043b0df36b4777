"""``tlm review``: answer the human review queue (list, show, approve, reject, edit).

The queue lives in ``<data dir>/reviews.db``; the data directory comes from ``--data-dir``, else
``TLM_DATA_DIR``, else ``./.tlm``. A decision is seen at once by an execution waiting on it.
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
from tlm.errors import StoreError
from tlm.store import ExecutionStore, default_db_path
from tlm.verify.review_queue import REVIEWS_FILE, Decision, Review, ReviewQueue, feedback_hook

__all__ = ("COMMANDS", "review")


def _queue(ctx: click.Context) -> ReviewQueue:
    data_dir: Path = ctx.obj["data_dir"]
    path = data_dir / REVIEWS_FILE
    if not path.is_file():
        raise click.ClickException(
            f"no review queue at {path}: nothing was queued there yet "
            "(check --data-dir or TLM_DATA_DIR)"
        )
    try:
        store = _execution_store(data_dir)
        return ReviewQueue(path, on_decision=feedback_hook(store) if store else None)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None


def _execution_store(data_dir: Path) -> ExecutionStore | None:
    """The execution store beside the queue, where decisions are recorded as feedback."""
    path = default_db_path(data_dir)
    return ExecutionStore(path) if path.is_file() else None


def _when(timestamp: float) -> str:
    moment = datetime.datetime.fromtimestamp(timestamp, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%SZ")


def _review_json(review: Review) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": review.id,
        "status": review.status,
        "queue": review.queue,
        "task_id": review.task_id,
        "task_version": review.task_version,
        "execution_id": review.execution_id,
        "created_at": _when(review.created_at),
        "input": review.input,
        "output": review.output,
    }
    if review.decision is not None:
        d = review.decision
        data["decision"] = {
            "action": d.action,
            "output": d.output,
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
    try:
        review = queue.get(review_id)
        decide = getattr(queue, action)
        decision: Decision = decide(review.id, **kwargs)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{review.id}: {decision.action} recorded")
    return decision


@click.group()
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=configured_data_dir,
    show_default="TLM_DATA_DIR, else data_dir in tlm.toml, else .tlm",
    help="Directory holding reviews.db.",
)
@click.pass_context
def review(ctx: click.Context, data_dir: Path) -> None:
    """Answer the human review queue."""
    ctx.ensure_object(dict)
    ctx.obj["data_dir"] = data_dir


@review.command("list")
@click.option("--queue", "queue_name", default=None, help="Only this queue.")
@click.option("--all", "show_all", is_flag=True, help="Include decided reviews.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines instead of a table.")
@click.pass_context
def list_reviews(ctx: click.Context, queue_name: str | None, show_all: bool, as_json: bool) -> None:
    """List pending reviews (oldest first)."""
    reviews = _queue(ctx).list(status=None if show_all else "pending", queue=queue_name)
    if as_json:
        for item in reviews:
            click.echo(json.dumps(_review_json(item), ensure_ascii=False))
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
    try:
        item = _queue(ctx).get(review_id)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps(_review_json(item), indent=2, ensure_ascii=False))


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
