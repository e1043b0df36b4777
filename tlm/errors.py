"""TLM's errors, in one tree.

Setup-time errors (a bad definition, a bad configuration) are kept apart from run-time errors (a
model failed, a budget ran out)::

    TLMError
    ├── DefinitionError(ValueError)        bad task JSON, detected before any call
    │   ├── TaskSchemaError                .problems: [(file, json_path, message)]
    │   ├── WorkflowTypeError(TypeError)   workflow steps whose input/output do not line up
    │   └── UnknownDefinition(KeyError)    no such task id or version; lists what exists
    ├── ConfigurationError(RuntimeError)   unknown provider/model, missing API key, bad tlm.toml
    ├── ExecutionError(RuntimeError)       .execution_id .stage
    │   ├── InputInvalid(ValueError)       the input violates the task's schema or rules
    │   │   ├── InputNotJSON                too deep, circular, NaN, non-string keys, surrogates
    │   │   └── InputTooLarge               too long for every configured model's context window
    │   ├── PromptError                    a template variable is missing or unexpected
    │   ├── ProviderError                  .provider .model .status ; class attribute `retryable`
    │   │   ├── RateLimited(.retry_after)  · ProviderUnavailable · ProviderTimeout   (retryable)
    │   │   ├── ProviderConnectionError · MalformedResponse                           (retryable)
    │   │   ├── ResponseTooLarge           the reply passed the response-size limit (not retried)
    │   │   └── ProviderRejected → AuthenticationFailed · BadRequest
    │   │                         → ContextLengthExceeded                            (not retryable)
    │   ├── OutputInvalid                  .failures from schema / rules
    │   ├── BudgetExceeded                 .spent_usd .elapsed_s .attempts .partial
    │   └── VerificationFailed             .verdict
    ├── StoreError
    │   ├── StoreCorrupted                 the database file is damaged (found when it opens)
    │   └── RecordNotCommitted             .result .execution_id .output: the record is not stored
    └── InvalidArgument(ValueError)        an option or argument out of range or of the wrong type

Messages never contain API keys: provider errors are built from status, provider and model names
and a sanitised excerpt of the reply body.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

__all__ = (
    "TLMError",
    "DefinitionError",
    "Problem",
    "TaskSchemaError",
    "WorkflowTypeError",
    "UnknownDefinition",
    "ConfigurationError",
    "ExecutionError",
    "InputInvalid",
    "InputNotJSON",
    "InputTooLarge",
    "InvalidArgument",
    "PromptError",
    "ProviderError",
    "RateLimited",
    "ProviderUnavailable",
    "ProviderTimeout",
    "ProviderConnectionError",
    "MalformedResponse",
    "ResponseTooLarge",
    "ProviderRejected",
    "AuthenticationFailed",
    "BadRequest",
    "ContextLengthExceeded",
    "OutputInvalid",
    "BudgetExceeded",
    "VerificationFailed",
    "StoreError",
    "StoreCorrupted",
    "RecordNotCommitted",
)


class TLMError(Exception):
    """Base of every error TLM raises on purpose."""


class DefinitionError(TLMError, ValueError):
    """A task definition (or workflow) is wrong; found before any model is called."""


class Problem(tuple[str, str, str]):
    """One located problem: ``(source, json_path, message)``; ``str()`` renders it for people."""

    __slots__ = ()

    def __new__(cls, source: str, path: str, message: str) -> Problem:
        return super().__new__(cls, (source, path, message))

    @property
    def source(self) -> str:
        """The file (or other origin) the problem is in."""
        return self[0]

    @property
    def path(self) -> str:
        """The JSON path inside the source, e.g. ``$.prompts[1].text``."""
        return self[1]

    @property
    def message(self) -> str:
        """What is wrong."""
        return self[2]

    def __str__(self) -> str:
        where = ": ".join(p for p in (self.source, self.path) if p)
        return f"{where}: {self.message}" if where else self.message


class TaskSchemaError(DefinitionError):
    """Every problem found in one or more definitions, each located by file and JSON path."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class WorkflowTypeError(DefinitionError, TypeError):
    """A workflow step's output does not fit the next step's input."""


class UnknownDefinition(DefinitionError, KeyError):
    """No definition has this task id, or none of its versions matches; says what exists."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class ConfigurationError(TLMError, RuntimeError):
    """Configuration is missing or wrong: unknown model or provider, missing API key, bad file."""


class ExecutionError(TLMError, RuntimeError):
    """An execution failed at run time."""

    execution_id: str | None = None
    stage: str | None = None


class InputInvalid(ExecutionError, ValueError):
    """The input violates the task's input schema or rules; no model was called."""

    def __init__(self, task_id: str, problems: Sequence[Problem]) -> None:
        self.task_id = task_id
        self.problems: tuple[Problem, ...] = tuple(problems)
        lines = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(f"invalid input for task {task_id!r}:\n{lines}")


class InputNotJSON(InputInvalid):
    """The input is not JSON that TLM can carry: nested too deep, circular, NaN or Infinity,
    non-string keys, lone surrogates, over-long integers or other objects. Nothing was called."""


class InputTooLarge(InputInvalid):
    """The rendered prompt does not fit the context window of any configured model.

    ``estimated_tokens`` is the prompt estimate plus the output tokens reserved; ``windows`` maps
    each configured model to its context window.
    """

    def __init__(
        self, task_id: str, *, estimated_tokens: int, output_tokens: int, windows: dict[str, int]
    ) -> None:
        self.estimated_tokens = estimated_tokens
        self.output_tokens = output_tokens
        self.windows = dict(windows)
        over = ", ".join(
            f"{model} holds {window:,} (over by {estimated_tokens - window:,})"
            for model, window in sorted(self.windows.items(), key=lambda kv: -kv[1])
        )
        message = (
            f"the input is too large for every configured model's context window: about "
            f"{estimated_tokens:,} tokens ({estimated_tokens - output_tokens:,} of prompt + "
            f"{output_tokens:,} reserved for the output); {over}"
        )
        super().__init__(task_id, [Problem("input", "$", message)])


class PromptError(ExecutionError, ValueError):
    """A prompt template could not be rendered (missing or unexpected variable)."""


class ProviderError(ExecutionError):
    """A model provider failed. ``retryable`` says whether trying again may help; ``attempts``
    how many requests were sent before giving up (retries included)."""

    retryable: ClassVar[bool] = False
    attempts: int = 1

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        model: str,
        status: int | None = None,
    ) -> None:
        self.provider = provider
        self.model = model
        self.status = status
        status_text = f" (HTTP {status})" if status is not None else ""
        super().__init__(f"{provider}/{model}{status_text}: {message}")


class RateLimited(ProviderError):
    """HTTP 429: slow down; ``retry_after`` is the server's hint in seconds, if it gave one."""

    retryable = True

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        model: str,
        status: int | None = 429,
        retry_after: float | None = None,
    ) -> None:
        self.retry_after = retry_after
        super().__init__(message, provider=provider, model=model, status=status)


class ProviderUnavailable(ProviderError):
    """The provider is overloaded or failing (5xx, 529)."""

    retryable = True


class ProviderTimeout(ProviderError):
    """The provider did not answer in time."""

    retryable = True


class ProviderConnectionError(ProviderError):
    """The connection failed or was reset."""

    retryable = True


class MalformedResponse(ProviderError):
    """The provider's reply was not the wire format it promised (bad or truncated JSON)."""

    retryable = True


class ResponseTooLarge(ProviderError):
    """The reply grew past the response-size limit; reading stopped there (``limit_bytes``)."""

    def __init__(
        self, message: str, *, provider: str, model: str, status: int | None, limit_bytes: int
    ) -> None:
        self.limit_bytes = limit_bytes
        super().__init__(message, provider=provider, model=model, status=status)


class ProviderRejected(ProviderError):
    """The provider refused the request; trying the same request again will not help."""


class AuthenticationFailed(ProviderRejected):
    """HTTP 401/403: the API key is missing, wrong or lacks permission."""


class BadRequest(ProviderRejected):
    """HTTP 400/404/422: the request is malformed or names an unknown model."""


class ContextLengthExceeded(BadRequest):
    """The prompt does not fit the model's context window; a larger model may be tried."""


class OutputInvalid(ExecutionError):
    """The model's output failed the output schema or rules, after repair and re-asks."""

    def __init__(
        self, task_id: str, problems: Sequence[Problem], *, raw: str | None = None
    ) -> None:
        self.task_id = task_id
        self.problems: tuple[Problem, ...] = tuple(problems)
        self.raw = raw
        lines = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(f"invalid output for task {task_id!r}:\n{lines}")


class BudgetExceeded(ExecutionError):
    """A cost, deadline or attempt budget ran out; carries what was spent and any partial result."""

    def __init__(
        self,
        message: str,
        *,
        spent_usd: float,
        elapsed_s: float,
        attempts: int,
        partial: Any = None,
    ) -> None:
        self.spent_usd = spent_usd
        self.elapsed_s = elapsed_s
        self.attempts = attempts
        self.partial = partial
        super().__init__(
            f"{message} (spent ${spent_usd:.6f} in {elapsed_s:.3f}s over {attempts} attempt(s))"
        )


class VerificationFailed(ExecutionError):
    """Verification did not pass and the fallback strategy was ``fail``."""

    def __init__(self, message: str, *, verdict: Any = None) -> None:
        self.verdict = verdict
        super().__init__(message)


class StoreError(TLMError):
    """The execution store could not be opened, migrated, read or written."""


class StoreCorrupted(StoreError):
    """The execution store's file is damaged; found when it opens, before any model call."""


class RecordNotCommitted(StoreError):
    """An execution finished but its record could not be committed (disk full, damaged file).

    Nothing is lost: :attr:`result` is the execution's result (its ``output`` included), and the
    message says where the record was saved instead (``unrecorded.jsonl`` beside the database).
    """

    def __init__(self, message: str, *, result: Any) -> None:
        self.result = result
        self.execution_id: str | None = getattr(result, "execution_id", None)
        super().__init__(message)

    @property
    def output(self) -> Any:
        """The execution's output (``None`` for a failed execution)."""
        return getattr(self.result, "output", None)


class InvalidArgument(TLMError, ValueError):
    """An option or argument is out of range or of the wrong type; ``argument`` names it
    (``options.budget.max_cost_usd``, ``score``). Raised before anything runs."""

    def __init__(self, argument: str, message: str) -> None:
        self.argument = argument
        super().__init__(f"{argument}: {message}")
