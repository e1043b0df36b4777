"""Canonical forms of JSON values, so that formatting differences do not count as disagreement.

Two levels:

* **strict** (``fold=False``): key order and number formatting only. ``1.0`` and ``1`` are the
  same number; floats are rounded to 12 significant digits so ``0.1 + 0.2 == 0.3``. Strings are
  untouched. This is what the ``exact`` metric compares.
* **folded** (``fold=True``, the default): also Unicode NFKC, whitespace collapsed and trimmed,
  case folded, and strings that spell a plain decimal number become that number, so ``"5"``
  equals ``5`` and ``" 5.0 "`` equals ``5``. Models often quote numbers when the schema allows
  either; when the type matters the output schema already rejects the wrong one. Strings with
  leading zeros (``"007"``, zip codes) stay strings. Booleans never equal numbers.

Mapping keys are kept as they are (the output schema fixes them) and sorted.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Mapping
from typing import Any

__all__ = ("canonicalize", "canonical_json", "canonical_text")

_DECIMAL = re.compile(r"[+-]?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_INTEGER = re.compile(r"[+-]?(?:0|[1-9][0-9]*)")


def _number(value: float) -> int | float | str:
    if math.isnan(value) or math.isinf(value):
        return str(value)
    if value.is_integer() and abs(value) < 2**53:
        return int(value)
    return float(f"{value:.12g}")


def _string(value: str) -> str | int | float:
    if not value.isascii():
        value = unicodedata.normalize("NFKC", value)
    text = " ".join(value.split()).casefold()
    if text and (text[0].isdigit() or text[0] in "+-"):
        if _INTEGER.fullmatch(text):
            return int(text)
        if _DECIMAL.fullmatch(text):
            return _number(float(text))
    return text


def canonicalize(value: Any, *, fold: bool = True) -> Any:
    """Return ``value`` in canonical form (see the module docstring); the input is not changed.

    Values that are not JSON (sets, attrs objects, ...) become their ``str()``; tuples are lists.
    """
    kind = type(value)
    if kind is str:
        return _string(value) if fold else value
    if kind is dict:
        return {str(k): canonicalize(value[k], fold=fold) for k in sorted(value, key=str)}
    if kind is list:
        return [canonicalize(v, fold=fold) for v in value]
    if value is None or kind is bool or kind is int:
        return value
    if kind is float:
        return _number(value)
    # Subclasses and other containers: the slower, general checks.
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return _number(value)
    if isinstance(value, str):
        return _string(value) if fold else str(value)
    if isinstance(value, Mapping):
        return {str(k): canonicalize(value[k], fold=fold) for k in sorted(value, key=str)}
    if isinstance(value, list | tuple):
        return [canonicalize(v, fold=fold) for v in value]
    return _string(str(value)) if fold else str(value)


def canonical_json(value: Any, *, fold: bool = False) -> str:
    """Compact JSON of the canonical form; equal strings mean equal values."""
    return json.dumps(
        canonicalize(value, fold=fold),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )


def canonical_text(value: Any) -> str:
    """Folded text of a value, for text metrics: a string itself, anything else its JSON."""
    folded = canonicalize(value, fold=True)
    if isinstance(folded, str):
        return folded
    return json.dumps(folded, sort_keys=True, separators=(", ", ": "), ensure_ascii=False)
