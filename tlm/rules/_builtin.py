"""The built-in validation rules and rule families.

Exact rules:

- ``non_empty_text``: every string anywhere in the value is non-blank (a string value: itself).
- ``has_required_fields``: the schema's ``required`` properties are present and not null, at every
  level the schema describes (needs the ``schema`` keyword; without it, top-level nulls fail).
- ``no_empty_arrays``: no array anywhere in the value is empty.
- ``non_empty_skill``: ``skill_name`` is a non-blank string (a string value: itself).
- ``non_negative_numbers``: no number anywhere in the value is negative.

Families (``N`` is a non-negative integer, ``<field>`` a top-level property):

- ``min_length_N`` / ``max_length_N``: the text fields have at least / at most N characters
  (counted after stripping surrounding whitespace). The text fields are the *required* string
  properties when the schema is known, otherwise every top-level string property; a string value
  is checked itself. ``min_<field>_length_N`` / ``max_<field>_length_N`` name one field instead.
- ``min_<field>_count_N`` / ``max_<field>_count_N``: array ``<field>`` has at least / at most N
  items; a missing field counts as 0 items.
- ``no_duplicate_<field>``: array ``<field>`` has no duplicates, comparing strings
  case-insensitively with whitespace collapsed (other items by their canonical JSON).
- ``non_empty_<field>``: ``<field>`` is present, not null, and not blank or empty.
- ``valid_email_<field>`` / ``valid_currency_<field>``: ``<field>`` (or each of its items) looks
  like an e-mail address / is an ISO 4217 code such as ``EUR``; absent or null passes.
- ``<a>_not_above_<b>``: number ``<a>`` is at most number ``<b>`` when both are present.

How ``<field>`` is resolved: the property named exactly ``<field>`` if there is one (in the schema's
``properties`` when the schema is known, else among the value's keys); otherwise the single property
whose name ends in ``_<field>``. So ``min_skills_count_3`` checks ``elementary_skills`` in the
skill-decomposition output, and ``no_duplicate_skills`` too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from tlm.rules._registry import Rule, RuleFailure, RuleRegistry

__all__ = ("register_builtins",)

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_CURRENCY = re.compile(r"[A-Z]{3}")


def _child(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    if _IDENT.fullmatch(key):
        return f"{path}.{key}"
    return f"{path}[{json.dumps(key, ensure_ascii=False)}]"


def _path(keys: tuple[str | int, ...]) -> str:
    path = "$"
    for key in keys:
        path = _child(path, key)
    return path


def _find(value: Any, predicate: Callable[[Any], bool]) -> list[tuple[str, Any]]:
    """Every (path, node) in ``value`` for which ``predicate`` holds, depth first.

    Paths are built only for the nodes found; an explicit stack keeps deep values safe.
    """
    if not _holds_anywhere(value, predicate):
        return []
    found: list[tuple[str, Any]] = []
    stack: list[tuple[tuple[str | int, ...], Any]] = [((), value)]
    while stack:
        keys, node = stack.pop()
        if predicate(node):
            found.append((_path(keys), node))
        if isinstance(node, dict | Mapping):
            stack.extend(reversed([((*keys, str(k)), v) for k, v in node.items()]))
        elif isinstance(node, list | tuple):
            stack.extend(reversed([((*keys, i), v) for i, v in enumerate(node)]))
    return found


_LEAF_TYPES = frozenset({str, int, float, bool, type(None)})


def _holds_anywhere(value: Any, predicate: Callable[[Any], bool]) -> bool:
    """Whether ``predicate`` holds for some node of ``value`` (what :func:`_find` walks, without
    building paths: most values pass, and exact builtin types skip the ABC checks)."""
    stack = [value]
    pop, extend = stack.pop, stack.extend
    while stack:
        node = pop()
        if predicate(node):
            return True
        kind = type(node)
        if kind is dict:
            extend(node.values())
        elif kind is list or kind is tuple:
            extend(node)
        elif kind in _LEAF_TYPES:
            continue
        elif isinstance(node, Mapping):
            extend(node.values())
        elif isinstance(node, list | tuple):
            extend(node)
    return False


def _is_mapping(value: Any) -> bool:
    """``isinstance(value, Mapping)``, without the ABC check for a plain dict or a leaf."""
    kind = type(value)
    if kind is dict:
        return True
    return kind not in _LEAF_TYPES and kind is not list and isinstance(value, Mapping)


def _constrains(schema: Any) -> bool:
    """Whether :func:`has_required_fields` has anything to check under ``schema`` (a schema
    with no ``required``, ``properties`` or ``items`` has nothing: its values are not walked)."""
    return _is_mapping(schema) and (
        "required" in schema or "properties" in schema or "items" in schema
    )


def _is_blank(node: Any) -> bool:
    return isinstance(node, str) and not node.strip()


def _is_empty_array(node: Any) -> bool:
    return isinstance(node, list | tuple) and not node


def _is_negative(node: Any) -> bool:
    return isinstance(node, int | float) and not isinstance(node, bool) and node < 0


def _properties(value: Any, schema: Mapping[str, Any] | None) -> list[str]:
    props = schema.get("properties") if isinstance(schema, Mapping) else None
    if isinstance(props, Mapping):
        return [str(k) for k in props]
    if isinstance(value, Mapping):
        return [str(k) for k in value]
    return []


def _resolve_field(field: str, value: Any, schema: Mapping[str, Any] | None) -> str | None:
    names = _properties(value, schema)
    if field in names:
        return field
    suffixed = [n for n in names if n.endswith("_" + field)]
    return suffixed[0] if len(suffixed) == 1 else None


def _no_field(field: str) -> RuleFailure:
    return RuleFailure("$", f"has no field {field!r} (nor a single field ending in '_{field}')")


def _not_object(value: Any) -> RuleFailure:
    return RuleFailure("$", f"is {_kind(value)}, expected an object", value)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__


# --- exact rules ---------------------------------------------------------------------------


def non_empty_text(value: Any) -> list[RuleFailure]:
    """Every string anywhere in the value is non-blank."""
    return [RuleFailure(path, "is blank", node) for path, node in _find(value, _is_blank)]


def has_required_fields(
    value: Any, *, schema: Mapping[str, Any] | None = None
) -> list[RuleFailure]:
    """The schema's required properties are present and non-null, at every described level."""
    if schema is None:
        if not isinstance(value, Mapping):
            return [_not_object(value)]
        return [RuleFailure(_child("$", str(k)), "is null") for k, v in value.items() if v is None]
    failures: list[RuleFailure] = []
    stack: list[tuple[tuple[str | int, ...], Any, Any]] = [((), value, schema)]
    while stack:
        keys, node, sub = stack.pop()
        if not _is_mapping(sub):
            continue
        if _is_mapping(node):
            required = sub.get("required", [])
            for name in required if isinstance(required, list) else []:
                if name not in node:
                    failures.append(RuleFailure(_path((*keys, name)), "is missing"))
                elif node[name] is None:
                    failures.append(RuleFailure(_path((*keys, name)), "is null"))
            props = sub.get("properties", {})
            if _is_mapping(props):
                for name, child_schema in props.items():
                    child = node.get(name)
                    if child is not None and _constrains(child_schema):
                        stack.append(((*keys, name), child, child_schema))
        elif isinstance(node, list):
            items = sub.get("items")
            if _constrains(items):
                for i, item in enumerate(node):
                    stack.append(((*keys, i), item, items))
    if failures:
        failures.sort(key=lambda f: f.path)
    return failures


def no_empty_arrays(value: Any) -> list[RuleFailure]:
    """No array anywhere in the value is empty."""
    return [RuleFailure(path, "is an empty array") for path, _ in _find(value, _is_empty_array)]


def non_empty_skill(value: Any) -> list[RuleFailure]:
    """``skill_name`` (or a string value itself) is a non-blank string."""
    if isinstance(value, str):
        return [] if value.strip() else [RuleFailure("$", "is blank", value)]
    if not isinstance(value, Mapping):
        return [_not_object(value)]
    skill = value.get("skill_name")
    if skill is None:
        return [RuleFailure("$.skill_name", "is missing")]
    if not isinstance(skill, str):
        return [RuleFailure("$.skill_name", f"is {_kind(skill)}, expected a string", skill)]
    return [] if skill.strip() else [RuleFailure("$.skill_name", "is blank", skill)]


def non_negative_numbers(value: Any) -> list[RuleFailure]:
    """No number anywhere in the value is negative."""
    return [RuleFailure(path, "is negative", node) for path, node in _find(value, _is_negative)]


# --- families ------------------------------------------------------------------------------


def _text_targets(value: Any, schema: Mapping[str, Any] | None) -> list[tuple[str, str]] | None:
    if isinstance(value, str):
        return [("$", value)]
    if not isinstance(value, Mapping):
        return None
    strings = [(str(k), v) for k, v in value.items() if isinstance(v, str)]
    required = schema.get("required") if isinstance(schema, Mapping) else None
    if isinstance(required, list):
        chosen = [(k, v) for k, v in strings if k in required]
        if chosen:
            strings = chosen
    return [(_child("$", k), v) for k, v in strings]


def _length_rule(n: int, *, at_least: bool, field: str | None = None) -> Rule:
    def rule(value: Any, *, schema: Mapping[str, Any] | None = None) -> list[RuleFailure]:
        if field is not None:
            if not isinstance(value, Mapping):
                return [_not_object(value)]
            name = _resolve_field(field, value, schema)
            if name is None:
                return [_no_field(field)]
            text = value.get(name)
            if text is None:
                return []
            if not isinstance(text, str):
                return [RuleFailure(_child("$", name), f"is {_kind(text)}, expected text", text)]
            targets = [(_child("$", name), text)]
        else:
            found = _text_targets(value, schema)
            if found is None:
                return [_not_object(value)]
            if not found and at_least:
                return [RuleFailure("$", "has no text field to check")]
            targets = found
        failures = []
        for path, text in targets:
            size = len(text.strip())
            if at_least and size < n:
                failures.append(RuleFailure(path, f"has {size} characters, fewer than {n}", text))
            elif not at_least and size > n:
                failures.append(RuleFailure(path, f"has {size} characters, more than {n}", text))
        return failures

    return rule


def _field_items(
    field: str, value: Any, schema: Mapping[str, Any] | None
) -> tuple[str, Sequence[Any] | None] | RuleFailure:
    """The resolved path and items of array ``field`` (``None`` if absent), or a failure."""
    if not isinstance(value, Mapping):
        return _not_object(value)
    name = _resolve_field(field, value, schema)
    if name is None:
        return _no_field(field)
    items = value.get(name)
    path = _child("$", name)
    if items is None:
        return path, None
    if not isinstance(items, list | tuple):
        return RuleFailure(path, f"is {_kind(items)}, expected an array", items)
    return path, items


def _count_rule(field: str, n: int, *, at_least: bool) -> Rule:
    def rule(value: Any, *, schema: Mapping[str, Any] | None = None) -> list[RuleFailure]:
        found = _field_items(field, value, schema)
        if isinstance(found, RuleFailure):
            return [found]
        path, items = found
        count = len(items) if items is not None else 0
        if at_least and count < n:
            what = "is missing" if items is None else f"has {count} items"
            return [RuleFailure(path, f"{what}, needs at least {n}", items)]
        if not at_least and count > n:
            return [RuleFailure(path, f"has {count} items, more than {n}", items)]
        return []

    return rule


def _normalise(item: Any) -> str:
    if isinstance(item, str):
        return " ".join(item.split()).casefold()
    return json.dumps(item, sort_keys=True, separators=(",", ":"), default=repr)


def _no_duplicate_rule(field: str) -> Rule:
    def rule(value: Any, *, schema: Mapping[str, Any] | None = None) -> list[RuleFailure]:
        found = _field_items(field, value, schema)
        if isinstance(found, RuleFailure):
            return [found]
        path, items = found
        seen: dict[str, int] = {}
        failures = []
        for i, item in enumerate(items or ()):
            key = _normalise(item)
            if key in seen:
                failures.append(
                    RuleFailure(_child(path, i), f"duplicates {_child(path, seen[key])}", item)
                )
            else:
                seen[key] = i
        return failures

    return rule


def _non_empty_field_rule(field: str) -> Rule:
    def rule(value: Any, *, schema: Mapping[str, Any] | None = None) -> list[RuleFailure]:
        if not isinstance(value, Mapping):
            return [_not_object(value)]
        name = _resolve_field(field, value, schema)
        if name is None:
            return [_no_field(field)]
        path = _child("$", name)
        item = value.get(name)
        if item is None:
            return [RuleFailure(path, "is missing" if name not in value else "is null")]
        if isinstance(item, str) and not item.strip():
            return [RuleFailure(path, "is blank", item)]
        if isinstance(item, list | tuple | Mapping) and not item:
            return [RuleFailure(path, "is empty", item)]
        return []

    return rule


def _pattern_rule(field: str, pattern: re.Pattern[str], what: str) -> Rule:
    def rule(value: Any, *, schema: Mapping[str, Any] | None = None) -> list[RuleFailure]:
        if not isinstance(value, Mapping):
            return [_not_object(value)]
        name = _resolve_field(field, value, schema)
        if name is None:
            return [_no_field(field)]
        path = _child("$", name)
        item = value.get(name)
        if item is None:
            return []
        entries = (
            [(_child(path, i), v) for i, v in enumerate(item)]
            if isinstance(item, list | tuple)
            else [(path, item)]
        )
        return [
            RuleFailure(p, f"is not {what}", v)
            for p, v in entries
            if not (isinstance(v, str) and pattern.fullmatch(v.strip()))
        ]

    return rule


def _not_above_rule(a: str, b: str) -> Rule:
    def rule(value: Any, *, schema: Mapping[str, Any] | None = None) -> list[RuleFailure]:
        if not isinstance(value, Mapping):
            return [_not_object(value)]
        name_a, name_b = _resolve_field(a, value, schema), _resolve_field(b, value, schema)
        if name_a is None:
            return [_no_field(a)]
        if name_b is None:
            return [_no_field(b)]
        low, high = value.get(name_a), value.get(name_b)
        numbers = all(isinstance(x, int | float) and not isinstance(x, bool) for x in (low, high))
        if numbers and low > high:  # type: ignore[operator]
            message = f"is above {_child('$', name_b)} ({high})"
            return [RuleFailure(_child("$", name_a), message, low)]
        return []

    return rule


def register_builtins(registry: RuleRegistry) -> RuleRegistry:
    """Add the built-in rules and families to ``registry`` and return it."""
    registry.register("non_empty_text", non_empty_text)
    registry.register("has_required_fields", has_required_fields)
    registry.register("no_empty_arrays", no_empty_arrays)
    registry.register("non_empty_skill", non_empty_skill)
    registry.register("non_negative_numbers", non_negative_numbers)
    fam = registry.register_family
    fam(
        "min_length_<N>",
        r"min_length_(?P<n>\d+)",
        lambda n: _length_rule(int(n), at_least=True),
        description="the text fields have at least N characters",
    )
    fam(
        "max_length_<N>",
        r"max_length_(?P<n>\d+)",
        lambda n: _length_rule(int(n), at_least=False),
        description="the text fields have at most N characters",
    )
    fam(
        "min_<field>_length_<N>",
        r"min_(?P<field>[A-Za-z]\w*?)_length_(?P<n>\d+)",
        lambda field, n: _length_rule(int(n), at_least=True, field=field),
        description="text field <field> has at least N characters",
    )
    fam(
        "max_<field>_length_<N>",
        r"max_(?P<field>[A-Za-z]\w*?)_length_(?P<n>\d+)",
        lambda field, n: _length_rule(int(n), at_least=False, field=field),
        description="text field <field> has at most N characters",
    )
    fam(
        "min_<field>_count_<N>",
        r"min_(?P<field>[A-Za-z]\w*?)_count_(?P<n>\d+)",
        lambda field, n: _count_rule(field, int(n), at_least=True),
        description="array <field> has at least N items",
    )
    fam(
        "max_<field>_count_<N>",
        r"max_(?P<field>[A-Za-z]\w*?)_count_(?P<n>\d+)",
        lambda field, n: _count_rule(field, int(n), at_least=False),
        description="array <field> has at most N items",
    )
    fam(
        "no_duplicate_<field>",
        r"no_duplicate_(?P<field>[A-Za-z]\w*)",
        _no_duplicate_rule,
        description="array <field> has no duplicates (case- and whitespace-insensitive)",
    )
    fam(
        "non_empty_<field>",
        r"non_empty_(?P<field>[A-Za-z]\w*)",
        _non_empty_field_rule,
        description="<field> is present and not null, blank or empty",
    )
    fam(
        "valid_email_<field>",
        r"valid_email_(?P<field>[A-Za-z]\w*)",
        lambda field: _pattern_rule(field, _EMAIL, "an e-mail address"),
        description="<field> (or each item) is an e-mail address",
    )
    fam(
        "valid_currency_<field>",
        r"valid_currency_(?P<field>[A-Za-z]\w*)",
        lambda field: _pattern_rule(field, _CURRENCY, "an ISO 4217 currency code"),
        description="<field> (or each item) is an ISO 4217 currency code",
    )
    fam(
        "<a>_not_above_<b>",
        r"(?P<a>[A-Za-z]\w*?)_not_above_(?P<b>[A-Za-z]\w*)",
        _not_above_rule,
        description="number <a> is at most number <b> when both are present",
    )
    return registry
