"""The playground: run a task on a typed input or one of its examples, with a chosen model and
prompt variant, and see the output, verdict, cost, latency and span tree of that execution.

Runs go through the console's engine like any other execution, so each is recorded in the store
(and has its own execution page).
"""

from __future__ import annotations

import json
from typing import Any

import anyio.to_thread
from aiohttp import web

from tlm.engine.result import ExecuteOptions
from tlm.errors import ExecutionError, TLMError
from tlm.telemetry.redact import sanitize_message
from tlm.ui.pages.tasks import definition_or_404
from tlm.ui.render import is_htmx, render, render_fragment
from tlm.ui.state import console_of
from tlm.ui.waterfall import waterfall

__all__ = ("routes",)

routes = web.RouteTableDef()
AUTO = ""


def _example_text(examples: tuple[Any, ...], index: int) -> str:
    if not examples:
        return "{}"
    chosen = examples[min(max(index, 0), len(examples) - 1)]
    return json.dumps(chosen, indent=2, ensure_ascii=False)


@routes.get("/tasks/{task_id}/playground")
async def playground(request: web.Request) -> web.Response:
    """The form: input (an example by default), model, prompt variant."""
    definition = definition_or_404(request, request.query.get("version"))
    console = console_of(request)
    try:
        example = int(request.query.get("example", "0"))
    except ValueError:
        example = 0
    return render(
        request,
        "playground.html",
        nav="tasks",
        task=definition,
        models=console.config.models,
        text=_example_text(definition.input.examples, example),
        example=example,
        chosen_model=AUTO,
        chosen_variant=AUTO,
        use_cache=False,
        result=None,
    )


async def _run(request: web.Request) -> dict[str, Any]:
    console = console_of(request)
    form = await request.post()
    definition = definition_or_404(request, str(form.get("version", "")) or None)
    text = str(form.get("input", ""))
    model = str(form.get("model", AUTO))
    variant = str(form.get("variant", AUTO))
    use_cache = form.get("cache") == "on"
    outcome: dict[str, Any] = {
        "task": definition,
        "text": text,
        "chosen_model": model,
        "chosen_variant": variant,
        "use_cache": use_cache,
        "models": console.config.models,
        "example": -1,
    }
    try:
        value = json.loads(text)
    except ValueError as exc:
        outcome["result"] = {"error": f"the input is not JSON: {exc}"}
        return outcome
    if model and model not in console.config.models:
        outcome["result"] = {"error": f"unknown model {model!r}"}
        return outcome
    if variant and variant not in {p.id for p in definition.prompts}:
        outcome["result"] = {"error": f"unknown prompt variant {variant!r}"}
        return outcome
    options = ExecuteOptions(
        models=(model,) if model else None,
        prompt_variant=variant or None,
        cache=use_cache,
    )
    engine = await console.engine()
    result: dict[str, Any] = {}
    execution_id: str | None = None
    try:
        done = await engine.execute(definition, value, options=options)
        execution_id = done.execution_id
        result.update(
            output=console.redacted(done.output),
            status=done.status,
            verdict=done.verdict,
            cost=done.cost_usd,
            latency=done.latency_s,
            models=done.models_used,
            variant=done.prompt_variant,
        )
    except ExecutionError as exc:
        execution_id = exc.execution_id
        result["error"] = f"{type(exc).__name__}: {sanitize_message(str(exc), 2000)}"
    except TLMError as exc:
        result["error"] = f"{type(exc).__name__}: {sanitize_message(str(exc), 2000)}"
    if execution_id is not None:
        await anyio.to_thread.run_sync(engine.flush)
        record = await anyio.to_thread.run_sync(console.store.get, execution_id)
        result["execution_id"] = execution_id
        if record is not None:
            result["bars"] = waterfall(record.spans)
            result.setdefault("cost", record.performance.cost)
            result.setdefault("latency", record.performance.execution_time)
    outcome["result"] = result
    return outcome


@routes.post("/tasks/{task_id}/playground")
async def run(request: web.Request) -> web.Response:
    """Run the task; htmx gets the result panel, a plain form post the whole page."""
    outcome = await _run(request)
    if is_htmx(request):
        html = render_fragment(request, "playground_result.html", result=outcome["result"])
        return web.Response(text=html, content_type="text/html")
    return render(request, "playground.html", nav="tasks", **outcome)
