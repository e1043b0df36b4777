"""A task definition compiled once for execution: validators, rules, prompts and verifier."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import attrs

from tlm import prompts
from tlm.definition.model import PromptVariant, TaskDefinition
from tlm.engine.output import SchemaValidator, parse_json_reply
from tlm.engine.result import ExecuteOptions
from tlm.errors import Problem
from tlm.providers.base import ChatResponse
from tlm.rules import RuleRegistry, apply_rules
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

    @property
    def fallback_strategy(self) -> str:
        """The definition's fallback strategy name."""
        return self.definition.verification.fallback.strategy

    def input_problems(self, value: Any) -> list[Problem]:
        """Every violation of the input schema and input rules, each with its JSON path."""
        found = self.input_validator.problems(value, source="input")
        if not found or isinstance(value, Mapping):
            found.extend(
                apply_rules(
                    self.rules,
                    self.definition.input.validations,
                    value,
                    source="input",
                    schema=self.definition.input.schema,
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
        found.extend(
            apply_rules(
                self.rules,
                self.definition.output.validations,
                value,
                source="output",
                schema=self.definition.output.schema,
            )
        )
        return value, tuple(found)

    def choose_variant(self, input: Mapping[str, Any], options: ExecuteOptions) -> PromptVariant:
        """The prompt variant whose usage conditions hold for this input and these options."""
        return prompts.choose_variant(self.definition, input, options.as_condition_options())

    def render(self, variant: PromptVariant, input: Mapping[str, Any]) -> str:
        """The variant's text with the input's values substituted (strict, never re-expanded)."""
        return prompts.render_variant(variant, input)


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
    )
