"""Named validation rules for task inputs and outputs (``min_length_100``, ``no_duplicate_skills``).

A rule is any callable ``rule(value) -> Sequence[RuleFailure]`` (optionally also taking a
``schema`` keyword). Rules are looked up by name in a :class:`RuleRegistry`: exact names first,
then parametric families such as ``min_length_N``. :func:`default_registry` holds the built-ins
(see :mod:`tlm.rules._builtin` for the list and their exact meaning) plus plug-ins from the
``tlm.rules`` entry-point group, imported on first need. Register your own in code::

    registry = default_registry()

    @registry.register("no_lorem_ipsum")
    def no_lorem_ipsum(value):
        if "lorem ipsum" in value.get("job_posting", "").lower():
            return [RuleFailure("$.job_posting", "contains placeholder text")]
        return []

:func:`apply_rules` turns failures into located :class:`tlm.errors.Problem` values.
"""

from tlm.rules._builtin import register_builtins
from tlm.rules._registry import (
    ENTRY_POINT_GROUP,
    Rule,
    RuleFailure,
    RuleFamily,
    RuleRegistry,
    RuleSet,
    apply_rules,
    describe_value,
)

__all__ = (
    "Rule",
    "RuleFailure",
    "RuleFamily",
    "RuleRegistry",
    "RuleSet",
    "ENTRY_POINT_GROUP",
    "apply_rules",
    "default_registry",
    "describe_value",
)


def default_registry() -> RuleRegistry:
    """A new registry with the built-in rules; plug-ins from ``tlm.rules`` load on first need."""
    return register_builtins(RuleRegistry(load_entry_points=True))
