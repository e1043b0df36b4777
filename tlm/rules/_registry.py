"""The rule protocol, the registry of named rules and :func:`apply_rules`."""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Protocol, TypeVar, overload

import attrs

from tlm.errors import ConfigurationError, Problem

__all__ = (
    "RuleFailure",
    "Rule",
    "RuleFamily",
    "RuleRegistry",
    "RuleSet",
    "ENTRY_POINT_GROUP",
    "apply_rules",
    "describe_value",
)

ENTRY_POINT_GROUP = "tlm.rules"
"""Entry-point group through which installed packages contribute rules."""


@attrs.frozen
class RuleFailure:
    """One way a value breaks a rule.

    ``path`` is a JSON path relative to the checked value (``$`` is the value itself,
    ``$.job_posting`` a property of it). ``message`` is a phrase that follows the path, e.g.
    ``"has 42 characters, fewer than 100"``. ``value`` is the offending value (or ``None``).
    """

    path: str
    message: str
    value: Any = None


class Rule(Protocol):
    """A named validation rule: a callable returning the ways ``value`` breaks it (empty if none).

    A rule that needs the value's JSON Schema (e.g. ``has_required_fields``) also accepts a keyword
    argument ``schema`` (``Mapping | None``); :func:`apply_rules` passes it only to rules whose
    signature has that parameter, so a plain ``def my_rule(value): ...`` is a valid rule.
    Rules must not raise on unexpected shapes of ``value``; they report a failure instead.
    """

    def __call__(self, value: Any, /) -> Sequence[RuleFailure]: ...


RuleT = TypeVar("RuleT", bound=Callable[..., Sequence[RuleFailure]])


@attrs.frozen
class RuleFamily:
    """A parametric family of rules, e.g. ``min_length_N``, resolved by a regular expression.

    ``pattern`` must match the whole rule name; its named groups are passed to ``factory`` as
    string keyword arguments, which returns the rule for that name.
    """

    template: str
    """How people write it, e.g. ``min_<field>_count_<N>``."""
    pattern: str
    factory: Callable[..., Rule]
    description: str = ""

    def match(self, name: str) -> re.Match[str] | None:
        """The match of ``name`` against this family, or ``None``."""
        return re.fullmatch(self.pattern, name)


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


@attrs.define
class RuleRegistry:
    """Maps rule names to rules: exact names first, then families (in registration order).

    Plug-in rules come from the ``tlm.rules`` entry-point group when ``load_entry_points`` is set;
    they are imported on the first lookup that the registered rules do not answer. An entry point's
    object is either a rule (registered under the entry point's name) or a :class:`RuleFamily`.
    A registry is plain mutable state: give each engine its own (see :meth:`copy`).
    """

    _rules: dict[str, Rule] = attrs.field(factory=dict, alias="_rules")
    _families: list[RuleFamily] = attrs.field(factory=list, alias="_families")
    _resolved: dict[str, Rule] = attrs.field(factory=dict, alias="_resolved")
    load_entry_points: bool = False
    _plugins_loaded: bool = attrs.field(default=False, alias="_plugins_loaded")

    @overload
    def register(
        self, name: str, rule: None = None, *, replace: bool = False
    ) -> Callable[[RuleT], RuleT]: ...

    @overload
    def register(self, name: str, rule: Rule, *, replace: bool = False) -> Rule: ...

    def register(
        self, name: str, rule: Rule | None = None, *, replace: bool = False
    ) -> Rule | Callable[[RuleT], RuleT]:
        """Register ``rule`` under ``name``; without ``rule``, return a decorator that does.

        Raises:
            ValueError: ``name`` is not an identifier, or is taken and ``replace`` is false.
        """
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise ValueError(f"rule name {name!r} must be an identifier ([A-Za-z_][A-Za-z0-9_]*)")

        def add(r: RuleT) -> RuleT:
            if not callable(r):
                raise TypeError(f"rule {name!r} must be callable, got {type(r).__name__}")
            if name in self._rules and not replace:
                raise ValueError(f"rule {name!r} is already registered")
            self._rules[name] = r
            self._resolved.pop(name, None)
            return r

        if rule is None:
            return add
        add(rule)
        return rule

    def register_family(
        self,
        template: str,
        pattern: str,
        factory: Callable[..., Rule],
        *,
        description: str = "",
    ) -> RuleFamily:
        """Register a parametric family; later lookups of matching names build rules with it."""
        re.compile(pattern)
        family = RuleFamily(template, pattern, factory, description)
        self._families.append(family)
        return family

    def get(self, name: str) -> Rule:
        """The rule called ``name``.

        Raises:
            KeyError: no rule or family answers to ``name``.
            ConfigurationError: a plug-in entry point failed to import.
        """
        rule = self._lookup(name)
        if rule is None and self.load_entry_points and not self._plugins_loaded:
            self._load_plugins()
            rule = self._lookup(name)
        if rule is None:
            raise KeyError(name)
        return rule

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        try:
            self.get(name)
        except KeyError:
            return False
        return True

    def names(self) -> tuple[str, ...]:
        """Sorted names of the rules registered by exact name (families: :meth:`families`)."""
        self._ensure_plugins()
        return tuple(sorted(self._rules))

    def families(self) -> tuple[RuleFamily, ...]:
        """The parametric families, in lookup order."""
        self._ensure_plugins()
        return tuple(self._families)

    def copy(self) -> RuleRegistry:
        """An independent registry with the same rules and families."""
        return RuleRegistry(
            dict(self._rules),
            list(self._families),
            dict(self._resolved),
            self.load_entry_points,
            self._plugins_loaded,
        )

    def _lookup(self, name: str) -> Rule | None:
        rule = self._rules.get(name) or self._resolved.get(name)
        if rule is not None:
            return rule
        for family in self._families:
            match = family.match(name)
            if match is not None:
                rule = family.factory(**match.groupdict())
                self._resolved[name] = rule
                return rule
        return None

    def _ensure_plugins(self) -> None:
        if self.load_entry_points and not self._plugins_loaded:
            self._load_plugins()

    def _load_plugins(self) -> None:
        self._plugins_loaded = True
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            self._add_plugin(ep)

    def _add_plugin(self, ep: EntryPoint) -> None:
        try:
            obj = ep.load()
        except Exception as exc:
            raise ConfigurationError(
                f"rule plug-in {ep.name!r} ({ep.value}) from entry-point group "
                f"{ENTRY_POINT_GROUP!r} failed to import: {type(exc).__name__}: {exc}"
            ) from exc
        if isinstance(obj, RuleFamily):
            self._families.append(obj)
        elif callable(obj):
            if ep.name not in self._rules:  # built-ins and code registrations win
                self._rules[ep.name] = obj
        else:
            raise ConfigurationError(
                f"rule plug-in {ep.name!r} ({ep.value}) is neither a rule nor a RuleFamily"
            )


def describe_value(value: Any, limit: int = 60) -> str:
    """A short, single-line rendering of ``value`` for messages (compact JSON, truncated)."""
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=repr)
    except (TypeError, ValueError):
        text = repr(value)
    text = text.replace("\n", "\\n")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _join_path(base: str, relative: str) -> str:
    if not relative.startswith("$"):
        relative = "$." + relative
    return base + relative[1:]


@attrs.frozen
class RuleSet:
    """Named rules looked up once, to apply to many values (an unknown name stays a problem)."""

    entries: tuple[tuple[str, Rule | None, bool], ...]
    """Per name: the rule (``None`` if unknown) and whether it takes a ``schema`` keyword."""

    @classmethod
    def resolve(cls, registry: RuleRegistry, names: Iterable[str]) -> RuleSet:
        """Look up each of ``names`` in ``registry``."""
        entries = []
        for name in names:
            try:
                rule: Rule | None = registry.get(name)
            except KeyError:
                rule = None
            entries.append((name, rule, rule is not None and _takes_schema(rule)))
        return cls(tuple(entries))

    def problems(
        self,
        value: Any,
        *,
        source: str = "",
        base_path: str = "$",
        schema: Mapping[str, Any] | None = None,
    ) -> list[Problem]:
        """Every problem ``value`` has under these rules (see :func:`apply_rules`)."""
        problems: list[Problem] = []
        for name, rule, takes_schema in self.entries:
            if rule is None:
                problems.append(Problem(source, base_path, f"unknown validation rule {name!r}"))
                continue
            try:
                if takes_schema:
                    failures = list(rule(value, schema=schema))  # type: ignore[call-arg]
                else:
                    failures = list(rule(value))
            except Exception as exc:
                problems.append(
                    Problem(source, base_path, f"rule {name} raised {type(exc).__name__}: {exc}")
                )
                continue
            for failure in failures:
                path = _join_path(base_path, failure.path)
                message = f"rule {name}: {path} {failure.message}"
                if failure.value is not None:
                    message += f" (value: {describe_value(failure.value)})"
                problems.append(Problem(source, path, message))
        return problems


def apply_rules(
    registry: RuleRegistry,
    names: Iterable[str],
    value: Any,
    *,
    source: str = "",
    base_path: str = "$",
    schema: Mapping[str, Any] | None = None,
) -> list[Problem]:
    """Check ``value`` against each named rule and return every problem found (empty if none).

    Each problem is located at ``base_path`` joined with the rule's relative path, and its message
    names the rule, the field and the offending value, e.g.
    ``rule min_length_100: $.job_posting has 42 characters, fewer than 100 (value: "Hi")``.
    ``schema`` (the value's JSON Schema) is passed to rules that accept a ``schema`` keyword.
    An unknown rule name, or a rule that raises, is reported as a problem rather than raised.
    To apply the same rules to many values, resolve them once with :meth:`RuleSet.resolve`.
    """
    return RuleSet.resolve(registry, names).problems(
        value, source=source, base_path=base_path, schema=schema
    )
