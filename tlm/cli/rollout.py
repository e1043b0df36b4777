"""``tlm rollout`` (canaries), and the helpers it shares with ``tlm eval`` (:mod:`.evaluate`).

State lives in ``<data dir>/rollouts.db`` beside the execution log; see ``docs/rollouts.md``.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import anyio
import attrs
import click

from tlm.cli.executions import _data_dir_option
from tlm.durations import parse_duration
from tlm.errors import TLMError

if TYPE_CHECKING:
    from tlm.engine.engine import Engine
    from tlm.rollout.repository import Rollouts
    from tlm.rollout.state import Rollout

__all__ = ("COMMANDS", "rollout_group")


def _engine(data_dir: Path) -> Engine:
    from tlm.engine import Engine
    from tlm.engine.config import load_config

    try:
        config = load_config()
    except TLMError as exc:
        raise click.ClickException(str(exc)) from exc
    return Engine(attrs.evolve(config, data_dir=data_dir))


def _store(data_dir: Path) -> Rollouts:
    """The rollouts of the configured database (PostgreSQL), else of ``data_dir``."""
    from tlm.engine.config import load_config
    from tlm.rollout.repository import open_rollouts

    try:
        database = load_config().database
    except TLMError as exc:
        raise click.ClickException(str(exc)) from exc
    return open_rollouts(data_dir, database)


def _split_ref(ref: str, what: str) -> tuple[str, str | None]:
    task_id, sep, version = ref.partition("@")
    if not task_id or (sep and not version):
        raise click.BadParameter(f"{ref!r}: expected TASK or TASK@VERSION", param_hint=what)
    return task_id, version or None


def _fail(exc: Exception) -> NoReturn:
    click.echo(f"error: {exc}", err=True)
    sys.exit(1)


def _since(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        duration = parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from None
    try:
        return datetime.now(UTC) - duration
    except OverflowError:
        raise click.BadParameter(f"{value!r} reaches before year 1", param_hint="--since") from None


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


async def _current_definition(
    engine: Engine, task_id: str, current_ref: str | None, new_version: str
) -> Any:
    if current_ref is not None:
        other, version = _split_ref(current_ref, "--against")
        if other != task_id:
            raise click.BadParameter(
                f"compare versions of one task ({task_id}), not {other}", param_hint="--against"
            )
        return engine.definition(task_id, version)
    router = engine.rollouts
    live = None
    if router is not None:
        live = await router.version_for(task_id, None)
    if live is not None and live != new_version:
        return engine.definition(task_id, live)
    older = [v for v in engine.registry.versions(task_id) if v != new_version]
    if not older:
        raise click.UsageError(f"{task_id} has no other version to compare with; give --against")
    previous = engine.registry.previous(engine.definition(task_id, new_version))
    return previous if previous is not None else engine.definition(task_id, older[-1])


def _share(value: str) -> float:
    text = value.strip()
    try:
        share = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise click.BadParameter(
            f"{value!r}: give a share like 10% or 0.1", param_hint="--share"
        ) from None
    if not 0 < share < 1:
        raise click.BadParameter(
            f"{value!r}: the share must be above 0% and below 100%", param_hint="--share"
        )
    return share


@click.group("rollout")
def rollout_group() -> None:
    """Canary a new task version on live traffic, promoted or rolled back on its evidence.

    \b
    tlm rollout start TASK@NEW --share 10%   · tlm rollout status [TASK]
    tlm rollout evaluate TASK                · tlm rollout pin TASK@VERSION · tlm rollout abort TASK
    """


@rollout_group.command("start")
@click.argument("new_ref", metavar="TASK@NEW")
@click.option("--share", default="10%", show_default=True, help="Inputs sent to NEW (by hash).")
@click.option("--against", "current_version", help="The current version (default: live).")
@click.option(
    "--margin",
    type=click.FloatRange(0, 1, max_open=True),
    default=0.05,
    show_default=True,
    help="Quality NEW may lose and still be promoted.",
)
@click.option(
    "--confidence",
    type=click.FloatRange(0.5, 1, min_open=True, max_open=True),
    default=0.95,
    show_default=True,
)
@click.option(
    "--min-samples",
    type=click.IntRange(min=1),
    default=30,
    show_default=True,
    help="Judged executions per version before a promotion.",
)
@click.option(
    "--min-rollback-samples",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="Judged executions per version before a rollback.",
)
@click.option(
    "--max-samples",
    type=click.IntRange(min=1),
    default=2000,
    show_default=True,
    help="Judged executions of NEW after which an undecided canary is rolled back.",
)
@click.option("--cost-margin", type=click.FloatRange(min=0), default=0.0, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@_data_dir_option
def rollout_start(
    new_ref: str,
    share: str,
    current_version: str | None,
    margin: float,
    confidence: float,
    min_samples: int,
    min_rollback_samples: int,
    max_samples: int,
    cost_margin: float,
    seed: int,
    data_dir: Path,
) -> None:
    """Start sending a share of TASK's unpinned executions to version NEW."""
    from tlm.rollout.decide import CanaryPolicy

    task_id, new_version = _split_ref(new_ref, "TASK@NEW")
    fraction = _share(share)
    policy = CanaryPolicy(
        margin=margin,
        confidence=confidence,
        min_samples=min_samples,
        min_rollback_samples=min_rollback_samples,
        max_samples=max_samples,
        cost_margin=cost_margin,
        seed=seed,
    )

    async def main() -> Rollout:
        async with _engine(data_dir) as engine:
            new = engine.definition(task_id, new_version)
            current = await _current_definition(
                engine, task_id, current_version and f"{task_id}@{current_version}", new.version
            )
            return _store(data_dir).start(
                task_id, current.version, new.version, fraction, policy.to_dict()
            )

    try:
        rollout = anyio.run(main)
    except (TLMError, ValueError) as exc:
        _fail(exc)
    click.echo(
        f"rollout {rollout.id[:12]} started: {fraction:.0%} of {task_id} inputs to "
        f"{rollout.new_version}, the rest to {rollout.current_version}"
    )


@rollout_group.command("status")
@click.argument("task_id", required=False)
@click.option("--json", "as_json", is_flag=True)
@_data_dir_option
def rollout_status(task_id: str | None, as_json: bool, data_dir: Path) -> None:
    """Show each task's rollout: state, live evidence and every decision taken."""
    from tlm.rollout.decide import CanaryPolicy, arm_stats, decide

    try:
        store = _store(data_dir)
        latest = store.all_latest()
    except TLMError as exc:
        _fail(exc)
    if task_id is not None:
        latest = {k: v for k, v in latest.items() if k == task_id}
    if not latest:
        click.echo("no rollouts" + (f" of {task_id}" if task_id else ""))
        return
    out: list[dict[str, Any]] = []
    executions = _executions(data_dir)
    for rollout in latest.values():
        entry: dict[str, Any] = {
            "rollout": rollout.id,
            "task_id": rollout.task_id,
            "state": rollout.state,
            "current_version": rollout.current_version,
            "new_version": rollout.new_version,
            "live_version": rollout.live_version if rollout.state != "running" else None,
            "share": rollout.share,
            "decisions": [attrs.asdict(d) for d in store.decisions(rollout.id)],
        }
        if rollout.state == "running" and executions is not None:
            since = datetime.fromtimestamp(rollout.started_at, UTC)
            current = arm_stats(
                executions.iter_query(
                    task_id=rollout.task_id, version=rollout.current_version, since=since
                )
            )
            new = arm_stats(
                executions.iter_query(
                    task_id=rollout.task_id, version=rollout.new_version, since=since
                )
            )
            verdict = decide(current, new, CanaryPolicy.from_dict(rollout.policy))
            entry["now"] = {"would": verdict.action, "reason": verdict.reason, **verdict.evidence}
        out.append(entry)
    if executions is not None:
        executions.close()
    if as_json:
        click.echo(json.dumps(out, indent=2, ensure_ascii=False, default=str))
        return
    for entry in out:
        state = entry["state"]
        head = f"{entry['task_id']}: {state}"
        if state == "running":
            head += (
                f" · {entry['share']:.0%} to {entry['new_version']}, the rest to "
                f"{entry['current_version']}"
            )
        else:
            head += f" · live version {entry['live_version']}"
        click.echo(head + f" · rollout {entry['rollout'][:12]}")
        now = entry.get("now")
        if now is not None:
            for arm in ("current", "new"):
                stats = now[arm]
                click.echo(
                    f"  {arm:<8} {stats['executions']:>6} executions, {stats['judged']:>6} judged,"
                    f" success {_fmt(stats['success_rate'], '.3f')},"
                    f" ${_fmt(stats['mean_cost_usd'], '.6f')}/execution"
                )
            click.echo(f"  now: would {now['would']} — {now['reason']}")
        for decision in entry["decisions"]:
            when = datetime.fromtimestamp(decision["at"], UTC).strftime("%Y-%m-%d %H:%M:%S")
            click.echo(
                f"  {when} {decision['action']} by {decision['actor']}: {decision['reason']}"
            )


def _executions(data_dir: Path) -> Any:
    """The configured database's execution log, else ``data_dir``'s ``tlm.db`` if it exists."""
    from tlm.engine.config import load_config
    from tlm.store.backend import open_store
    from tlm.store.sqlite import default_db_path

    try:
        database = load_config().database
    except TLMError as exc:
        raise click.ClickException(str(exc)) from exc
    if database is None and not default_db_path(data_dir).exists():
        return None
    return open_store(data_dir, database)


@rollout_group.command("evaluate")
@click.argument("task_id")
@_data_dir_option
def rollout_evaluate(task_id: str, data_dir: Path) -> None:
    """Judge TASK's running canary now (the engine also does so as traffic flows)."""
    from tlm.rollout.router import judge

    try:
        store = _store(data_dir)
        rollout = store.latest(task_id)
        if rollout is None or rollout.state != "running":
            raise TLMError(f"no running rollout of {task_id}")
        executions = _executions(data_dir)
        if executions is None:
            raise TLMError(f"no execution log in {data_dir}")
        try:
            verdict = judge(store, executions, rollout)
        finally:
            executions.close()
    except TLMError as exc:
        _fail(exc)
    click.echo(f"{verdict.action}: {verdict.reason}")


@rollout_group.command("pin")
@click.argument("ref", metavar="TASK@VERSION")
@_data_dir_option
def rollout_pin(ref: str, data_dir: Path) -> None:
    """Make VERSION the live version of TASK (ends a running canary)."""
    task_id, version = _split_ref(ref, "TASK@VERSION")
    if version is None:
        raise click.BadParameter("give the version to pin: TASK@VERSION", param_hint="TASK@VERSION")

    async def main() -> tuple[str, str]:
        async with _engine(data_dir) as engine:
            definition = engine.definition(task_id, version)
            latest = _store(data_dir).latest(task_id)
            current = latest.live_version if latest is not None else definition.version
            return definition.version, current

    try:
        pinned, current = anyio.run(main)
        _store(data_dir).pin(task_id, pinned, current)
    except TLMError as exc:
        _fail(exc)
    click.echo(f"{task_id}: live version pinned to {pinned}")


@rollout_group.command("abort")
@click.argument("task_id")
@click.option("--note", default="aborted by an operator", show_default=True)
@_data_dir_option
def rollout_abort(task_id: str, note: str, data_dir: Path) -> None:
    """Stop TASK's running canary: every input goes to the current version again."""
    try:
        store = _store(data_dir)
        rollout = store.latest(task_id)
        if rollout is None or rollout.state != "running":
            raise TLMError(f"no running rollout of {task_id}")
        store.decide(rollout.id, "abort", note, {}, actor="cli")
    except TLMError as exc:
        _fail(exc)
    click.echo(f"{task_id}: rollout aborted; live version {rollout.current_version}")


COMMANDS = (rollout_group,)
