"""Option types that check numbers at the boundary, and the one-line error the CLI prints.

A value that is not a number at all is a usage error (exit 2, click's usual message). A number
that parses but cannot be used — ``nan``, ``inf``, negative, out of range, too large for the
store — is refused with :class:`InputError`: one line on stderr naming the option, exit 1, no
traceback. Content errors in an input file (not UTF-8, not JSON, too deep) use it too.
"""

from __future__ import annotations

import math
import re
from typing import Any

import click

__all__ = ("InputError", "Number", "Integer", "SQLITE_MAX_INT")

SQLITE_MAX_INT = 2**63 - 1
"""The largest integer SQLite stores (limits and offsets beyond it overflow)."""


_DIGITS = re.compile(r"[+-]?\d+")


class InputError(click.ClickException):
    """One clear line on stderr (``Error: <where>: <what>``) and exit status 1."""

    exit_code = 1


def _name(param: click.Parameter | None) -> str:
    if param is None:
        return "value"
    opts = getattr(param, "opts", None)
    return str(opts[0]) if opts else str(param.human_readable_name)


class Number(click.ParamType[float]):
    """A finite float within bounds (``nan``, ``inf`` and out-of-range values are refused)."""

    name = "number"

    def __init__(
        self,
        *,
        minimum: float | None = None,
        maximum: float | None = None,
        exclusive_minimum: bool = False,
    ) -> None:
        self.minimum = minimum
        self.maximum = maximum
        self.exclusive_minimum = exclusive_minimum

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number", param, ctx)
        if not math.isfinite(number):
            raise InputError(f"{_name(param)}: {value} is not a finite number")
        low, high = self.minimum, self.maximum
        too_low = low is not None and (number <= low if self.exclusive_minimum else number < low)
        if too_low or (high is not None and number > high):
            raise InputError(f"{_name(param)}: {value} is out of range ({self._allowed()})")
        return number

    def _allowed(self) -> str:
        parts = []
        if self.minimum is not None:
            parts.append(f"{'above' if self.exclusive_minimum else 'at least'} {self.minimum:g}")
        if self.maximum is not None:
            parts.append(f"at most {self.maximum:g}")
        return " and ".join(parts)


class Integer(click.ParamType[int]):
    """An integer within bounds; the upper bound defaults to what SQLite can store."""

    name = "integer"

    def __init__(self, *, minimum: int | None = None, maximum: int = SQLITE_MAX_INT) -> None:
        self.minimum = minimum
        self.maximum = maximum

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        text = str(value).strip()
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif _DIGITS.fullmatch(text) and len(text.lstrip("+-")) > 30:  # beyond any bound
            raise InputError(f"{_name(param)}: {text[:27]}… is out of range ({self._allowed()})")
        else:
            try:
                number = int(text, 10)
            except ValueError:
                self.fail(f"{str(value)[:40]!r} is not an integer", param, ctx)
        if (self.minimum is not None and number < self.minimum) or number > self.maximum:
            raise InputError(f"{_name(param)}: {text} is out of range ({self._allowed()})")
        return number

    def _allowed(self) -> str:
        low = "" if self.minimum is None else f"{self.minimum} to "
        return f"{low}{self.maximum}"
