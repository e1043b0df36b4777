"""TLM: task-centric LLM management.

Declare a task once in JSON; TLM validates its input, picks models, renders the prompt, calls the
models, validates and verifies the output, falls back when it must, and records every execution::

    result = await tlm.execute("job_detail_extraction", {"job_posting": text})

    async with tlm.Engine() as engine:
        async with engine.map("skill_decomposition", skills, max_in_flight=32) as results:
            async for result in results:
                ...
"""

from tlm.definition import TaskDefinition
from tlm.engine import (
    Engine,
    EngineConfig,
    ExecuteOptions,
    ExecutionResult,
    aclose,
    execute,
    feedback,
    load_config,
    run,
)
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
from tlm.verify import Verdict

__all__ = (
    "execute",
    "run",
    "feedback",
    "aclose",
    "Engine",
    "EngineConfig",
    "ExecuteOptions",
    "ExecutionResult",
    "Verdict",
    "TaskDefinition",
    "load_config",
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
