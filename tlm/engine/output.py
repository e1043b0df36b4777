"""Turning a model's reply into a validated output: parse and repair (:mod:`tlm.json_reply`),
then validate (:mod:`tlm.json_schema`).

Repair is deterministic and cheap: strip code fences, then take the outermost JSON object or
array found in the text (models like to wrap JSON in prose). Anything beyond that is the engine's
bounded re-ask, which sends the validation problems (never provider error text) back to the model.
"""

from __future__ import annotations

from collections.abc import Sequence

from tlm.errors import Problem
from tlm.json_reply import parse_json_reply

__all__ = ("parse_json_reply", "format_problems_for_model")


def format_problems_for_model(problems: Sequence[Problem], *, limit: int = 10) -> str:
    """The validation problems as plain lines a model can act on (no provider error text)."""
    lines = [f"- {p.path}: {p.message}" for p in problems[:limit]]
    if len(problems) > limit:
        lines.append(f"- ... and {len(problems) - limit} more")
    return "\n".join(lines)
