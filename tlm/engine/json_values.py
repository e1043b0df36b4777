"""Whether a value is JSON that every part of TLM can carry: checked once, at the boundary.

An execution's input is validated, rendered, hashed for the cache, serialised into spans and
written to SQLite as UTF-8 JSON. A value that one of them cannot handle must be refused up front
with a located error, never fail half-way as a raw ``RecursionError``, ``ValueError`` or
``UnicodeEncodeError``. The rules:

- only ``dict`` (string keys), ``list``/``tuple``, ``str``, ``int``, ``float``, ``bool``, ``None``;
- at most :data:`MAX_DEPTH` nested arrays and objects (deep enough for any real document, shallow
  enough for every recursive consumer), hence no circular references;
- finite floats only (JSON has no NaN or Infinity);
- strings encodable as UTF-8 (no lone surrogates such as ``"\\ud800"``);
- integers Python can print (at most ``sys.get_int_max_str_digits()`` digits, 4300 by default).

:func:`json_value_problems` is cheap for good values (one pass over the value, no copies, no
serialisation) and only on failure walks again to locate every problem. :func:`json_safe` returns
a representable stand-in for a bad value, so the failed execution can still be recorded.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Iterable, Iterator
from typing import Any

from tlm.errors import Problem

__all__ = ("MAX_DEPTH", "json_value_problems", "json_safe", "short_json_path")

MAX_DEPTH = 100
"""Most arrays and objects a value may nest."""

_MAX_PROBLEMS = 10
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_INT_DIGITS = sys.get_int_max_str_digits()
_INT_BOUND = 10**_INT_DIGITS if _INT_DIGITS else None


def json_value_problems(value: Any, *, source: str = "input") -> list[Problem]:
    """Every reason ``value`` is not portable JSON (at most 10), each with its JSON path."""
    try:
        if _fine(value, 0):
            return []
    except RecursionError:  # a subclass with a recursive __eq__ or the like: locate it below
        pass
    return list(_locate(value, source))


def _fine(value: Any, depth: int) -> bool:
    """The fast check: exact builtin types only; anything else goes to :func:`_locate`."""
    kind = type(value)
    if kind is str:
        return value.isascii() or _SURROGATE.search(value) is None
    if kind is dict:
        if depth >= MAX_DEPTH:
            return False
        depth += 1
        for key, item in value.items():
            if type(key) is not str or not (key.isascii() or _SURROGATE.search(key) is None):
                return False
            if not _fine(item, depth):
                return False
        return True
    if kind is list or kind is tuple:
        if depth >= MAX_DEPTH:
            return False
        depth += 1
        return all(_fine(item, depth) for item in value)
    if kind is int:
        return _INT_BOUND is None or -_INT_BOUND < value < _INT_BOUND
    if kind is float:
        return math.isfinite(value)
    return value is None or kind is bool


def _locate(value: Any, source: str) -> Iterator[Problem]:
    """The slow walk: every problem with its path, stopping after :data:`_MAX_PROBLEMS`."""
    found = 0
    # (value, path parts, ids of the containers above it)
    stack: list[tuple[Any, tuple[str | int, ...], frozenset[int]]] = [(value, (), frozenset())]
    while stack and found < _MAX_PROBLEMS:
        item, path, above = stack.pop()
        message, children = _inspect(item, len(path), above)
        if message is not None:
            found += 1
            yield Problem(source, short_json_path(path), message)
        if children:
            inner = above | {id(item)}
            stack.extend((child, (*path, key), inner) for key, child in reversed(children))


def _inspect(
    item: Any, depth: int, above: frozenset[int]
) -> tuple[str | None, list[tuple[str | int, Any]]]:
    """What is wrong with ``item`` itself (or ``None``), and its children to look at next."""
    if isinstance(item, str):
        return _string_problem(item, "string"), []
    if isinstance(item, bool) or item is None:
        return None, []
    if isinstance(item, int):
        if _INT_BOUND is not None and not -_INT_BOUND < item < _INT_BOUND:
            digits = math.floor(math.log10(abs(item))) + 1
            return (
                f"an integer of about {digits} digits is longer than the {_INT_DIGITS} "
                "digits allowed",
                [],
            )
        return None, []
    if isinstance(item, float):
        if math.isfinite(item):
            return None, []
        return f"{item!r} is not a JSON number (JSON has no NaN or Infinity)", []
    if isinstance(item, dict | list | tuple):
        if id(item) in above:
            return "circular reference: this value contains itself", []
        if depth >= MAX_DEPTH:
            return f"nested deeper than {MAX_DEPTH} arrays/objects", []
        if isinstance(item, dict):
            return _dict_problem(item), [(_key_text(k), v) for k, v in item.items()]
        return None, list(enumerate(item))
    what = _a(type(item).__name__)
    return f"{what} is not JSON (use a dict, list, str, number, bool or None)", []


def _a(noun: str) -> str:
    return f"an {noun}" if noun[:1].lower() in "aeiou" else f"a {noun}"


def _dict_problem(item: dict[Any, Any]) -> str | None:
    for key in item:
        if not isinstance(key, str):
            return f"object key {key!r} is {_a(type(key).__name__)}; JSON object keys are strings"
        problem = _string_problem(key, "object key")
        if problem is not None:
            return problem
    return None


def _string_problem(text: str, what: str) -> str | None:
    match = _SURROGATE.search(text)
    if match is None:
        return None
    return (
        f"{what} has a lone surrogate {match.group()!r} at character {match.start()}, "
        "which UTF-8 cannot encode"
    )


def _key_text(key: Any) -> str:
    text = key if isinstance(key, str) else repr(key)
    return _SURROGATE.sub(lambda m: m.group().encode("utf-8", "backslashreplace").decode(), text)


def short_json_path(parts: Iterable[str | int], *, head: int = 4, tail: int = 3) -> str:
    """``$.a.b[0]``; a path longer than ``head + tail`` parts keeps its ends around a count."""
    parts = list(parts)
    if len(parts) > head + tail + 1:
        elided = len(parts) - head - tail
        return f"{_render(parts[:head])}…({elided} more)…{_render(parts[-tail:], base='')}"
    return _render(parts)


def _render(parts: Iterable[str | int], base: str = "$") -> str:
    out = [base]
    for part in parts:
        if isinstance(part, int):
            out.append(f"[{part}]")
        elif _IDENTIFIER.match(part):
            out.append(f".{part}")
        else:
            out.append("[" + _quote(part) + "]")
    return "".join(out)


def _quote(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped[:60]}…"' if len(escaped) > 60 else f'"{escaped}"'


def json_safe(value: Any) -> Any:
    """A representable stand-in for ``value``: what cannot be JSON is replaced by a marker.

    Lone surrogates become ``\\udXXX`` escapes, non-finite floats and over-long integers their
    text, non-string keys their ``repr``, other objects ``"[<type> is not JSON]"``, and whatever
    lies deeper than :data:`MAX_DEPTH` or loops back on itself a marker saying so.
    """
    return _safe(value, 0, frozenset())


def _safe(item: Any, depth: int, above: frozenset[int]) -> Any:
    if isinstance(item, str):
        return _key_text(item)
    if isinstance(item, bool) or item is None:
        return item
    if isinstance(item, int):
        if _INT_BOUND is not None and not -_INT_BOUND < item < _INT_BOUND:
            return "[integer too long]"
        return int(item)
    if isinstance(item, float):
        return float(item) if math.isfinite(item) else repr(item)
    if isinstance(item, dict | list | tuple):
        if id(item) in above:
            return "[circular reference]"
        if depth >= MAX_DEPTH:
            return f"[nested deeper than {MAX_DEPTH}]"
        inner = above | {id(item)}
        if isinstance(item, dict):
            return {_key_text(k): _safe(v, depth + 1, inner) for k, v in item.items()}
        return [_safe(v, depth + 1, inner) for v in item]
    return f"[{type(item).__name__} is not JSON]"
