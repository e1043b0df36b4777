"""What an execution returns, and the options a caller may pass."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import attrs

from tlm.definition.model import Budget
from tlm.errors import TLMError
from tlm.providers.base import Usage
from tlm.verify.base import Verdict

__all__ = ("ExecuteOptions", "ExecutionResult", "Status", "coerce_options")

Status = Literal["verified", "unverified", "pending", "fallback", "cached", "failed"]


@attrs.frozen
class ExecuteOptions:
    """Per-call options; every field defaults to the task definition's own setting."""

    models: tuple[str, ...] | None = None
    """Restrict (and order) the models to try."""
    prompt_variant: str | None = None
    """Force a prompt variant by id."""
    structured_output: bool = True
    """Ask the provider for schema-constrained JSON (also a usage condition for variants)."""
    budget: Budget | None = None
    """Tighter limits for this call; merged with the definition's budget."""
    cache: bool = True
    verify: bool = True
    temperature: float | None = 0.0
    max_tokens: int | None = 1024
    seed: int | None = 0
    extra: Mapping[str, Any] = attrs.field(factory=dict)
    """Free-form values visible to usage conditions as ``options.<name>``."""
    session_id: str | None = None
    """Groups executions in an observability backend (``session.id``) and in the store."""
    user_id: str | None = None
    """Whom the execution ran for (``user.id``), recorded with it."""
    tags: tuple[str, ...] = ()
    """Labels for filtering (``tag.tags``), recorded with the execution."""
    metadata: Mapping[str, str] = attrs.field(factory=dict)
    """Key/value facts recorded with the execution (``metadata``)."""

    def as_condition_options(self) -> dict[str, Any]:
        """The options usage conditions see."""
        values = dict(self.extra)
        values["structured_output"] = self.structured_output
        if self.prompt_variant is not None:
            values["prompt_variant"] = self.prompt_variant
        return values


def coerce_options(options: ExecuteOptions | Mapping[str, Any] | None) -> ExecuteOptions:
    """Accept options as an :class:`ExecuteOptions`, a plain mapping or ``None``."""
    if options is None:
        return ExecuteOptions()
    if isinstance(options, ExecuteOptions):
        return options
    fields = {f.name for f in attrs.fields(ExecuteOptions)}
    known = {k: v for k, v in options.items() if k in fields}
    extra = {k: v for k, v in options.items() if k not in fields}
    if isinstance(known.get("budget"), Mapping):
        known["budget"] = Budget(**known["budget"])
    if "models" in known and known["models"] is not None:
        known["models"] = tuple(known["models"])
    if isinstance(known.get("tags"), list | tuple):
        known["tags"] = tuple(known["tags"])
    if extra:
        known["extra"] = {**dict(known.get("extra", {})), **extra}
    return ExecuteOptions(**known)


@attrs.frozen
class ExecutionResult:
    """The outcome of one execution."""

    output: Any
    execution_id: str
    task_id: str
    task_version: str
    prompt_variant: str | None
    models_used: tuple[str, ...]
    verdict: Verdict | None
    cost_usd: float
    usage: Usage
    latency_s: float
    status: Status
    cache_hit: bool = False
    fallback: str | None = None
    """The fallback strategy that produced the output, if one did."""
    attempts: int = 0
    index: int | None = None
    """With :meth:`tlm.Engine.map`: the position of the input in the input stream."""
    error: TLMError | None = None
    """With :meth:`tlm.Engine.map`: the error of a failed execution (``execute`` raises it)."""

    @property
    def verified(self) -> bool:
        """Whether verification passed."""
        return self.verdict is not None and self.verdict.passed is True

    @property
    def tokens(self) -> int:
        """Input plus output tokens over every attempt."""
        return self.usage.total_tokens

    def unwrap(self) -> Any:
        """The output, or raise the execution's error."""
        if self.error is not None:
            raise self.error
        return self.output
