"""What an execution returns, and the options a caller may pass."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, TypeAlias

import attrs

from tlm.definition.model import Budget
from tlm.engine.arguments import budget_from, check_budget, check_model_list
from tlm.errors import InvalidArgument, TLMError
from tlm.numbers import check_int, check_number
from tlm.providers.base import Usage
from tlm.verify.base import Verdict

__all__ = (
    "Options",
    "ExecuteOptions",
    "ExecutionResult",
    "Status",
    "coerce_options",
    "check_options",
)

Options: TypeAlias = "ExecuteOptions | Mapping[str, Any] | None"
"""What ``execute``/``map`` accept as options: the object, a mapping of its fields, or none."""

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

    def __attrs_post_init__(self) -> None:
        check_options(self)

    def as_condition_options(self) -> dict[str, Any]:
        """The options usage conditions see."""
        values = dict(self.extra)
        values["structured_output"] = self.structured_output
        if self.prompt_variant is not None:
            values["prompt_variant"] = self.prompt_variant
        return values


def check_options(options: ExecuteOptions) -> None:
    """Refuse options out of range or of the wrong type (:class:`tlm.errors.InvalidArgument`)."""
    check_model_list(options.models)
    if options.prompt_variant is not None and not isinstance(options.prompt_variant, str):
        raise InvalidArgument("options.prompt_variant", "expected a prompt variant id (a string)")
    for flag in ("structured_output", "cache", "verify"):
        if not isinstance(getattr(options, flag), bool):
            raise InvalidArgument(f"options.{flag}", "expected true or false")
    if options.budget is not None:
        check_budget(options.budget)
    if options.temperature is not None:
        check_number("options.temperature", options.temperature, minimum=0.0, maximum=2.0)
    if options.max_tokens is not None:
        check_int("options.max_tokens", options.max_tokens, minimum=1)
    if options.seed is not None:
        check_int("options.seed", options.seed)
    if not isinstance(options.extra, Mapping):
        raise InvalidArgument("options.extra", "expected a mapping")
    for name in ("session_id", "user_id"):
        value = getattr(options, name)
        if value is not None and not isinstance(value, str):
            raise InvalidArgument(f"options.{name}", "expected a string")
    tags = options.tags
    if not isinstance(tags, tuple) or not all(isinstance(tag, str) for tag in tags):
        raise InvalidArgument("options.tags", "expected a list of strings")
    metadata = options.metadata
    if not isinstance(metadata, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise InvalidArgument("options.metadata", "expected a mapping of strings to strings")


_DEFAULT_OPTIONS = ExecuteOptions()
_FIELDS = frozenset(f.name for f in attrs.fields(ExecuteOptions))


def coerce_options(options: ExecuteOptions | Mapping[str, Any] | None) -> ExecuteOptions:
    """Accept options as an :class:`ExecuteOptions`, a plain mapping or ``None``; checked.

    Raises:
        InvalidArgument: a value is out of range or of the wrong type (named by its field).
    """
    if options is None:
        return _DEFAULT_OPTIONS
    if isinstance(options, ExecuteOptions):
        return options
    if not isinstance(options, Mapping):
        raise InvalidArgument("options", "expected ExecuteOptions, a mapping or None")
    known = {k: v for k, v in options.items() if k in _FIELDS}
    extra = {k: v for k, v in options.items() if k not in _FIELDS}
    if "budget" in known:
        known["budget"] = budget_from(known["budget"])
    if "models" in known:
        known["models"] = check_model_list(known["models"])
    if isinstance(known.get("tags"), list):
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

    def decided(self, verdict: Verdict) -> ExecutionResult:
        """This pending result once a human decided ``verdict`` (unchanged while undecided)."""
        if verdict.passed is None:
            return self
        return attrs.evolve(
            self,
            output=verdict.output if verdict.output is not None else self.output,
            verdict=verdict,
            status="verified" if verdict.passed else "fallback",
        )
