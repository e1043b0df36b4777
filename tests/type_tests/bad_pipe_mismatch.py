"""Step[A, B] | Step[C, D] with B not fitting C: mypy must reject the operator."""

from __future__ import annotations

from tlm.workflow import Step, step


async def to_int(text: str) -> int:
    return len(text)


async def shout(text: str) -> str:
    return text.upper()


first: Step[str, int] = step(to_int)
second: Step[str, str] = step(shout)
wrong = first | second  # an int is not a str
