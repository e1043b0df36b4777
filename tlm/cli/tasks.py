"""Task-definition commands: ``create-task``, ``validate-task``, ``list-tasks``, ``show-task``.

Problems go to stderr, one located problem per line, and the exit status is 1; never a traceback
for a bad definition. ``validate-task`` also warns (stderr, ``warning:`` lines, exit status
unchanged) about external verifiers the configured allow-lists would refuse: endpoints on hosts
not in ``external_hosts``, link-local or metadata addresses, and headers expanding environment
variables not in ``external_env``. The definitions directory is ``--definitions DIR``, else
``$TLM_DEFINITIONS``, else the project's (found from the working directory upward, see
:mod:`tlm.project`). Without a project, ``validate-task FILE`` checks the file alone and
``create-task`` starts one here (``./definitions/tasks``); the other commands say where they looked.
"""

from __future__ import annotations

import functools
import json
import os
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, ParamSpec

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from tlm.definition.compat import check_compatibility, check_history
from tlm.definition.loader import load_definition, parse_definition
from tlm.definition.model import (
    ChainParams,
    ConsensusParams,
    ExternalParams,
    HierarchicalParams,
    HumanParams,
    TaskDefinition,
    VerificationSpec,
)
from tlm.definition.registry import DefinitionRegistry, default_definitions_dir, tasks_dir
from tlm.definition.schema import SCHEMA_ID
from tlm.definition.semver import parse_version
from tlm.definition.serde import make_converter
from tlm.errors import DefinitionError, Problem, TaskSchemaError, TLMError
from tlm.project import DEFINITIONS_DIR, ProjectNotFound

__all__ = ("COMMANDS", "create_task", "validate_task", "list_tasks", "show_task", "scaffold")

_P = ParamSpec("_P")
_TASK_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")

_definitions_option = click.option(
    "--definitions",
    "definitions",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Definitions directory (default: $TLM_DEFINITIONS, else the project's).",
)


def _tasks_root(definitions: Path | None) -> Path:
    return tasks_dir(default_definitions_dir(definitions))


def _project_tasks_root(definitions: Path | None) -> Path | None:
    """The tasks directory, or ``None`` outside any project."""
    try:
        return _tasks_root(definitions)
    except ProjectNotFound:
        return None


def _console() -> Console:
    console = Console(file=sys.stdout, highlight=False)
    if not console.is_terminal:
        console.width = 160
    return console


def _fail(problems: Iterable[Problem | str]) -> None:
    lines = [str(p) for p in problems]
    for line in lines:
        click.echo(line, err=True)
    click.echo(f"{len(lines)} problem(s) found", err=True)
    raise SystemExit(1)


def _guard(func: Callable[_P, None]) -> Callable[_P, None]:
    """Report TLM and OS errors as located lines on stderr with exit status 1, not tracebacks."""

    @functools.wraps(func)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> None:
        try:
            func(*args, **kwargs)
        except TaskSchemaError as exc:
            _fail(exc.problems)
        except (TLMError, OSError) as exc:
            _fail([str(exc)])

    return wrapper


def scaffold(task_id: str) -> dict[str, Any]:
    """A minimal definition for ``task_id`` that passes every check; edit it from there."""
    return {
        "$schema": SCHEMA_ID,
        "id": task_id,
        "name": task_id.replace("_", " ").replace("-", " ").strip().title() or task_id,
        "description": "TODO: say what this task does and when to use it.",
        "version": "1.0.0",
        "task_type": "generation",
        "tags": [],
        "risk": "medium",
        "input": {
            "schema": {
                "type": "object",
                "properties": {"text": {"type": "string", "minLength": 1}},
                "required": ["text"],
                "additionalProperties": False,
            },
            "examples": [{"text": "An example input."}],
            "validations": ["non_empty_text"],
        },
        "output": {
            "schema": {
                "type": "object",
                "properties": {"result": {"type": "string"}},
                "required": ["result"],
            },
            "examples": [{"result": "An example output."}],
            "validations": ["has_required_fields"],
        },
        "prompts": [
            {
                "id": "standard",
                "text": "TODO: tell the model what to do with the text below.\n\n{{text}}",
                "template_variables": ["text"],
                "usage_conditions": {"default": True},
            }
        ],
        "verification": {"method": "none", "fallback_strategy": "fail"},
        "model_ranking_criteria": {
            "quality_priority": 0.7,
            "speed_priority": 0.3,
            "context_size": "medium",
        },
    }


@click.command("create-task")
@click.argument("name")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Tasks directory to create NAME/1.0.0.json in (default: <definitions>/tasks).",
)
@_definitions_option
@_guard
def create_task(name: str, directory: Path | None, definitions: Path | None) -> None:
    """Scaffold NAME/1.0.0.json, a definition that validates; never overwrites."""
    if not _TASK_ID.match(name) or len(name) > 100:
        _fail([f"{name!r} is not a valid task id (letters, digits, _ . -; start alphanumeric)"])
    started = ""
    if directory is not None:
        root = directory
    else:
        try:
            root = default_definitions_dir(definitions) / "tasks"
        except ProjectNotFound:
            root = Path(DEFINITIONS_DIR) / "tasks"
            started = " (no project found: this starts one here; `tlm init` adds tlm.toml)"
    target = root / name / "1.0.0.json"
    if (root / name).exists():
        _fail([f"{root / name}: task {name!r} already exists; refusing to overwrite"])
    document = scaffold(name)
    text = json.dumps(document, indent=2) + "\n"
    parse_definition(text, source=os.fspath(target))  # the scaffold must itself be valid
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("x", encoding="utf-8") as f:
            f.write(text)
    except OSError as exc:
        _fail([f"{target}: cannot write: {exc.strerror or exc}"])
    click.echo(f"created {target}{started}")


def _belongs(problem: Problem, file: str) -> bool:
    return problem.source == file or problem.source.startswith(file + ":")


def _validate_path(path: Path, root: Path) -> tuple[list[TaskDefinition], list[Problem]]:
    """Check one file, and its compatibility with the previous version of the same task."""
    resolved = path.resolve()
    in_registry = resolved.parent.parent == root.resolve() and resolved.suffix == ".json"
    definition: TaskDefinition | None = None
    problems: list[Problem] = []
    if in_registry:
        registry = DefinitionRegistry.from_directory(
            root, only={resolved.parent.name}, strict=False
        )
        file = os.fspath(root / resolved.parent.name / resolved.name)
        problems = [p for p in registry.problems if _belongs(p, file)]
        for candidate in registry:
            if candidate.source == file:
                definition = candidate
    else:
        try:
            definition = load_definition(path)
        except TaskSchemaError as exc:
            problems = list(exc.problems)
        registry = (
            DefinitionRegistry.from_directory(root, only={definition.id}, strict=False)
            if definition is not None and (root / definition.id).is_dir()
            else DefinitionRegistry()
        )
    if definition is None:
        return [], problems
    others = [d for d in registry if d.id == definition.id and d.source != definition.source]
    this = parse_version(definition.version)
    if in_registry:
        older = [d for d in others if parse_version(d.version) < this]
    else:
        older = others  # a file from elsewhere must be newer than every registered version
    if older:
        previous = max(older, key=lambda d: parse_version(d.version))
        problems += check_compatibility(previous, definition)
    return [definition], problems


def _validate_registry(
    root: Path, only: Sequence[str] | None
) -> tuple[list[TaskDefinition], list[Problem]]:
    registry = DefinitionRegistry.from_directory(root, only=only, strict=False)
    problems = list(registry.problems)
    for task_id in registry.task_ids():
        problems += check_history([d for d in registry if d.id == task_id])
    return list(registry), problems


@click.command("validate-task")
@click.argument("target", required=False)
@click.option("--all", "all_tasks", is_flag=True, help="Validate every task in the directory.")
@_definitions_option
@_guard
def validate_task(target: str | None, all_tasks: bool, definitions: Path | None) -> None:
    """Check TARGET (a task id or a definition file), or --all; exit 1 on any problem.

    Besides the schema and load-time checks, each version is checked for compatibility with the
    previous version of the same task: a breaking change needs a major version bump.
    """
    is_file = target is not None and (
        target.endswith(".json") or os.sep in target or Path(target).is_file()
    )
    if is_file and not all_tasks:
        assert target is not None
        path = Path(target)
        root = _project_tasks_root(definitions) or path.parent  # no project: the file alone
        checked, problems = _validate_path(path, root)
        _warn_egress(checked)
        if problems:
            _fail(problems)
        for definition in checked:
            click.echo(f"ok  {definition.key}  {definition.source or ''}")
        return
    root = _tasks_root(definitions)
    if all_tasks:
        checked, problems = _validate_registry(root, None)
    elif target is None:
        raise click.UsageError("give a task id or a definition file, or --all")
    elif (root / target).is_dir():
        checked, problems = _validate_registry(root, [target])
        if not checked and not problems:
            problems = [Problem(os.fspath(root / target), "", "no <version>.json files")]
    else:
        known = (
            ", ".join(sorted(p.name for p in root.iterdir() if p.is_dir())) if root.is_dir() else ""
        )
        _fail([f"{root}: no task {target!r} (known: {known or 'none'})"])
    _warn_egress(checked)
    if problems:
        _fail(problems)
    for definition in checked:
        click.echo(f"ok  {definition.key}  {definition.source or ''}")


def _warn_egress(definitions: Iterable[TaskDefinition]) -> None:
    """Warn about external verifiers the configured allow-lists would refuse at run time."""
    from tlm.engine.config import load_config
    from tlm.verify.egress import egress_warnings
    from tlm.verify.factory import external_policy

    try:
        policy = external_policy(load_config())
    except TLMError as exc:
        click.echo(f"warning: {exc}; checking external verifiers against the defaults", err=True)
        from tlm.verify.egress import ExternalPolicy

        policy = ExternalPolicy()
    for definition in definitions:
        for warning in egress_warnings(definition, policy):
            click.echo(f"warning: {warning}", err=True)


@click.command("list-tasks")
@_definitions_option
@_guard
def list_tasks(definitions: Path | None) -> None:
    """List the tasks: id, versions, verification method and task type of the newest version."""
    registry = DefinitionRegistry.from_directory(_tasks_root(definitions), strict=False)
    table = Table("id", "versions", "method", "task type")
    for task_id in registry.task_ids():
        latest = registry.get(task_id)
        table.add_row(
            Text(task_id),
            Text(", ".join(registry.versions(task_id))),
            Text(latest.verification.method),
            Text(latest.task_type or "-"),
        )
    _console().print(table)
    if registry.problems:
        _fail(registry.problems)


def _verification_summary(spec: VerificationSpec) -> str:
    params = spec.parameters
    if isinstance(params, ConsensusParams):
        detail = (
            f"{params.quorum} of {params.min_models}-{params.max_models} models agree at "
            f"{params.similarity_threshold} ({params.similarity_metric})"
        )
    elif isinstance(params, HierarchicalParams):
        reviewer = params.verifier_model or "(ranked)"
        detail = f"reviewer {reviewer}, min confidence {params.min_confidence}"
    elif isinstance(params, ExternalParams):
        detail = params.endpoint or f"function {params.function}"
    elif isinstance(params, HumanParams):
        detail = f"queue {params.queue}, default action {params.default_action}"
    elif isinstance(params, ChainParams):
        detail = " -> ".join(step.method for step in params.steps)
    else:
        detail = ""
    return f"{spec.method}: {detail}" if detail else spec.method


def _schema_fields(schema: Any) -> str:
    properties = schema.get("properties", {}) if isinstance(schema, dict) else {}
    required = set(schema.get("required", [])) if isinstance(schema, dict) else set()
    return ", ".join(f"{name}{'*' if name in required else ''}" for name in properties) or "-"


@click.command("show-task")
@click.argument("ref", metavar="NAME[@VERSION]")
@click.option("--json", "as_json", is_flag=True, help="Print the definition as JSON.")
@_definitions_option
@_guard
def show_task(ref: str, as_json: bool, definitions: Path | None) -> None:
    """Show a task's newest version, or the one matching @VERSION (exact or a range)."""
    task_id = ref.partition("@")[0]
    registry = DefinitionRegistry.from_directory(
        _tasks_root(definitions), only={task_id}, strict=False
    )
    try:
        definition = registry.resolve(ref)
    except DefinitionError as exc:
        _fail([*registry.problems, str(exc)])
    if as_json:
        click.echo(json.dumps(make_converter().unstructure(definition), indent=2))
        return
    criteria = definition.model_ranking_criteria
    rows = [
        ("task", definition.key),
        ("name", definition.name),
        ("description", definition.description),
        ("versions", ", ".join(registry.versions(definition.id))),
        ("task type", definition.task_type or "-"),
        ("tags", ", ".join(definition.tags) or "-"),
        ("risk", definition.risk),
        ("input", _schema_fields(definition.input.schema)),
        ("input rules", ", ".join(definition.input.validations) or "-"),
        ("output", _schema_fields(definition.output.schema)),
        ("output rules", ", ".join(definition.output.validations) or "-"),
        (
            "prompts",
            ", ".join(
                f"{p.id} ({'default' if p.is_default else p.usage_conditions.get('when')})"
                for p in definition.prompts
            ),
        ),
        ("verification", _verification_summary(definition.verification)),
        ("fallback", definition.verification.fallback.strategy),
        (
            "ranking",
            f"quality {criteria.quality_priority}, speed {criteria.speed_priority}, "
            f"cost {criteria.cost_priority}, context {criteria.context_size}",
        ),
        ("depends on", ", ".join(definition.depends_on) or "-"),
        ("source", definition.source or "-"),
    ]
    table = Table(show_header=False, box=None)
    for key, value in rows:
        table.add_row(Text(key, style="bold"), Text(value))
    _console().print(table)


COMMANDS = (create_task, validate_task, list_tasks, show_task)
