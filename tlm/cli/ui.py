"""``tlm ui``: the web console on 127.0.0.1 (any other address needs the printed access token)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import anyio
import click

from tlm.cli.executions import configured_data_dir

__all__ = ("COMMANDS", "ui")


@click.command("ui")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=configured_data_dir,
    show_default="TLM_DATA_DIR, else data_dir in tlm.toml, else .tlm",
    help="Data directory holding tlm.db, reviews.db and workflows.db.",
)
@click.option(
    "--definitions",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Definitions directory (default: $TLM_DEFINITIONS, ./definitions, or the bundled one).",
)
@click.option(
    "--require-token",
    is_flag=True,
    help="Ask for the access token even on 127.0.0.1 (always on for other addresses).",
)
def ui(host: str, port: int, data_dir: Path, definitions: Path | None, require_token: bool) -> None:
    """Serve the web console: tasks, executions, reviews, analysis, workflows.

    Bound to a loopback address no token is needed; bound to any other address every request
    needs the access token, taken from TLM_UI_TOKEN or generated and printed at start.
    """
    if importlib.util.find_spec("jinja2") is None:
        raise click.ClickException(
            "the console needs Jinja2: install the ui extra (pip install 'tlm[ui]')"
        )
    from tlm.engine.config import load_config
    from tlm.errors import ConfigurationError, StoreError
    from tlm.ui.app import serve
    from tlm.ui.state import Console

    try:
        config = load_config(data_dir=data_dir, definitions=definitions)
        console = Console(config)
    except (ConfigurationError, StoreError) as exc:
        raise click.ClickException(str(exc)) from None

    async def main() -> None:
        await serve(console, host=host, port=port, require_token=require_token)

    try:
        anyio.run(main)
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        message = f"cannot listen on {host}:{port}: {exc.strerror or exc}"
        raise click.ClickException(message) from None


COMMANDS = (ui,)
