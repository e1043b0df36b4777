"""Prompt-improvement suggestions from failure patterns, and reviewed LLM rewrites.

:func:`suggest` turns an :class:`~tlm.learn.analysis.Analysis` into suggestions per prompt
variant ("a required field `location` is missing in 30% of runs of variant structured").
:func:`rewrite_request` builds the prompt asking a model for a rewritten variant,
:func:`parse_rewrite` reads its reply, and
:func:`write_new_version` writes the definition with the new variant as a NEW MINOR VERSION file
beside the task's definitions. Nothing is ever applied silently: the CLI writes only with
``--write``, and the new variant is never chosen automatically: its usage condition is
``false`` (run it with the ``prompt_variant`` option) or the original's, which wins by order.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from tlm.definition.model import TaskDefinition
from tlm.definition.semver import parse_version
from tlm.errors import DefinitionError
from tlm.json_reply import parse_json_reply
from tlm.learn.analysis import Analysis, FailurePattern

__all__ = (
    "Suggestion",
    "suggest",
    "rewrite_request",
    "parse_rewrite",
    "write_new_version",
)

_VARIABLE = re.compile(r"\{\{\s*([A-Za-z_][\w.]*)\s*\}\}")


@attrs.frozen
class Suggestion:
    """One suggested change to one prompt variant."""

    variant: str
    kind: str
    key: str
    count: int
    rate: float
    """Share of the variant's runs that failed this way."""
    text: str
    """What was seen and what to change in the prompt."""
    examples: tuple[str, ...] = ()
    """Execution ids to look at."""


def _advice(pattern: FailurePattern, rate: str, variant: str) -> str:
    runs = f"in {rate} of runs of variant {variant}"
    path = pattern.path or "$"
    field = path.rsplit(".", 1)[-1] if "." in path else path
    if pattern.kind == "schema":
        if pattern.error == "required":
            return (
                f"a required field `{field}` is missing {runs}: say in the prompt that "
                f"`{field}` must always be present (null or empty when the input has none)"
            )
        if pattern.error == "type":
            return (
                f"`{path}` has the wrong type {runs} ({pattern.key.split(': ', 1)[-1]}): "
                "state the expected type and show an example value"
            )
        if pattern.error == "enum":
            return f"`{path}` takes values outside the allowed set {runs}: list them in the prompt"
        if pattern.error == "json":
            return (
                f"the reply is not valid JSON {runs}: ask for one JSON value only, "
                "no prose and no code fences"
            )
        if pattern.error == "additional":
            return f"unexpected fields appear at `{path}` {runs}: name the only allowed fields"
        return f"the output violates the schema at `{path}` {runs} ({pattern.key}): spell out it"
    if pattern.kind == "rule":
        return (
            f"rule `{pattern.error}` fails at `{path}` {runs}: state its constraint explicitly "
            "in the prompt"
        )
    if pattern.kind == "verifier":
        issue = pattern.key.split(": ", 1)[-1]
        return f"verification reports '{issue}' {runs}: address it in the prompt's instructions"
    if pattern.kind == "consensus":
        return (
            f"models disagree {runs}: the prompt may be ambiguous; tighten the output format "
            "and add a worked example"
        )
    return f"executions fail with {pattern.key} {runs}"


def suggest(analysis: Analysis, *, min_rate: float = 0.1, min_count: int = 2) -> list[Suggestion]:
    """Suggestions per prompt variant from ``analysis``'s failure patterns, most frequent first.

    A pattern yields a suggestion for a variant when it hit at least ``min_count`` of the
    variant's runs and at least ``min_rate`` of them. Operational errors (provider failures,
    budgets) are not prompt problems and yield none.
    """
    found: list[Suggestion] = []
    for pattern in analysis.failures:
        if pattern.kind == "error":
            continue
        for variant, count in pattern.variants.items():
            runs = analysis.variant_executions.get(variant, 0)
            if not runs or count < min_count or count / runs < min_rate:
                continue
            rate = count / runs
            found.append(
                Suggestion(
                    variant=variant,
                    kind=pattern.kind,
                    key=pattern.key,
                    count=count,
                    rate=rate,
                    text=_advice(pattern, f"{rate:.0%}", variant),
                    examples=tuple(e["execution_id"] for e in pattern.examples),
                )
            )
    found.sort(key=lambda s: (-s.rate, -s.count, s.variant, s.key))
    return found


def rewrite_request(
    definition: TaskDefinition, variant_id: str, suggestions: Sequence[Suggestion]
) -> str:
    """The prompt asking a model to rewrite one variant to address ``suggestions``."""
    variant = definition.prompt(variant_id)
    issues = "\n".join(f"- {s.text}" for s in suggestions if s.variant == variant_id)
    variables = ", ".join(f"{{{{{v}}}}}" for v in variant.template_variables)
    return (
        "You improve prompt templates for an LLM task.\n"
        f"Task: {definition.name}: {definition.description}\n"
        f"Output JSON Schema: {json.dumps(definition.output.schema)}\n\n"
        f"Current template (variant {variant.id}):\n<<<\n{variant.text}\n>>>\n\n"
        f"Failures seen in its runs:\n{issues or '- none recorded'}\n\n"
        "Rewrite the template to prevent these failures. Keep every template variable "
        f"exactly as written ({variables}) and introduce no new ones. "
        'Answer with JSON only: {"text": "<the new template>", "rationale": "<one sentence>"}'
    )


def parse_rewrite(reply: str | Mapping[str, Any], *, variables: Sequence[str]) -> str:
    """The new template from a model's reply; it must keep exactly the given variables.

    Raises:
        DefinitionError: the reply is not the asked JSON, or the variables differ.
    """
    data: Any = reply
    if isinstance(reply, str):
        parsed = parse_json_reply(reply)
        if not parsed.ok:
            reason = (parsed.error or "").removeprefix("not valid JSON: ")
            raise DefinitionError(f"the rewrite is not JSON: {reason}")
        data = parsed.value
    if not isinstance(data, Mapping) or not isinstance(data.get("text"), str):
        raise DefinitionError('the rewrite must be {"text": "...", "rationale": "..."}')
    template: str = data["text"]
    used = set(_VARIABLE.findall(template))
    if used != set(variables):
        raise DefinitionError(
            f"the rewrite uses variables {sorted(used)}, expected {sorted(variables)}"
        )
    return template


def write_new_version(
    definition: TaskDefinition,
    variant_id: str,
    new_text: str,
    *,
    new_variant_id: str | None = None,
    directory: Path | None = None,
) -> Path:
    """Write ``definition`` plus a new variant (a copy of ``variant_id`` with ``new_text``, not
    the default) as the next minor version, beside the definition's file.

    Raises:
        DefinitionError: the definition has no source file, the variant is unknown, or the next
            minor version's file already exists.
    """
    source = Path(definition.source) if definition.source else None
    if source is None or not source.is_file():
        raise DefinitionError(f"{definition.key} has no source file to write beside")
    document = json.loads(source.read_text(encoding="utf-8"))
    base = parse_version(definition.version)
    version = f"{base.major}.{base.minor + 1}.0"
    prompts = list(document.get("prompts", []))
    original = next((p for p in prompts if p.get("id") == variant_id), None)
    if original is None:
        raise DefinitionError(f"{definition.key} has no prompt variant {variant_id!r}")
    taken = {p.get("id") for p in prompts}
    new_id = new_variant_id or f"{variant_id}_v{base.minor + 1}"
    while new_id in taken:
        new_id += "_"
    variant = dict(original)
    variant["id"] = new_id
    variant["text"] = new_text
    conditions = dict(variant.get("usage_conditions") or {})
    conditions.pop("default", None)
    variant["usage_conditions"] = conditions or {"when": "false"}
    prompts.append(variant)
    document["prompts"] = prompts
    document["version"] = version
    folder = directory or source.parent
    target = folder / f"{version}.json"
    if target.exists():
        raise DefinitionError(f"{target} already exists; review it instead of overwriting it")
    target.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return target
