"""Prompt templates: strict ``{{variable}}`` rendering and the choice of variant.

Placeholders are ``{{name}}`` (spaces inside the braces allowed, ``name`` an identifier). Rendering
is one pass: text substituted for a placeholder is never scanned again, so an input containing
``{{job_posting}}`` stays literal. Strings are inserted as they are, other values as compact JSON.

A variant's ``usage_conditions`` is ``{"default": true}`` or ``{"when": CONDITION}``. A condition
is a small, safe expression (parsed here; nothing is ever evaluated as Python)::

    context_provided                     input.context is present and non-blank
    structured_output_required           options.structured_output is truthy
    exists(input.context)                present and not null
    len(input.job_posting) > 500         len of a string, array or object (0 when absent)
    input.seniority == "senior" or not options.fast
    "python" in input.skills             membership in an array, substring of a string, key
    (a or b) and not c                   and / or / not, parentheses

References are ``input.<field>`` and ``options.<name>`` (nested: ``input.a.b``); an absent
reference is ``null``. Literals: strings in single or double quotes, numbers, ``true``,
``false``, ``null``. Comparisons ``== != < <= > >=`` between values that cannot be ordered are
false. Evaluation never raises.

:func:`choose_variant` returns ``options["prompt_variant"]`` when given, else the first non-default
variant (in definition order) whose condition holds, else the default variant.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from tlm.errors import PromptError

if TYPE_CHECKING:  # the prompt language sits below the definitions that use it
    from tlm.definition.model import PromptVariant, TaskDefinition

__all__ = (
    "template_variables",
    "render",
    "render_variant",
    "Condition",
    "parse_condition",
    "condition_of",
    "choose_variant",
    "NAMED_CONDITIONS",
)

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def template_variables(text: str) -> set[str]:
    """The names of the ``{{placeholders}}`` in ``text``."""
    return set(_PLACEHOLDER.findall(text))


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def render(
    text: str,
    variables: Mapping[str, Any],
    *,
    declared: Iterable[str] | None = None,
) -> str:
    """Substitute every ``{{name}}`` in ``text`` with ``variables[name]``, in one pass.

    ``variables`` may hold more names than the template uses (e.g. the whole task input).

    Raises:
        PromptError: a placeholder has no value (absent or ``None``), or ``declared`` is given
            and the text uses a placeholder that is not declared. Every offending name is listed.
    """
    used = template_variables(text)
    problems = []
    if declared is not None:
        unexpected = sorted(used - set(declared))
        if unexpected:
            problems.append(f"unexpected template variable(s) {', '.join(unexpected)}")
    missing = sorted(name for name in used if variables.get(name) is None)
    if missing:
        problems.append(f"missing value for template variable(s) {', '.join(missing)}")
    if problems:
        raise PromptError("; ".join(problems))
    return _PLACEHOLDER.sub(lambda m: _as_text(variables[m.group(1)]), text)


def render_variant(variant: PromptVariant, variables: Mapping[str, Any]) -> str:
    """Render ``variant.text`` with its declared ``template_variables``; errors name the variant."""
    try:
        return render(variant.text, variables, declared=variant.template_variables)
    except PromptError as exc:
        raise PromptError(f"prompt variant {variant.id!r}: {exc}") from None


# --- conditions ----------------------------------------------------------------------------

_MAX_CONDITION_LENGTH = 2_000
_MAX_DEPTH = 32

Env = tuple[Mapping[str, Any], Mapping[str, Any]]
Evaluator = Callable[[Env], Any]


def _context_provided(env: Env) -> bool:
    context = env[0].get("context")
    if isinstance(context, str):
        return bool(context.strip())
    return context is not None and context != [] and context != {}


def _structured_output_required(env: Env) -> bool:
    return bool(env[1].get("structured_output"))


NAMED_CONDITIONS: Mapping[str, Callable[[Env], bool]] = {
    "context_provided": _context_provided,
    "structured_output_required": _structured_output_required,
}
"""Conditions usable by bare name: ``{"when": "context_provided"}``."""


@attrs.frozen
class Condition:
    """A parsed usage condition; call :meth:`holds` to evaluate it (never raises)."""

    source: str
    _evaluate: Evaluator = attrs.field(alias="evaluate", repr=False, eq=False)

    def holds(self, input: Mapping[str, Any], options: Mapping[str, Any] | None = None) -> bool:
        """Whether the condition is true for this input and these execution options."""
        try:
            return _truthy(self._evaluate((input, options or {})))
        except (TypeError, ValueError, AttributeError, KeyError, RecursionError):
            return False


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return bool(value.strip())
    return bool(value)


_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<num>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
  | (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<op>==|!=|<=|>=|<|>|\(|\)|\.|,)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
    """,
    re.VERBOSE,
)

_KEYWORDS = {"and", "or", "not", "in", "true", "false", "null", "True", "False", "None"}


@attrs.frozen
class _Tok:
    kind: str
    text: str
    pos: int


def _tokenize(expr: str) -> list[_Tok]:
    tokens = []
    pos = 0
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if m is None:
            raise ValueError(
                f"unexpected character {expr[pos]!r} at position {pos} in condition {expr!r}"
            )
        kind = m.lastgroup or ""
        if kind != "ws":
            tokens.append(_Tok(kind, m.group(), pos))
        pos = m.end()
    tokens.append(_Tok("end", "", len(expr)))
    return tokens


def _unquote(text: str) -> str:
    body = text[1:-1]
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), body)


def _compare(op: str, left: Any, right: Any) -> bool:
    if op == "==":
        return bool(left == right)
    if op == "!=":
        return bool(left != right)
    numeric = all(isinstance(x, int | float) and not isinstance(x, bool) for x in (left, right))
    if not numeric and not (isinstance(left, str) and isinstance(right, str)):
        return False
    if op == "<":
        return bool(left < right)
    if op == "<=":
        return bool(left <= right)
    if op == ">":
        return bool(left > right)
    return bool(left >= right)


def _contains(item: Any, container: Any) -> bool:
    if isinstance(container, str):
        return isinstance(item, str) and item in container
    if isinstance(container, list | tuple):
        return item in container
    if isinstance(container, Mapping):
        return isinstance(item, str) and item in container
    return False


def _length(value: Any) -> int:
    if isinstance(value, str | list | tuple | Mapping):
        return len(value)
    return 0


class _Parser:
    """Recursive descent over the token list; builds closures over ``(input, options)``."""

    def __init__(self, expr: str) -> None:
        self.expr = expr
        self.tokens = _tokenize(expr)
        self.i = 0
        self.depth = 0

    @property
    def tok(self) -> _Tok:
        return self.tokens[self.i]

    def error(self, message: str, tok: _Tok | None = None) -> ValueError:
        at = tok or self.tok
        where = "at end of condition" if at.kind == "end" else f"at position {at.pos}"
        return ValueError(f"{message} {where} in condition {self.expr!r}")

    def accept(self, kind: str, text: str | None = None) -> _Tok | None:
        tok = self.tok
        if tok.kind == kind and (text is None or tok.text == text):
            self.i += 1
            return tok
        return None

    def expect(self, kind: str, text: str) -> _Tok:
        tok = self.accept(kind, text)
        if tok is None:
            found = f"{self.tok.text!r}" if self.tok.kind != "end" else "nothing"
            raise self.error(f"expected {text!r}, found {found}")
        return tok

    def parse(self) -> Evaluator:
        if not self.expr.strip():
            raise ValueError("empty condition")
        node = self.or_expr()
        if self.tok.kind != "end":
            raise self.error(f"unexpected {self.tok.text!r}")
        return node

    def or_expr(self) -> Evaluator:
        terms = [self.and_expr()]
        while self.accept("name", "or"):
            terms.append(self.and_expr())
        return terms[0] if len(terms) == 1 else _any(tuple(terms))

    def and_expr(self) -> Evaluator:
        terms = [self.not_expr()]
        while self.accept("name", "and"):
            terms.append(self.not_expr())
        return terms[0] if len(terms) == 1 else _all(tuple(terms))

    def not_expr(self) -> Evaluator:
        if self.accept("name", "not"):
            self.enter()
            inner = self.not_expr()
            self.depth -= 1
            return lambda env: not _truthy(inner(env))
        return self.comparison()

    def comparison(self) -> Evaluator:
        left = self.operand()
        tok = self.tok
        if tok.kind == "op" and tok.text in ("==", "!=", "<", "<=", ">", ">="):
            self.i += 1
            right = self.operand()
            op = tok.text
            return lambda env: _compare(op, left(env), right(env))
        if self.accept("name", "in"):
            right = self.operand()
            return lambda env: _contains(left(env), right(env))
        if tok.kind == "name" and tok.text == "not" and self.tokens[self.i + 1].text == "in":
            self.i += 2
            right = self.operand()
            return lambda env: not _contains(left(env), right(env))
        return left

    def enter(self) -> None:
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            raise self.error(f"condition nested deeper than {_MAX_DEPTH} levels")

    def operand(self) -> Evaluator:
        tok = self.tok
        if self.accept("op", "("):
            self.enter()
            node = self.or_expr()
            self.expect("op", ")")
            self.depth -= 1
            return node
        if tok.kind == "num":
            self.i += 1
            number = float(tok.text) if any(c in tok.text for c in ".eE") else int(tok.text)
            return lambda env: number
        if tok.kind == "str":
            self.i += 1
            text = _unquote(tok.text)
            return lambda env: text
        if tok.kind != "name":
            found = repr(tok.text) if tok.kind != "end" else "nothing"
            raise self.error(f"expected a value, found {found}")
        self.i += 1
        name = tok.text
        if name in ("true", "True"):
            return lambda env: True
        if name in ("false", "False"):
            return lambda env: False
        if name in ("null", "None"):
            return lambda env: None
        if name in ("input", "options"):
            return self.reference(0 if name == "input" else 1)
        if name in ("exists", "len"):
            self.expect("op", "(")
            self.enter()
            arg = self.or_expr()
            self.expect("op", ")")
            self.depth -= 1
            if name == "exists":
                return lambda env: arg(env) is not None
            return lambda env: _length(arg(env))
        if name in NAMED_CONDITIONS:
            return NAMED_CONDITIONS[name]
        if name in _KEYWORDS:
            raise self.error(f"expected a value, found {name!r}", tok)
        known = ", ".join(["input.<field>", "options.<name>", "exists", "len", *NAMED_CONDITIONS])
        raise self.error(f"unknown name {name!r} (use {known})", tok)

    def reference(self, root: int) -> Evaluator:
        keys: list[str] = []
        while self.accept("op", "."):
            tok = self.accept("name")
            if tok is None:
                raise self.error("expected a field name after '.'")
            keys.append(tok.text)
        if not keys:
            raise self.error("expected '.<field>' after 'input' or 'options'")
        path = tuple(keys)

        def lookup(env: Env) -> Any:
            node: Any = env[root]
            for key in path:
                if not isinstance(node, Mapping):
                    return None
                node = node.get(key)
            return node

        return lookup


def _any(terms: tuple[Evaluator, ...]) -> Evaluator:
    return lambda env: any(_truthy(term(env)) for term in terms)


def _all(terms: tuple[Evaluator, ...]) -> Evaluator:
    return lambda env: all(_truthy(term(env)) for term in terms)


def parse_condition(expr: str) -> Condition:
    """Parse a usage condition (see the module docstring for the language).

    Raises:
        ValueError: the expression is not a string, is empty, too long, too deeply nested, or
            malformed; the message says what was expected and at which position.
    """
    if not isinstance(expr, str):
        raise ValueError(f"a condition must be a string, got {type(expr).__name__}")
    if len(expr) > _MAX_CONDITION_LENGTH:
        raise ValueError(f"condition longer than {_MAX_CONDITION_LENGTH} characters")
    return _parse_cached(expr)


@functools.lru_cache(maxsize=512)
def _parse_cached(expr: str) -> Condition:
    return Condition(expr, _Parser(expr).parse())


def condition_of(usage_conditions: Mapping[str, Any]) -> Condition | None:
    """The condition of a variant's ``usage_conditions``; ``None`` for the default variant.

    Raises:
        ValueError: the mapping is neither ``{"default": true}`` nor ``{"when": "<condition>"}``,
            or the condition does not parse.
    """
    if usage_conditions.get("default") is True:
        return None
    unknown = sorted(set(usage_conditions) - {"default", "when"})
    if unknown:
        raise ValueError(f"unknown usage condition key(s) {', '.join(unknown)} (use default, when)")
    when = usage_conditions.get("when")
    if not isinstance(when, str):
        raise ValueError('usage_conditions needs {"default": true} or {"when": "<condition>"}')
    return parse_condition(when)


def choose_variant(
    task: TaskDefinition,
    input: Mapping[str, Any],
    options: Mapping[str, Any] | None = None,
) -> PromptVariant:
    """The prompt variant to use for this input and these execution options.

    Raises:
        PromptError: ``options["prompt_variant"]`` names no variant of the task, or a variant's
            condition does not parse (the loader normally rejects that earlier).
    """
    opts = options or {}
    forced = opts.get("prompt_variant")
    if forced is not None:
        try:
            return task.prompt(str(forced))
        except KeyError:
            ids = ", ".join(p.id for p in task.prompts)
            raise PromptError(
                f"task {task.id!r} has no prompt variant {forced!r} (variants: {ids})"
            ) from None
    for variant in task.prompts:
        if variant.is_default:
            continue
        try:
            condition = condition_of(variant.usage_conditions)
        except ValueError as exc:
            raise PromptError(f"prompt variant {variant.id!r} of task {task.id!r}: {exc}") from None
        if condition is not None and condition.holds(input, opts):
            return variant
    return task.default_prompt
