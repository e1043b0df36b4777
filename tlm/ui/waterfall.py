"""The span tree of one execution laid out as a timing waterfall (one bar per span, nested)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

__all__ = ("Bar", "waterfall")

_SHOWN_ATTRIBUTES = (
    "gen_ai.provider.name",
    "gen_ai.response.model",
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.output_tokens",
    "tlm.cost.usd",
    "tlm.attempts",
    "tlm.verification.method",
    "tlm.verification.passed",
    "tlm.verification.confidence",
    "tlm.prompt.variant",
    "error.type",
)


@attrs.frozen
class Bar:
    """One span: where its bar starts and how wide it is, in percent of the root's duration."""

    name: str
    depth: int
    start_ms: float
    duration_ms: float
    left_pct: float
    width_pct: float
    status: str
    kind: str
    facts: tuple[tuple[str, str], ...]


def _facts(attributes: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    return tuple(
        (key.rsplit(".", 1)[-1] if key != "tlm.cost.usd" else "cost_usd", str(attributes[key]))
        for key in _SHOWN_ATTRIBUTES
        if key in attributes
    )


def waterfall(spans: Sequence[Mapping[str, Any]]) -> tuple[Bar, ...]:
    """Bars in tree order (each span followed by its children), scaled to the whole trace."""
    if not spans:
        return ()
    total = max((float(s["start_ms"]) + float(s["duration_ms"]) for s in spans), default=0.0)
    total = total or 1.0
    children: dict[int | None, list[int]] = {}
    for index, span in enumerate(spans):
        parent = span.get("parent")
        children.setdefault(None if index == 0 else int(parent or 0), []).append(index)
    bars: list[Bar] = []

    def visit(index: int, depth: int) -> None:
        span = spans[index]
        start, duration = float(span["start_ms"]), float(span["duration_ms"])
        bars.append(
            Bar(
                name=str(span["name"]),
                depth=depth,
                start_ms=start,
                duration_ms=duration,
                left_pct=round(100 * start / total, 2),
                width_pct=max(round(100 * duration / total, 2), 0.3),
                status=str(span.get("status", "ok")),
                kind=str(span.get("kind", "")),
                facts=_facts(span.get("attributes") or {}),
            )
        )
        ordered = sorted(children.get(index, ()), key=lambda i: float(spans[i]["start_ms"]))
        for child in ordered:
            if child != index:
                visit(child, depth + 1)

    visit(0, 0)
    return tuple(bars)
