"""``tlm analyze``, ``tlm update-rankings``, ``tlm suggest-prompts``: the learning system's CLI.

The store is ``<data dir>/tlm.db`` (``--data-dir``, else ``TLM_DATA_DIR``, else ``./.tlm``); task
definitions and the catalog come from the configuration (``tlm.toml``, ``TLM_DEFINITIONS``).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from tlm.cli.executions import _data_dir_option, _open_store
from tlm.cli.params import InputError, Number
from tlm.durations import parse_duration
from tlm.errors import TLMError

if TYPE_CHECKING:
    from tlm.catalog import Catalog
    from tlm.definition.registry import DefinitionRegistry
    from tlm.engine.config import EngineConfig
    from tlm.learn.rankings import Rankings

__all__ = ("COMMANDS", "analyze", "update_rankings", "suggest_prompts", "parse_period")

parse_period = parse_duration


class _Period(click.ParamType[timedelta]):
    name = "period"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> timedelta:
        if isinstance(value, timedelta):
            return value
        try:
            duration = parse_period(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)
        if duration <= timedelta(0):
            self.fail("the duration must be positive", param, ctx)
        try:
            datetime.now(UTC) - duration
        except OverflowError:
            raise InputError(f"--period: {value} reaches back before the year 1") from None
        return duration


def _config() -> EngineConfig:
    from tlm.engine.config import load_config

    try:
        return load_config()
    except TLMError as exc:
        raise click.ClickException(str(exc)) from exc


def _definitions(config: EngineConfig, *, required: bool) -> DefinitionRegistry | None:
    from tlm.definition.registry import DefinitionRegistry, default_definitions_dir

    try:
        return DefinitionRegistry.from_directory(
            config.definitions_dir or default_definitions_dir()
        )
    except (TLMError, OSError) as exc:
        if required:
            raise click.ClickException(str(exc)) from exc
        return None


def _catalog(config: EngineConfig) -> Catalog | None:
    """The configured catalog layered over the packaged one (``None`` if it does not load)."""
    from tlm.catalog import Catalog

    try:
        if config.catalog_path is not None:
            return Catalog.layered(config.catalog_path)
        beside = None if config.definitions_dir is None else config.definitions_dir / "models.json"
        return Catalog.layered(beside if beside is not None and beside.is_file() else None)
    except (TLMError, OSError):
        return None


@click.command()
@click.argument("task_id")
@click.option("--period", type=_Period(), default="7d", show_default=True, help="e.g. 7d, 12h.")
@click.option("--version", help="Only this task version.")
@click.option("--json", "as_json", is_flag=True, help="Print the analysis as JSON.")
@click.option(
    "--plot",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Also draw the trend and pass rates per model into this PNG (needs tlm[plot]).",
)
@click.option("--top", type=click.IntRange(min=1), default=10, show_default=True)
@_data_dir_option
def analyze(
    task_id: str,
    period: timedelta,
    version: str | None,
    as_json: bool,
    plot: Path | None,
    top: int,
    data_dir: Path,
) -> None:
    """Analyse TASK's executions over a period: per model, prompt variant and version."""
    from rich.console import Console

    from tlm.learn.analysis import analyze_store
    from tlm.learn.report import plot_analysis, print_analysis

    with _open_store(data_dir) as store:
        analysis = analyze_store(store, task_id, period=period, version=version, top=top)
    if as_json:
        click.echo(json.dumps(analysis.to_dict(), indent=2, ensure_ascii=False))
    else:
        print_analysis(analysis, Console(width=200))
    if plot is not None:
        try:
            written = plot_analysis(analysis, plot)
        except TLMError as exc:
            raise click.ClickException(str(exc)) from exc
        click.echo(f"plot written to {written}", err=as_json)


@click.command("update-rankings")
@click.option("--period", type=_Period(), default="30d", show_default=True)
@click.option("--half-life", type=_Period(), default="7d", show_default=True)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Write the rankings to this file (default: the configured PostgreSQL database, else "
    "<data dir>/rankings.json).",
)
@_data_dir_option
def update_rankings(
    period: timedelta, half_life: timedelta, out: Path | None, data_dir: Path
) -> None:
    """Learn per task x model quality, latency and cost from the records; write the rankings."""
    from rich.console import Console
    from rich.table import Table

    from tlm.learn.rankings import update_rankings as build

    config = _config()
    registry = _definitions(config, required=False)
    catalog = _catalog(config)
    from tlm.learn.updates import update_learning

    with _open_store(data_dir) as store:
        rankings = build(
            store, period=period, half_life=half_life, registry=registry, catalog=catalog
        )
        selector, plans = update_learning(
            store, data_dir, period=period, registry=registry, catalog=catalog
        )
    target = _save_rankings(rankings, out, data_dir, config.database)
    table = Table("task", "rank", "model", "quality", "samples", "human", "latency s", "cost $")
    for task_id, ranking in sorted(rankings.tasks.items()):
        for position, model in enumerate(ranking.order, 1):
            p = ranking.models[model]
            table.add_row(
                task_id if position == 1 else "",
                str(position),
                model,
                f"{p.quality:.3f}",
                str(p.samples),
                str(p.human_feedback),
                "-" if p.latency_s is None else f"{p.latency_s:.2f}",
                "-" if p.cost_usd is None else f"{p.cost_usd:.6f}",
            )
    Console(width=200).print(table)
    click.echo(
        f"{len(rankings.tasks)} task(s) from {rankings.records} record(s) written to {target}"
    )
    learned = ", ".join(f"{t} ({h:g})" for t, h in sorted(selector.history.items())) or "none"
    click.echo(f"input-aware selector: learned outcomes per task: {learned}")
    if plans:
        click.echo(
            "learned cascades: "
            + ", ".join(
                f"{t}: {' -> '.join('+'.join(rung) for rung in p.ladder)}"
                for t, p in sorted(plans.items())
            )
        )


def _save_rankings(
    rankings: Rankings, out: Path | None, data_dir: Path, database: str | None
) -> str:
    """Save to ``out``, else where running engines read them (they pick them up while running)."""
    from tlm.learn.rankings_store import RankingsFile, open_rankings

    try:
        store = RankingsFile(out) if out is not None else open_rankings(data_dir, database)
        try:
            return store.save(rankings)
        finally:
            store.close()
    except TLMError as exc:
        raise click.ClickException(str(exc)) from exc


async def propose_rewrite(
    prompt: str, *, model: str, catalog: Catalog, env: Any, data_dir: Path
) -> str:
    """Send the rewrite request to ``model`` and return its reply text."""
    from tlm.providers.base import ChatRequest
    from tlm.providers.pool import ProviderPool

    async with ProviderPool(catalog, env=env, data_dir=data_dir) as pool:
        provider = await pool.provider_for(model)
        response = await provider.complete(ChatRequest.from_prompt(model, prompt, temperature=0.2))
    return response.text


@click.command("suggest-prompts")
@click.argument("task_id")
@click.option("--period", type=_Period(), default="30d", show_default=True)
@click.option("--version", help="Only this task version.")
@click.option("--min-rate", type=Number(minimum=0, maximum=1), default=0.1, show_default=True)
@click.option("--rewrite", is_flag=True, help="Ask a model for a rewritten variant (shown only).")
@click.option("--variant", help="The variant to rewrite (default: the one with most failures).")
@click.option("--model", help="The model that rewrites (default: the first configured).")
@click.option("--write", is_flag=True, help="With --rewrite: write it as a new minor version.")
@_data_dir_option
def suggest_prompts(
    task_id: str,
    period: timedelta,
    version: str | None,
    min_rate: float,
    rewrite: bool,
    variant: str | None,
    model: str | None,
    write: bool,
    data_dir: Path,
) -> None:
    """Suggest prompt improvements for TASK from its failure patterns per variant."""
    import anyio

    from tlm.learn.analysis import analyze_store
    from tlm.learn.suggestions import (
        parse_rewrite,
        rewrite_request,
        suggest,
        write_new_version,
    )

    if write and not rewrite:
        raise click.UsageError("--write needs --rewrite")
    with _open_store(data_dir) as store:
        analysis = analyze_store(store, task_id, period=period, version=version, top=50)
    suggestions = suggest(analysis, min_rate=min_rate)
    if not suggestions:
        click.echo(f"{task_id}: no failure pattern reaches {min_rate:.0%} of a variant's runs")
    for s in suggestions:
        click.echo(f"- [{s.variant}] {s.text} ({s.count} run(s), e.g. {', '.join(s.examples)})")
    if not rewrite:
        return
    config = _config()
    registry = _definitions(config, required=True)
    assert registry is not None
    catalog = _catalog(config)
    if catalog is None:
        raise click.ClickException("no model catalog found to ask for a rewrite")
    try:
        definition = registry.get(task_id, version)
    except TLMError as exc:
        raise click.ClickException(str(exc)) from exc
    chosen = variant or (suggestions[0].variant if suggestions else definition.default_prompt.id)
    try:
        original = definition.prompt(chosen)
    except KeyError:
        raise click.ClickException(f"{definition.key} has no prompt variant {chosen!r}") from None
    asker = model or (config.models[0] if config.models else None)
    if asker is None or asker not in catalog:
        raise click.ClickException(f"model {asker!r} is not in the catalog")
    request = rewrite_request(definition, chosen, suggestions)
    try:
        reply = anyio.run(
            lambda: propose_rewrite(
                request, model=asker, catalog=catalog, env=config.env, data_dir=data_dir
            )
        )
        text = parse_rewrite(reply, variables=original.template_variables)
    except TLMError as exc:
        raise click.ClickException(f"rewrite failed: {exc}") from exc
    click.echo(f"\nProposed rewrite of variant {chosen} (by {asker}):\n{text}")
    if not write:
        click.echo("\nNot written: review it, then run again with --write to save a new version.")
        return
    try:
        target = write_new_version(definition, chosen, text)
    except TLMError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"\nwritten as a new minor version: {target} (review it; it is not the default)")


COMMANDS = (analyze, update_rankings, suggest_prompts)
