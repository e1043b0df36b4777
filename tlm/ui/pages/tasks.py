"""Tasks: the list, one definition shown readably, and two versions side by side."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio.to_thread
import attrs
from aiohttp import web

from tlm.definition.compat import breaking_changes, check_compatibility
from tlm.definition.model import ExternalParams, TaskDefinition, VerificationSpec
from tlm.definition.semver import parse_version
from tlm.definition.serde import make_converter
from tlm.errors import DefinitionError
from tlm.telemetry.records import format_timestamp
from tlm.telemetry.redact import sanitize_message
from tlm.ui.render import render
from tlm.ui.state import console_of
from tlm.ui.textdiff import side_by_side

__all__ = ("routes", "definition_json", "schema_fields", "definition_or_404")

routes = web.RouteTableDef()
_converter = make_converter()
RECENT = timedelta(days=7)


def definition_json(definition: TaskDefinition) -> dict[str, Any]:
    """The definition as JSON data, header values of external verifiers masked."""
    data: dict[str, Any] = _converter.unstructure(definition)
    data.pop("source", None)
    _mask_headers(data.get("verification"))
    return data


def _mask_headers(spec: Any) -> None:
    if not isinstance(spec, dict):
        return
    params = spec.get("parameters")
    if isinstance(params, dict):
        headers = params.get("headers")
        if isinstance(headers, dict):
            params["headers"] = {k: sanitize_message(str(v)) for k, v in headers.items()}
        for step in params.get("steps") or ():
            _mask_headers(step)


def schema_fields(schema: Any) -> list[dict[str, Any]]:
    """The top-level properties of an object schema: name, type, required, description."""
    if not isinstance(schema, dict):
        return []
    required = set(schema.get("required") or ())
    fields = []
    for name, prop in (schema.get("properties") or {}).items():
        prop = prop if isinstance(prop, dict) else {}
        kind = prop.get("type", "any")
        if kind == "array" and isinstance(prop.get("items"), dict):
            kind = f"array of {prop['items'].get('type', 'any')}"
        fields.append(
            {
                "name": name,
                "type": kind if isinstance(kind, str) else " | ".join(map(str, kind)),
                "required": name in required,
                "description": prop.get("description", ""),
                "enum": prop.get("enum"),
            }
        )
    return fields


def _verification_rows(spec: VerificationSpec) -> list[tuple[str, str]]:
    params = spec.parameters
    rows: list[tuple[str, str]] = [("method", spec.method)]
    if attrs.has(type(params)):
        for field in attrs.fields(type(params)):
            value = getattr(params, field.name)
            if field.name == "steps":
                value = " -> ".join(step.method for step in value)
            elif isinstance(params, ExternalParams) and field.name == "headers":
                value = {k: sanitize_message(str(v)) for k, v in value.items()}
            if value not in (None, (), {}):
                rows.append((field.name, value if isinstance(value, str) else json.dumps(value)))
    rows.append(("fallback", spec.fallback.strategy))
    return rows


def definition_or_404(request: web.Request, version: str | None = None) -> TaskDefinition:
    """The task named in the URL (newest, or ``version``); 404 when unknown."""
    registry = console_of(request).registry
    task_id = request.match_info["task_id"]
    try:
        return registry.get(task_id, version or None)
    except DefinitionError as exc:
        raise web.HTTPNotFound(text=str(exc)) from None


@routes.get("/tasks")
async def task_list(request: web.Request) -> web.Response:
    """Every task: versions, verification method, pass rate and cost over the last 7 days."""
    console = console_of(request)
    registry = console.registry
    since = format_timestamp(datetime.now(UTC) - RECENT)

    def summaries() -> list[dict[str, Any]]:
        rows = []
        for task_id in registry.task_ids():
            latest = registry.get(task_id)
            rows.append(
                {
                    "definition": latest,
                    "versions": registry.versions(task_id),
                    "summary": console.queries.task_summary(task_id, since),
                }
            )
        return rows

    rows = await anyio.to_thread.run_sync(summaries)
    return render(
        request, "tasks.html", nav="tasks", rows=rows, problems=[str(p) for p in registry.problems]
    )


@routes.get("/tasks/{task_id}")
async def task_page(request: web.Request) -> web.Response:
    """One definition, readable: schemas, rules, prompt variants, verification, ranking."""
    definition = definition_or_404(request, request.query.get("version"))
    registry = console_of(request).registry
    versions = registry.versions(definition.id)
    previous = registry.previous(definition)
    return render(
        request,
        "task.html",
        nav="tasks",
        task=definition,
        versions=versions,
        previous=previous.version if previous else None,
        input_fields=schema_fields(definition.input.schema),
        output_fields=schema_fields(definition.output.schema),
        verification=_verification_rows(definition.verification),
        document=definition_json(definition),
    )


def _verdict(old: TaskDefinition, new: TaskDefinition) -> dict[str, Any]:
    if parse_version(new.version) < parse_version(old.version):
        old, new = new, old
    changes = breaking_changes(old, new)
    problems = check_compatibility(old, new)
    major = parse_version(new.version).major > parse_version(old.version).major
    if not changes:
        label, tone = "compatible", "ok"
    elif major:
        label, tone = "breaking, with a major version bump", "warn"
    else:
        label, tone = "breaking without a major version bump", "bad"
    return {
        "label": label,
        "tone": tone,
        "older": old.version,
        "newer": new.version,
        "changes": [f"{path}: {what}" for path, what in changes],
        "problems": [f"{p.path}: {p.message}" for p in problems],
    }


@routes.get("/tasks/{task_id}/diff")
async def task_diff(request: web.Request) -> web.Response:
    """Two versions side by side, with the compatibility verdict of ``tlm validate-task``."""
    registry = console_of(request).registry
    newest = definition_or_404(request)
    versions = registry.versions(newest.id)
    b = request.query.get("b") or newest.version
    default_a = versions[-2] if len(versions) > 1 else newest.version
    a = request.query.get("a") or default_a
    try:
        left, right = registry.get(newest.id, f"={a}"), registry.get(newest.id, f"={b}")
    except DefinitionError as exc:
        raise web.HTTPNotFound(text=str(exc)) from None
    dump = json.dumps  # same layout both sides, so the diff shows content, not formatting
    rows = side_by_side(
        dump(definition_json(left), indent=2, ensure_ascii=False),
        dump(definition_json(right), indent=2, ensure_ascii=False),
    )
    return render(
        request,
        "diff.html",
        nav="tasks",
        task=newest,
        versions=versions,
        a=left.version,
        b=right.version,
        rows=rows,
        verdict=_verdict(left, right) if left.version != right.version else None,
    )
