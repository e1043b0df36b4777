"""Checks for the numbers callers pass in: finite, typed and within range, or a named error.

Every check raises :class:`tlm.errors.InvalidArgument` naming the argument and saying what is
allowed. ``NaN`` and infinities are never accepted: a ``nan`` limit would compare as "no limit".
"""

from __future__ import annotations

import math
from typing import Any

from tlm.errors import InvalidArgument

__all__ = ("check_number", "check_int", "check_feedback_score", "FEEDBACK_SCORE_RANGE", "describe")

FEEDBACK_SCORE_RANGE = (0.0, 1.0)
"""Feedback scores are the share of "correct": 0 (wrong) to 1 (right); learning reads them so."""


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_number(
    name: str,
    value: Any,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    exclusive_minimum: bool = False,
) -> float:
    """``value`` as a finite float within the bounds, else :class:`InvalidArgument`."""
    if not _is_number(value):
        raise InvalidArgument(name, f"expected a number, got {describe(value)}")
    try:
        number = float(value)
    except OverflowError:  # an int too large for a float
        number = math.copysign(math.inf, value)
    if not math.isfinite(number):
        raise InvalidArgument(name, f"must be a finite number, not {_short(value)}")
    too_low = minimum is not None and (number <= minimum if exclusive_minimum else number < minimum)
    if too_low or (maximum is not None and number > maximum):
        allowed = _range(minimum, maximum, exclusive_minimum)
        raise InvalidArgument(name, f"{_short(value)} is out of range ({allowed})")
    return number


def check_int(
    name: str, value: Any, *, minimum: int | None = None, maximum: int | None = None
) -> int:
    """``value`` as an int (not a bool) within the bounds, else :class:`InvalidArgument`."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidArgument(name, f"expected an integer, got {describe(value)}")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise InvalidArgument(
            name, f"{_short(value)} is out of range ({_range(minimum, maximum, False)})"
        )
    return int(value)


def check_feedback_score(score: Any, name: str = "score") -> float | None:
    """A feedback score: ``None`` or a finite number from 0 (wrong) to 1 (right)."""
    if score is None:
        return None
    low, high = FEEDBACK_SCORE_RANGE
    return check_number(name, score, minimum=low, maximum=high)


def _range(minimum: float | None, maximum: float | None, exclusive: bool) -> str:
    low = None if minimum is None else f"{'above' if exclusive else 'at least'} {minimum:g}"
    high = None if maximum is None else f"at most {maximum:g}"
    return " and ".join(p for p in (low, high) if p) or "finite"


def _short(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return f"an integer of {value.bit_length()} bits"
    text = repr(value)
    return text if len(text) <= 40 else text[:39] + "…"


def describe(value: Any) -> str:
    """``value``'s type and a short repr, for error messages."""
    return f"{type(value).__name__} {_short(value)}"
