"""``tlm bench``: the benchmark harness (needs a source checkout with ``benchmarks/``)."""

from __future__ import annotations

import click

__all__ = ("COMMANDS", "bench")


@click.command("bench", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.pass_context
def bench(ctx: click.Context) -> None:
    """Run the benchmarks: tlm bench [--quick] [--only NAME] [--out DIR] [--baseline REF]."""
    try:
        from benchmarks.harness import main as harness_main
    except ImportError as exc:
        raise click.ClickException(
            "the benchmarks live in the source checkout: run `tlm bench` from its root"
        ) from exc
    ctx.exit(harness_main(list(ctx.args)))


COMMANDS = (bench,)
