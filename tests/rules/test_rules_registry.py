"""The rule registry: code registration, families, entry-point plug-ins, failures as problems."""

from __future__ import annotations

import importlib.metadata
import sys
import types
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from tlm.errors import ConfigurationError
from tlm.rules import (
    ENTRY_POINT_GROUP,
    RuleFailure,
    RuleFamily,
    RuleRegistry,
    apply_rules,
    default_registry,
)


def test_register_as_decorator_and_directly() -> None:
    registry = default_registry()

    @registry.register("no_lorem")
    def no_lorem(value: Any) -> list[RuleFailure]:
        if "lorem" in str(value.get("text", "")):
            return [RuleFailure("$.text", "contains placeholder text", value["text"])]
        return []

    assert registry.get("no_lorem") is no_lorem
    assert "no_lorem" in registry.names()
    problems = apply_rules(registry, ["no_lorem"], {"text": "lorem ipsum"})
    assert [p.message for p in problems] == [
        'rule no_lorem: $.text contains placeholder text (value: "lorem ipsum")'
    ]

    def always(value: Any) -> Sequence[RuleFailure]:
        return ()

    assert registry.register("always", always) is always
    assert apply_rules(registry, ["always"], 1) == []


def test_register_refuses_duplicates_and_bad_names() -> None:
    registry = default_registry()
    with pytest.raises(ValueError, match="already registered"):
        registry.register("non_empty_text", lambda value: [])
    registry.register("non_empty_text", lambda value: [], replace=True)
    assert apply_rules(registry, ["non_empty_text"], {"a": ""}) == []
    with pytest.raises(ValueError, match="must be an identifier"):
        registry.register("bad name", lambda value: [])


def test_unknown_names_raise_keyerror_and_become_problems() -> None:
    registry = default_registry()
    with pytest.raises(KeyError):
        registry.get("nope")
    assert "nope" not in registry
    assert 3 not in registry
    (problem,) = apply_rules(registry, ["nope"], {}, source="f.json", base_path="$.input")
    assert str(problem) == "f.json: $.input: unknown validation rule 'nope'"


def test_schema_keyword_passed_only_to_rules_that_take_it() -> None:
    registry = RuleRegistry()
    seen: list[Mapping[str, Any] | None] = []

    @registry.register("wants_schema")
    def wants_schema(value: Any, *, schema: Mapping[str, Any] | None = None) -> list[RuleFailure]:
        seen.append(schema)
        return []

    registry.register("plain", lambda value: [])
    apply_rules(registry, ["wants_schema", "plain"], {}, schema={"type": "object"})
    assert seen == [{"type": "object"}]


def test_a_raising_rule_is_reported_not_raised() -> None:
    registry = RuleRegistry()

    @registry.register("buggy")
    def buggy(value: Any) -> list[RuleFailure]:
        raise ZeroDivisionError("division by zero")

    (problem,) = apply_rules(registry, ["buggy"], {})
    assert problem.message == "rule buggy raised ZeroDivisionError: division by zero"


def test_user_families_resolve_by_pattern() -> None:
    registry = RuleRegistry()

    def divisible(n: str) -> Any:
        def rule(value: Any) -> list[RuleFailure]:
            return [] if value % int(n) == 0 else [RuleFailure("$", f"is not divisible by {n}")]

        return rule

    family = registry.register_family("divisible_by_<N>", r"divisible_by_(?P<n>\d+)", divisible)
    assert registry.families() == (family,)
    assert "divisible_by_7" in registry
    assert apply_rules(registry, ["divisible_by_7"], 14) == []
    assert [p.message for p in apply_rules(registry, ["divisible_by_7"], 15)] == [
        "rule divisible_by_7: $ is not divisible by 7"
    ]
    assert registry.get("divisible_by_7") is registry.get("divisible_by_7")


def test_copy_is_independent() -> None:
    base = default_registry()
    clone = base.copy()
    clone.register("only_in_clone", lambda value: [])
    assert "only_in_clone" in clone
    assert "only_in_clone" not in base


def _plugin_module() -> types.ModuleType:
    module = types.ModuleType("tlm_test_rule_plugin")

    def no_tbd(value: Any) -> list[RuleFailure]:
        return [RuleFailure("$", "contains TBD", value)] if "TBD" in str(value) else []

    module.no_tbd = no_tbd  # type: ignore[attr-defined]
    module.even_family = RuleFamily(  # type: ignore[attr-defined]
        "even_<field>",
        r"even_(?P<field>[a-z]+)",
        lambda field: (
            lambda value: (
                [] if value.get(field, 0) % 2 == 0 else [RuleFailure(f"$.{field}", "is odd")]
            )
        ),
    )
    module.broken = 42  # type: ignore[attr-defined]
    return module


@pytest.fixture
def plugins(monkeypatch: pytest.MonkeyPatch) -> list[importlib.metadata.EntryPoint]:
    """Installs a fake distribution's ``tlm.rules`` entry points for the test."""
    monkeypatch.setitem(sys.modules, "tlm_test_rule_plugin", _plugin_module())
    eps = [
        importlib.metadata.EntryPoint("no_tbd", "tlm_test_rule_plugin:no_tbd", ENTRY_POINT_GROUP),
        importlib.metadata.EntryPoint(
            "even_family", "tlm_test_rule_plugin:even_family", ENTRY_POINT_GROUP
        ),
    ]
    real = importlib.metadata.entry_points

    def fake_entry_points(**kwargs: Any) -> Any:
        if kwargs.get("group") == ENTRY_POINT_GROUP:
            return importlib.metadata.EntryPoints(eps)
        return real(**kwargs)

    monkeypatch.setattr("tlm.rules._registry.entry_points", fake_entry_points)
    return eps


def test_entry_point_plugins_load_lazily(plugins: list[importlib.metadata.EntryPoint]) -> None:
    registry = default_registry()
    assert "non_empty_text" in registry  # answered by a built-in: no plug-in import needed
    assert not registry._plugins_loaded
    assert "no_tbd" in registry
    assert registry._plugins_loaded
    assert "no_tbd" in registry.names()
    assert [p.message for p in apply_rules(registry, ["no_tbd", "even_count"], {"count": 3})] == [
        "rule even_count: $.count is odd"
    ]
    # a registry without entry points never sees plug-ins
    assert "no_tbd" not in RuleRegistry()


def test_a_broken_plugin_is_a_configuration_error(
    plugins: list[importlib.metadata.EntryPoint],
) -> None:
    plugins.append(
        importlib.metadata.EntryPoint("broken", "tlm_test_rule_plugin:broken", ENTRY_POINT_GROUP)
    )
    with pytest.raises(ConfigurationError, match=r"'broken'.*neither a rule nor a RuleFamily"):
        default_registry().get("unknown_rule")
    plugins[-1] = importlib.metadata.EntryPoint(
        "missing", "tlm_no_such_module:rule", ENTRY_POINT_GROUP
    )
    with pytest.raises(ConfigurationError, match=r"'missing'.*failed to import"):
        default_registry().get("unknown_rule")


def test_public_names_resolve() -> None:
    import tlm.rules

    assert isinstance(tlm.rules.__all__, tuple)
    for name in tlm.rules.__all__:
        assert hasattr(tlm.rules, name), name
