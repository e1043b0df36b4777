"""A user's project on disk (definitions, catalog, data directory) and a recording HTTP endpoint."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from aiohttp import web

from tlm.cli.tasks import scaffold

MODEL = "fake-gpt"
KEY_ENV = "FAKECO_API_KEY"


def contact_task(
    *,
    task_id: str = "contact_summary",
    verification: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A task whose input carries an ``email`` (redacted in these tests) and a ``note``."""
    document = scaffold(task_id)
    document["input"] = {
        "schema": {
            "type": "object",
            "properties": {
                "email": {"type": "string", "pattern": "@"},
                "note": {"type": "string"},
            },
            "required": ["email", "note"],
        },
        "examples": [{"email": "a@example.com", "note": "call back"}],
        "validations": ["max_length_60"],
    }
    document["output"] = {
        "schema": {
            "type": "object",
            "properties": {"summary": {"type": "string"}},
            "required": ["summary"],
            "additionalProperties": False,
        },
        "examples": [{"summary": "Call back."}],
        "validations": ["has_required_fields"],
    }
    document["prompts"] = [
        {
            "id": "standard",
            "text": "Summarise this note for {{email}}:\n\n{{note}}",
            "template_variables": ["email", "note"],
            "usage_conditions": {"default": True},
        }
    ]
    document["verification"] = dict(verification or {"method": "none", "fallback_strategy": "fail"})
    return document


def write_project(root: Path, base_url: str, *tasks: Mapping[str, Any]) -> tuple[Path, Path]:
    """Write ``definitions/tasks/<id>/<version>.json`` and ``definitions/models.json``; return
    the definitions directory and the catalog path."""
    definitions = root / "definitions"
    for task in tasks:
        target = definitions / "tasks" / str(task["id"]) / f"{task['version']}.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(task, indent=2), encoding="utf-8")
    catalog = definitions / "models.json"
    definitions.mkdir(parents=True, exist_ok=True)
    catalog.write_text(
        json.dumps(
            {
                "version": 1,
                "models": [
                    {
                        "id": MODEL,
                        "provider": "fakeco",
                        "api": "openai",
                        "provider_model": MODEL,
                        "base_url": base_url,
                        "api_key_env": KEY_ENV,
                        "context_window": 32_768,
                        "input_price_per_mtok": 1.0,
                        "output_price_per_mtok": 2.0,
                        "structured_output": "json_schema",
                        "prior_quality": 0.9,
                        "prior_latency_s": 1.0,
                    }
                ],
            }
        ),
        encoding="utf-8",
    )
    return definitions, catalog


def files_under(directory: Path) -> Iterator[Path]:
    """Every regular file below ``directory``."""
    return (path for path in sorted(directory.rglob("*")) if path.is_file())


def encodings(secret: str) -> list[bytes]:
    """The byte forms a string takes in files: UTF-8 as is, and JSON-escaped."""
    forms = {secret, json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]}
    return [form.encode("utf-8") for form in forms]


def leaks_in_files(directory: Path, secret: str) -> list[str]:
    """The files below ``directory`` whose bytes contain ``secret`` in any form."""
    forms = encodings(secret)
    return [
        str(path) for path in files_under(directory) if any(f in path.read_bytes() for f in forms)
    ]


class Recorder:
    """A real HTTP endpoint on 127.0.0.1 that records the raw bytes of every request."""

    def __init__(self, reply: Callable[[web.Request, bytes], web.StreamResponse]) -> None:
        self.reply = reply
        self.raw: list[bytes] = []
        self.paths: list[str] = []
        self.headers: list[dict[str, str]] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.raw.append(body)
        self.paths.append(request.path)
        self.headers.append(dict(request.headers))
        return self.reply(request, body)


@asynccontextmanager
async def recording_endpoint(
    reply: Callable[[web.Request, bytes], web.StreamResponse],
) -> AsyncIterator[Recorder]:
    """Serve ``reply`` for any path (GET or POST) on 127.0.0.1 and record what arrives."""
    recorder = Recorder(reply)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", recorder.handle)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    recorder.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield recorder
    finally:
        await runner.cleanup()


def verdict(passed: bool) -> Callable[[web.Request, bytes], web.StreamResponse]:
    """An endpoint reply: ``{"passed": passed}``."""

    def reply(request: web.Request, body: bytes) -> web.StreamResponse:
        return web.json_response({"passed": passed, "issues": [] if passed else ["wrong"]})

    return reply
