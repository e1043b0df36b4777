"""In-process fakes for verifier tests: a task, a scripted ``ask`` and ``source``."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from tlm.definition.model import IOSpec, PromptVariant, TaskDefinition
from tlm.providers.base import ChatResponse
from tlm.verify.base import Ask, Candidate, CandidateSource, VerificationContext

__all__ = ("FakeAsk", "FakeSource", "make_context", "make_task")


def make_task(task_id: str = "skill_decomposition") -> TaskDefinition:
    """A small task with one input property, ``skill_name``."""
    return TaskDefinition(
        id=task_id,
        name="Skill decomposition",
        description="Decompose a skill into sub-skills.",
        version="1.2.0",
        input=IOSpec(schema={"type": "object", "properties": {"skill_name": {"type": "string"}}}),
        output=IOSpec(schema={"type": "object"}),
        prompts=(
            PromptVariant(
                id="default",
                text="Decompose {{skill_name}}",
                template_variables=("skill_name",),
                usage_conditions={"default": True},
            ),
        ),
    )


Reply = Any
"""A scripted reply: a dict/list (sent as parsed JSON), a str (raw text), or an exception."""


@attrs.define
class FakeAsk:
    """Answers ``ask`` calls from a script, in order; records every call."""

    replies: list[Reply]
    cost_usd: float = 0.001
    structured: bool = True
    """Whether dict replies come back as ``parsed`` (True) or only as text (False)."""
    calls: list[tuple[str, str, Mapping[str, Any] | None]] = attrs.field(factory=list)

    async def __call__(
        self, model: str, prompt: str, /, *, output_schema: Mapping[str, Any] | None = None
    ) -> ChatResponse:
        self.calls.append((model, prompt, output_schema))
        reply = self.replies.pop(0)
        if isinstance(reply, BaseException):
            raise reply
        if isinstance(reply, str):
            return ChatResponse(text=reply, model=model, provider="fake", cost_usd=self.cost_usd)
        return ChatResponse(
            text=json.dumps(reply),
            model=model,
            provider="fake",
            parsed=reply if self.structured else None,
            cost_usd=self.cost_usd,
        )


@attrs.define
class FakeSource:
    """Runs the "task" by returning scripted outputs; records (model, feedback)."""

    outputs: list[Any] = attrs.field(factory=list)
    cost_usd: float = 0.002
    calls: list[tuple[str, str | None]] = attrs.field(factory=list)

    async def __call__(self, model: str, /, *, feedback: str | None = None) -> Candidate:
        self.calls.append((model, feedback))
        output = self.outputs.pop(0)
        if isinstance(output, BaseException):
            raise output
        return Candidate(model=model, output=output, cost_usd=self.cost_usd)


def make_context(
    *,
    output: Any = None,
    primary: str = "model-a",
    ranked: Sequence[str] = ("model-a", "model-b", "model-c"),
    ask: Ask | None = None,
    source: CandidateSource | None = None,
    task_input: Mapping[str, Any] | None = None,
    execution_id: str = "exec-1",
) -> VerificationContext:
    """A verification context around the fake task."""
    return VerificationContext(
        task=make_task(),
        input=task_input if task_input is not None else {"skill_name": "python"},
        primary=Candidate(
            model=primary,
            output=output if output is not None else {"skills": ["syntax", "stdlib"]},
        ),
        ranked_models=tuple(ranked),
        source=source if source is not None else FakeSource(),
        ask=ask if ask is not None else FakeAsk([]),
        execution_id=execution_id,
    )
