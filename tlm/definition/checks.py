"""Load-time checks a JSON Schema cannot express, so mistakes surface before any model call.

Examples must satisfy their own schema and rules; prompt placeholders, ``template_variables`` and
the input schema must agree; exactly one default prompt with unique ids; every ``when`` condition
parses; validation rules, verification methods, similarity metrics and fallback strategies must be
known; consensus counts must be consistent; chain steps are checked recursively.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from tlm.definition.model import (
    FALLBACK_STRATEGIES,
    CascadeParams,
    ConsensusParams,
    HierarchicalParams,
    IOSpec,
    NoParams,
    TaskDefinition,
    VerificationSpec,
)
from tlm.definition.schema import instance_problems, meta_schema_problems
from tlm.definition.semver import parse_range
from tlm.errors import Problem
from tlm.prompts import parse_condition, template_variables
from tlm.rules import RuleRegistry, apply_rules, default_registry
from tlm.verify.methods import METHODS, steps_of

__all__ = ("KNOWN_METRICS", "check_definition", "input_properties")

KNOWN_METRICS = frozenset({"text", "difflib", "token_cosine", "structured", "semantic", "exact"})
"""The built-in similarity metric names; pass ``metrics=`` to accept registered custom ones."""


def input_properties(definition: TaskDefinition) -> set[str]:
    """The property names declared by the input schema's top level."""
    properties = definition.input.schema.get("properties")
    return set(properties) if isinstance(properties, Mapping) else set()


def _check_io(side: str, spec: IOSpec, rules: RuleRegistry, source: str) -> list[Problem]:
    problems = meta_schema_problems(spec.schema, source=source, base_path=f"$.{side}.schema")
    known_rules = []
    for i, name in enumerate(spec.validations):
        if name in rules:
            known_rules.append(name)
        else:
            problems.append(
                Problem(source, f"$.{side}.validations[{i}]", f"unknown validation rule {name!r}")
            )
    schema_ok = not problems
    for i, example in enumerate(spec.examples):
        base = f"$.{side}.examples[{i}]"
        if schema_ok:
            problems += instance_problems(spec.schema, example, source=source, base_path=base)
        problems += apply_rules(
            rules, known_rules, example, source=source, base_path=base, schema=spec.schema
        )
    return problems


def _check_prompts(definition: TaskDefinition, source: str) -> list[Problem]:
    problems: list[Problem] = []
    properties = input_properties(definition)
    first_index: dict[str, int] = {}
    defaults = []
    for i, prompt in enumerate(definition.prompts):
        at = f"$.prompts[{i}]"
        if prompt.id in first_index:
            problems.append(
                Problem(
                    source,
                    f"{at}.id",
                    f"duplicate prompt id {prompt.id!r} (first used at "
                    f"$.prompts[{first_index[prompt.id]}])",
                )
            )
        else:
            first_index[prompt.id] = i
        if prompt.is_default:
            defaults.append(i)
        used = template_variables(prompt.text)
        if prompt.system:
            used |= template_variables(prompt.system)
        declared = list(prompt.template_variables)
        for j, name in enumerate(declared):
            if name not in used:
                problems.append(
                    Problem(
                        source,
                        f"{at}.template_variables[{j}]",
                        f"{name!r} is declared but {{{{{name}}}}} does not appear in the text",
                    )
                )
            if name not in properties:
                problems.append(
                    Problem(
                        source,
                        f"{at}.template_variables[{j}]",
                        f"{name!r} is not a property of the input schema "
                        f"(properties: {', '.join(sorted(properties)) or 'none'})",
                    )
                )
        for name in sorted(used - set(declared)):
            problems.append(
                Problem(
                    source,
                    f"{at}.text",
                    f"{{{{{name}}}}} is used but {name!r} is not in template_variables",
                )
            )
        when = prompt.usage_conditions.get("when")
        if when is not None:
            try:
                parse_condition(when)
            except ValueError as exc:
                problems.append(Problem(source, f"{at}.usage_conditions.when", str(exc)))
        elif not prompt.is_default:
            problems.append(
                Problem(
                    source,
                    f"{at}.usage_conditions",
                    'a variant needs {"default": true} or {"when": "<condition>"}',
                )
            )
    if not defaults:
        problems.append(
            Problem(
                source, "$.prompts", 'no prompt is marked {"default": true}; exactly one must be'
            )
        )
    for i in defaults[1:]:
        problems.append(
            Problem(
                source,
                f"$.prompts[{i}].usage_conditions.default",
                f"a second default prompt (the first is $.prompts[{defaults[0]}]); exactly one "
                "must be the default",
            )
        )
    return problems


def _check_consensus(
    params: ConsensusParams,
    at: str,
    definition: TaskDefinition,
    metrics: Collection[str],
    source: str,
) -> list[Problem]:
    problems: list[Problem] = []
    if params.similarity_metric not in metrics:
        problems.append(
            Problem(
                source,
                f"{at}.similarity_metric",
                f"unknown similarity metric {params.similarity_metric!r} "
                f"(known: {', '.join(sorted(metrics))})",
            )
        )
    if params.min_models > params.max_models:
        problems.append(
            Problem(
                source,
                f"{at}.min_models",
                f"min_models ({params.min_models}) is greater than "
                f"max_models ({params.max_models})",
            )
        )
    if params.consensus_count is not None and params.consensus_count > params.max_models:
        problems.append(
            Problem(
                source,
                f"{at}.consensus_count",
                f"consensus_count ({params.consensus_count}) is greater than max_models "
                f"({params.max_models}): agreement could never be reached",
            )
        )
    if params.models and len(set(params.models)) < params.min_models:
        problems.append(
            Problem(
                source,
                f"{at}.models",
                f"{len(set(params.models))} distinct model(s) listed but min_models is "
                f"{params.min_models}",
            )
        )
    output_properties = definition.output.schema.get("properties")
    if params.field_weights and isinstance(output_properties, Mapping):
        for name in params.field_weights:
            if name not in output_properties:
                problems.append(
                    Problem(
                        source,
                        f"{at}.field_weights",
                        f"{name!r} is not a property of the output schema",
                    )
                )
    return problems


def _check_hierarchical(
    params: HierarchicalParams, at: str, definition: TaskDefinition, source: str
) -> list[Problem]:
    allowed = input_properties(definition) | {"output"}
    others = sorted(template_variables(params.verification_prompt) - allowed)
    if len(others) <= 1:
        return []  # at most one other name, which stands for the output (e.g. {{decomposition}})
    return [
        Problem(
            source,
            f"{at}.verification_prompt",
            f"unknown variables {', '.join(others)}: use input properties, {{{{output}}}}, or "
            "one other name for the output",
        )
    ]


def _check_verification(
    spec: VerificationSpec,
    at: str,
    definition: TaskDefinition,
    metrics: Collection[str],
    source: str,
    *,
    step: bool = False,
) -> list[Problem]:
    problems: list[Problem] = []
    method = METHODS.get(spec.method)
    if method is None:
        problems.append(
            Problem(
                source,
                f"{at}.method",
                f"unknown verification method {spec.method!r} "
                f"(known: {', '.join(METHODS.names())})",
            )
        )
    elif not isinstance(spec.parameters, method.parameters) and method.parameters is not NoParams:
        problems.append(
            Problem(
                source,
                f"{at}.parameters",
                f"verification method {spec.method!r} needs {method.parameters.__name__}, got "
                f"{type(spec.parameters).__name__}",
            )
        )
    if not step and spec.fallback.strategy not in FALLBACK_STRATEGIES:
        problems.append(
            Problem(
                source,
                f"{at}.fallback_strategy",
                f"unknown fallback strategy {spec.fallback.strategy!r} "
                f"(known: {', '.join(FALLBACK_STRATEGIES)})",
            )
        )
    params = spec.parameters
    where = f"{at}.parameters"
    if isinstance(params, ConsensusParams):
        problems += _check_consensus(params, where, definition, metrics, source)
    elif isinstance(params, HierarchicalParams):
        problems += _check_hierarchical(params, where, definition, source)
    elif isinstance(params, CascadeParams):
        if params.similarity_metric not in metrics:
            problems.append(
                Problem(
                    source,
                    f"{where}.similarity_metric",
                    f"unknown similarity metric {params.similarity_metric!r}",
                )
            )
    for i, sub in enumerate(steps_of(spec)):
        problems += _check_verification(
            sub, f"{where}.steps[{i}]", definition, metrics, source, step=True
        )
    return problems


def check_definition(
    definition: TaskDefinition,
    *,
    rules: RuleRegistry | None = None,
    metrics: Collection[str] | None = None,
) -> list[Problem]:
    """Every load-time problem of ``definition`` beyond its JSON Schema (empty when none).

    Args:
        definition: The structured definition; its ``source`` prefixes each problem.
        rules: Validation rules to resolve names against (default: :func:`default_registry`).
        metrics: Extra similarity metric names to accept besides :data:`KNOWN_METRICS`.
    """
    source = definition.source or ""
    registry = rules if rules is not None else default_registry()
    known_metrics = KNOWN_METRICS | frozenset(metrics or ())
    problems = _check_io("input", definition.input, registry, source)
    problems += _check_io("output", definition.output, registry, source)
    problems += _check_prompts(definition, source)
    problems += _check_verification(
        definition.verification, "$.verification", definition, known_metrics, source
    )
    for i, dependency in enumerate(definition.depends_on):
        _, sep, version_range = dependency.partition("@")
        if sep:
            try:
                parse_range(version_range)
            except ValueError as exc:
                problems.append(Problem(source, f"$.depends_on[{i}]", str(exc)))
    return problems
