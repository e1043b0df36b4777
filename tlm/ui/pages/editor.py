"""The definition editor: validates as you type, saves a new version file.

Validation is ``tlm validate-task``'s: the schema and load-time checks, then compatibility with the
newest older version of the task (a breaking change needs a major bump); problems are the same
located ``file: $.path: message`` lines. Saving writes ``<tasks>/<id>/<version>.json`` and never
overwrites an existing version.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import anyio
from aiohttp import web

from tlm.definition.compat import check_compatibility
from tlm.definition.loader import parse_definition
from tlm.definition.model import TaskDefinition
from tlm.definition.registry import DefinitionRegistry
from tlm.definition.semver import parse_version
from tlm.errors import Problem, TaskSchemaError
from tlm.ui.pages.tasks import definition_or_404
from tlm.ui.render import is_htmx, render, render_fragment
from tlm.ui.state import console_of

__all__ = ("routes", "check_document")

routes = web.RouteTableDef()
MAX_DOCUMENT_CHARS = 1_000_000


def _version_of(text: str) -> str | None:
    try:
        document = json.loads(text)
    except ValueError:
        return None
    version = document.get("version") if isinstance(document, dict) else None
    try:
        return str(parse_version(version)) if isinstance(version, str) else None
    except ValueError:
        return None


def check_document(
    text: str, task_id: str, registry: DefinitionRegistry, tasks_root: Path
) -> tuple[TaskDefinition | None, list[Problem], Path | None]:
    """Problems of ``text`` as the next version of ``task_id``; the file it would be saved as."""
    version = _version_of(text)
    target = tasks_root / task_id / f"{version}.json" if version else None
    source = os.fspath(target) if target else f"{os.fspath(tasks_root / task_id)}/<new>.json"
    try:
        definition = parse_definition(text, source=source)
    except TaskSchemaError as exc:
        return None, list(exc.problems), target
    problems: list[Problem] = []
    if definition.id != task_id:
        problems.append(
            Problem(source, "$.id", f"id {definition.id!r} does not match its task {task_id!r}")
        )
    if task_id in registry:
        if definition.version in registry.versions(task_id):
            problems.append(
                Problem(
                    source,
                    "$.version",
                    f"{definition.key} already exists; give the new version a higher number",
                )
            )
        else:
            previous = registry.previous(definition)
            if previous is not None:
                problems += check_compatibility(previous, definition)
    return definition, problems, target


def _next_draft(text: str, newest: str) -> str:
    """``text`` with its version set to the next minor after ``newest`` (a ready draft)."""
    try:
        document = json.loads(text)
        current = parse_version(newest)
    except ValueError:
        return text
    if not isinstance(document, dict):
        return text
    document["version"] = f"{current.major}.{current.minor + 1}.0"
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


@routes.get("/tasks/{task_id}/edit")
async def editor(request: web.Request) -> web.Response:
    """The editor, holding the newest version's file (or the one asked for) as the next minor
    version: a draft to change and save."""
    definition = definition_or_404(request, request.query.get("version"))
    newest = definition_or_404(request)
    text = ""
    if definition.source:
        source = anyio.Path(definition.source)
        if await source.is_file():
            text = _next_draft(await source.read_text(encoding="utf-8"), newest.version)
    return render(
        request, "editor.html", nav="tasks", task=definition, text=text, problems=None, saved=None
    )


async def _document(request: web.Request) -> str:
    form = await request.post()
    text = str(form.get("document", ""))
    if len(text) > MAX_DOCUMENT_CHARS:
        raise web.HTTPRequestEntityTooLarge(MAX_DOCUMENT_CHARS, len(text))
    return text


@routes.post("/tasks/{task_id}/validate")
async def validate(request: web.Request) -> web.Response:
    """The located problems of the posted document (an htmx fragment)."""
    console = console_of(request)
    text = await _document(request)
    task_id = request.match_info["task_id"]
    definition, problems, target = check_document(
        text, task_id, console.registry, console.tasks_root
    )
    html = render_fragment(
        request,
        "editor_problems.html",
        problems=[str(p) for p in problems],
        definition=definition,
        target=str(target) if target else None,
    )
    return web.Response(text=html, content_type="text/html")


@routes.post("/tasks/{task_id}/save")
async def save(request: web.Request) -> web.Response:
    """Save the posted document as a new version, unless it has problems."""
    console = console_of(request)
    text = await _document(request)
    task_id = request.match_info["task_id"]
    definition, problems, target = check_document(
        text, task_id, console.registry, console.tasks_root
    )
    if definition is not None and target is not None and not problems:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with target.open("x", encoding="utf-8") as handle:
                handle.write(text if text.endswith("\n") else text + "\n")
        except FileExistsError:
            problems = [Problem(str(target), "$.version", "this version already exists")]
        except OSError as exc:
            problems = [Problem(str(target), "", f"cannot write: {exc.strerror or exc}")]
        else:
            location = f"/tasks/{task_id}?version={definition.version}"
            if is_htmx(request):
                return web.Response(status=204, headers={"HX-Redirect": location})
            raise web.HTTPSeeOther(location)
    lines = [str(p) for p in problems] or ["the document has no version to save under"]
    if is_htmx(request):
        html = render_fragment(
            request, "editor_problems.html", problems=lines, definition=definition, target=None
        )
        return web.Response(text=html, content_type="text/html")  # htmx swaps 2xx only
    current = definition_or_404(request)
    return render(
        request,
        "editor.html",
        status=422,
        nav="tasks",
        task=current,
        text=text,
        problems=lines,
        saved=None,
    )
