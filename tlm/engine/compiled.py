"""A task definition compiled once for execution: validators, rules, prompts and verifier."""

from __future__ import annotations

import inspect
import json
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from tlm import prompts
from tlm.definition.model import PromptVariant, TaskDefinition
from tlm.engine.output import SchemaValidator, parse_json_reply
from tlm.engine.result import ExecuteOptions
from tlm.errors import Problem
from tlm.providers.base import ChatResponse
from tlm.rules import Rule, RuleRegistry, apply_rules
from tlm.verify.base import Verifier

__all__ = ("CompiledTask", "compile_task")

_JSON_INSTRUCTIONS = (
    "Answer with one JSON value that satisfies this JSON Schema, and nothing else "
    "(no prose, no code fences):\n{schema}"
)


@attrs.frozen(eq=False)
class CompiledTask:
    """Everything the stages need about one task version, built once per engine."""

    definition: TaskDefinition
    rules: RuleRegistry
    verifier: Verifier
    input_validator: SchemaValidator
    output_validator: SchemaValidator
    json_instructions: str
    input_rules: tuple[tuple[Rule, bool], ...] | None = None
    """Input rules resolved once, each with whether it takes ``schema`` (``None``: unresolved)."""
    output_rules: tuple[tuple[Rule, bool], ...] | None = None
    """The output rules resolved once, as :attr:`input_rules`."""

    @property
    def fallback_strategy(self) -> str:
        """The definition's fallback strategy name."""
        return self.definition.verification.fallback.strategy

    def input_problems(self, value: Any) -> list[Problem]:
        """Every violation of the input schema and input rules, each with its JSON path."""
        found = self.input_validator.problems(value, source="input")
        if not found or isinstance(value, Mapping):
            spec = self.definition.input
            found.extend(
                _rule_problems(
                    self.rules, self.input_rules, spec.validations, value, "input", spec.schema
                )
            )
        return found

    def output_problems(self, response: ChatResponse) -> tuple[Any, tuple[Problem, ...]]:
        """Parse (with deterministic repair) and validate a model's reply."""
        if response.parsed is not None:
            value = response.parsed
        else:
            parsed = parse_json_reply(response.text)
            if not parsed.ok:
                return None, (Problem("output", "$", parsed.error or "not valid JSON"),)
            value = parsed.value
        found = self.output_validator.problems(value, source="output")
        spec = self.definition.output
        found.extend(
            _rule_problems(
                self.rules, self.output_rules, spec.validations, value, "output", spec.schema
            )
        )
        return value, tuple(found)

    def choose_variant(self, input: Mapping[str, Any], options: ExecuteOptions) -> PromptVariant:
        """The prompt variant whose usage conditions hold for this input and these options."""
        return prompts.choose_variant(self.definition, input, options.as_condition_options())

    def system_message(self, variant: PromptVariant, *, with_schema: bool = True) -> str:
        """The system message for ``variant``: its own system text, then the JSON instructions."""
        parts = [variant.system, self.json_instructions if with_schema else None]
        return "\n\n".join(p for p in parts if p)

    def render(self, variant: PromptVariant, input: Mapping[str, Any]) -> str:
        """The variant's text with the input's values substituted (strict, never re-expanded)."""
        return prompts.render_variant(variant, input)


def _takes_schema(rule: Rule) -> bool:
    try:
        parameters = inspect.signature(rule).parameters
    except (TypeError, ValueError):
        return False
    param = parameters.get("schema")
    return param is not None and param.kind in (
        inspect.Parameter.KEYWORD_ONLY,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
    )


def _resolve_rules(
    rules: RuleRegistry, names: Sequence[str]
) -> tuple[tuple[Rule, bool], ...] | None:
    """Each named rule with whether it takes ``schema``; ``None`` if one is unknown."""
    resolved = []
    for name in names:
        try:
            rule = rules.get(name)
        except KeyError:
            return None
        resolved.append((rule, _takes_schema(rule)))
    return tuple(resolved)


def _rule_problems(
    rules: RuleRegistry,
    resolved: tuple[tuple[Rule, bool], ...] | None,
    names: Sequence[str],
    value: Any,
    source: str,
    schema: Mapping[str, Any],
) -> list[Problem]:
    """:func:`apply_rules`, with a fast path: pre-resolved rules that all pass give ``[]``.

    Any failure or error goes through :func:`apply_rules`, so problems read exactly the same.
    """
    if resolved is not None:
        try:
            for rule, takes_schema in resolved:
                failures = rule(value, schema=schema) if takes_schema else rule(value)  # type: ignore[call-arg]
                if list(failures):
                    break
            else:
                return []
        except Exception:  # reported by apply_rules below
            pass
    return apply_rules(rules, names, value, source=source, schema=schema)


def compile_task(
    definition: TaskDefinition, *, rules: RuleRegistry, verifier: Verifier
) -> CompiledTask:
    """Compile ``definition`` with the given rule registry and verifier."""
    schema_text = json.dumps(definition.output.schema, separators=(",", ":"))
    return CompiledTask(
        definition=definition,
        rules=rules,
        verifier=verifier,
        input_validator=SchemaValidator(definition.input.schema),
        output_validator=SchemaValidator(definition.output.schema),
        json_instructions=_JSON_INSTRUCTIONS.format(schema=schema_text),
        input_rules=_resolve_rules(rules, definition.input.validations),
        output_rules=_resolve_rules(rules, definition.output.validations),
    )
