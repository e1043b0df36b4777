"""A task definition compiled once for execution: validators, rules, prompts and verifier."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import attrs

import tlm.prompts as prompts
from tlm.definition.model import PromptVariant, TaskDefinition
from tlm.engine.json_values import json_value_problems
from tlm.engine.output import parse_json_reply
from tlm.engine.result import ExecuteOptions
from tlm.errors import Problem
from tlm.json_reply import schema_instruction
from tlm.json_schema import SchemaValidator
from tlm.providers.base import ChatResponse
from tlm.rules import RuleRegistry, RuleSet
from tlm.telemetry.redact import Redaction
from tlm.verify.base import Verifier

__all__ = ("CompiledTask", "compile_task")


@attrs.frozen(eq=False)
class CompiledTask:
    """Everything the stages need about one task version, built once per engine."""

    definition: TaskDefinition
    verifier: Verifier
    input_validator: SchemaValidator
    output_validator: SchemaValidator
    json_instructions: str
    input_rules: RuleSet
    """The input's validation rules, looked up once."""
    output_rules: RuleSet
    """The output's validation rules, looked up once."""
    redaction: Redaction = attrs.field(factory=Redaction)
    """The redacted fields: problems about their values are reported without the values."""
    voters: int = 0
    """Second opinions to start together with the primary call (a plain consensus verifier
    asks ``min_models - 1`` others at once anyway; starting them early saves a round trip)."""

    @property
    def fallback_strategy(self) -> str:
        """The definition's fallback strategy name."""
        return self.definition.verification.fallback.strategy

    def input_problems(self, value: Any) -> list[Problem]:
        """Every violation of the input schema and input rules, each with its JSON path."""
        fields = self.redaction.fields
        found = self.input_validator.problems(value, source="input", redact=fields)
        if not found or isinstance(value, Mapping):
            schema = self.definition.input.schema
            found.extend(self.input_rules.problems(value, source="input", schema=schema))
        return self.redaction.problems(found, value) if found and fields else found

    def output_problems(self, response: ChatResponse) -> tuple[Any, tuple[Problem, ...]]:
        """Parse (with deterministic repair) and validate a model's reply."""
        if response.parsed is not None:
            value = response.parsed
        else:
            parsed = parse_json_reply(response.text)
            if not parsed.ok:
                return None, (Problem("output", "$", parsed.error or "not valid JSON"),)
            value = parsed.value
        not_json = json_value_problems(value, source="output")
        if not_json:  # NaN, lone surrogates, too deep: nothing downstream could keep it
            return value, tuple(not_json)
        fields = self.redaction.fields
        found = self.output_validator.problems(value, source="output", redact=fields)
        schema = self.definition.output.schema
        found.extend(self.output_rules.problems(value, source="output", schema=schema))
        if found and fields:
            found = self.redaction.problems(found, value)
        return value, tuple(found)

    def choose_variant(self, input: Mapping[str, Any], options: ExecuteOptions) -> PromptVariant:
        """The prompt variant whose usage conditions hold for this input and these options."""
        return prompts.choose_variant(self.definition, input, options.as_condition_options())

    _system_messages: dict[tuple[str | None, bool], str] = attrs.field(
        factory=dict, init=False, repr=False
    )
    """System messages built so far, by (variant system text, with schema): fixed per task."""

    def system_message(self, variant: PromptVariant, *, with_schema: bool = True) -> str:
        """The system message for ``variant``: its own system text, then the JSON instructions."""
        key = (variant.system, with_schema)
        built = self._system_messages.get(key)
        if built is None:
            parts = [variant.system, self.json_instructions if with_schema else None]
            built = self._system_messages[key] = "\n\n".join(p for p in parts if p)
        return built

    def render(self, variant: PromptVariant, input: Mapping[str, Any]) -> str:
        """The variant's text with the input's values substituted (strict, never re-expanded)."""
        return prompts.render_variant(variant, input)


def compile_task(
    definition: TaskDefinition,
    *,
    rules: RuleRegistry,
    verifier: Verifier,
    voters: int = 0,
    redact: Collection[str] = (),
) -> CompiledTask:
    """Compile ``definition`` with the given rule registry and verifier.

    ``voters``: how many consensus voters to start speculatively with the primary call.
    ``redact``: field names whose values validation problems must not show.
    """
    return CompiledTask(
        definition=definition,
        verifier=verifier,
        input_validator=SchemaValidator(definition.input.schema),
        output_validator=SchemaValidator(definition.output.schema),
        json_instructions=schema_instruction(definition.output.schema),
        input_rules=RuleSet.resolve(rules, definition.input.validations),
        output_rules=RuleSet.resolve(rules, definition.output.validations),
        voters=voters,
        redaction=Redaction(fields=frozenset(redact)),
    )
