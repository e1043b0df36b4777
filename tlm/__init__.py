"""TLM: task-centric LLM management.

Declare a task once in JSON; TLM validates its input, picks models, renders the prompt, calls the
models, validates and verifies the output, falls back when it must, and records every execution.
"""

from tlm.definition import TaskDefinition
from tlm.errors import (
    BudgetExceeded,
    ConfigurationError,
    DefinitionError,
    ExecutionError,
    InputInvalid,
    OutputInvalid,
    ProviderError,
    TaskSchemaError,
    TLMError,
    VerificationFailed,
)

__all__ = (
    "TaskDefinition",
    "TLMError",
    "DefinitionError",
    "TaskSchemaError",
    "ConfigurationError",
    "ExecutionError",
    "InputInvalid",
    "OutputInvalid",
    "ProviderError",
    "BudgetExceeded",
    "VerificationFailed",
)
