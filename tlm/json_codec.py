"""Fast JSON for the hot path: orjson where it gives the same answer, the standard library else.

:func:`loads` returns exactly what :func:`json.loads` returns and raises exactly what it raises:
whatever orjson refuses (lone surrogates, ``NaN`` literals, other encodings than UTF-8, invalid
JSON) is parsed again by :mod:`json`, and so is, before orjson sees it, text where orjson's answer
could differ: a run of 19 or more digits (an integer past 64 bits, which some orjson versions
turn into a float) or more than :data:`_MAX_FAST_BRACKETS` brackets (deep nesting, which
:mod:`json` refuses with ``RecursionError``).
:func:`dumps_bytes` is for wire bodies: compact UTF-8 JSON from orjson, or :func:`json.dumps`'s
ASCII text for what orjson cannot encode (lone surrogates, non-string keys, big integers).
:func:`compact_text` is :func:`json.dumps`'s compact, non-ASCII text (``ensure_ascii=False``,
``separators=(",", ":")``, ``default=str``) of a JSON value, by orjson.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

__all__ = ("loads", "dumps_bytes", "compact_text")

_orjson_loads = orjson.loads
_orjson_dumps = orjson.dumps
_Refused = orjson.JSONDecodeError
_NotEncodable = orjson.JSONEncodeError
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
_NINETEEN_DIGITS = b"0" * 19
_MAX_FAST_BRACKETS = 256
_PLAIN_ONLY = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
_compact = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str).encode


def loads(text: str | bytes) -> Any:
    """``json.loads(text)``, about four times faster for what orjson reads the same way."""
    if isinstance(text, str):
        try:
            raw = text.encode()
        except UnicodeEncodeError:  # a lone surrogate: orjson refuses it anyway
            return json.loads(text)
    else:
        raw = text
    # bytes.find, not ``in``: ``in`` first tries its operand as an integer and fails through
    # a formatted TypeError (a few thousand instructions) before it searches
    unsure = (
        raw.translate(_DIGITS_AS_ZERO).find(_NINETEEN_DIGITS) >= 0
        or raw.count(b"[") + raw.count(b"{") > _MAX_FAST_BRACKETS
    )
    if not unsure:
        try:
            return _orjson_loads(raw)
        except _Refused:
            pass
    return json.loads(text)


def dumps_bytes(value: Any) -> bytes:
    """``value`` as a JSON request body (UTF-8 bytes; a float ``NaN`` or infinity, which the
    standard library would write as the invalid JSON ``NaN``, is written as ``null``)."""
    try:
        return _orjson_dumps(value)
    except _NotEncodable:
        return json.dumps(value).encode("ascii")


def _not_plain(value: Any) -> Any:
    raise TypeError


def compact_text(value: Any) -> str:
    """``json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)``, several
    times faster for JSON values (a checked input, a parsed reply, chat messages).

    The text parses to the same value; only a float's exponent may be written shorter (``1e-7``
    for ``1e-07``) and an ``Enum`` member (which no JSON value holds) as its value. What orjson
    would write differently is left to the standard library: values it does not know (they go
    to ``default``), ints past 64 bits, lone surrogates, non-string keys, and NaN or infinity
    (orjson writes ``null`` where :mod:`json` writes ``NaN``: a text with a ``null`` is kept
    only when the value holds no such float). Raises what :mod:`json` raises (a circular value,
    one nested too deep).
    """
    try:
        raw = _orjson_dumps(value, default=_not_plain, option=_PLAIN_ONLY)
    except _NotEncodable:
        return _compact(value)
    if raw.find(b"null") >= 0 and _may_hold_non_finite(value):
        return _compact(value)
    return raw.decode()


def _may_hold_non_finite(value: Any) -> bool:
    """Whether ``value`` holds a NaN or infinite float (or a type this walk does not know)."""
    stack = [value]
    while stack:
        node = stack.pop()
        kind = type(node)
        if kind is float:
            if node - node != 0.0:
                return True
        elif kind is dict:
            stack.extend(node.values())
        elif kind is list or kind is tuple:
            stack.extend(node)
        elif kind is not str and kind is not int and kind is not bool and node is not None:
            return True
    return False
