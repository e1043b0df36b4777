"""Checks for the budgets and model lists callers pass in, applied once at the boundary.

Every check raises :class:`tlm.errors.InvalidArgument` naming the field
(``options.budget.deadline_s``, ``options.models[1]``) and saying what is allowed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from tlm.definition.model import Budget
from tlm.errors import InvalidArgument
from tlm.numbers import check_int, check_number, describe

__all__ = ("check_budget", "budget_from", "check_model_list")

_BUDGET_FIELDS = tuple(f.name for f in attrs.fields(Budget))


def check_budget(budget: Budget, name: str = "options.budget") -> Budget:
    """``budget`` with every limit checked: cost >= 0, deadline > 0, attempts >= 1, all finite."""
    if not isinstance(budget, Budget):
        raise InvalidArgument(name, f"expected a Budget or a mapping, got {describe(budget)}")
    if budget.max_cost_usd is not None:
        check_number(f"{name}.max_cost_usd", budget.max_cost_usd, minimum=0.0)
    if budget.deadline_s is not None:
        check_number(f"{name}.deadline_s", budget.deadline_s, minimum=0.0, exclusive_minimum=True)
    if budget.max_attempts is not None:
        check_int(f"{name}.max_attempts", budget.max_attempts, minimum=1)
    return budget


def budget_from(value: Any, name: str = "options.budget") -> Budget | None:
    """A :class:`Budget` from a ``Budget``, a mapping of its fields, or ``None``; checked."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        unknown = sorted(str(k) for k in value if k not in _BUDGET_FIELDS)
        if unknown:
            raise InvalidArgument(
                name,
                f"unknown field(s) {', '.join(unknown)} (known: {', '.join(_BUDGET_FIELDS)})",
            )
        value = Budget(**value)
    return check_budget(value, name)


def check_model_list(value: Any, name: str = "options.models") -> tuple[str, ...] | None:
    """Model ids as a tuple: a list or tuple of non-empty strings (a lone string is refused)."""
    if value is None:
        return None
    if isinstance(value, str):
        raise InvalidArgument(name, f"expected a list of model ids, not the string {value!r}")
    if not isinstance(value, list | tuple):
        raise InvalidArgument(name, f"expected a list of model ids, got {describe(value)}")
    for index, item in enumerate(value):
        if not isinstance(item, str) or not item.strip():
            raise InvalidArgument(f"{name}[{index}]", f"expected a model id, got {describe(item)}")
    return tuple(value)
