"""The execution engine: definitions compiled into stage pipelines, budgets, fallbacks, cache."""

from tlm.budget import BudgetLedger
from tlm.engine.api import aclose, default_engine, execute, feedback, run
from tlm.engine.config import EngineConfig, load_config
from tlm.engine.engine import Engine, ResultStream
from tlm.engine.result import ExecuteOptions, ExecutionResult

__all__ = (
    "Engine",
    "EngineConfig",
    "ExecuteOptions",
    "ExecutionResult",
    "ResultStream",
    "BudgetLedger",
    "load_config",
    "execute",
    "feedback",
    "aclose",
    "run",
    "default_engine",
)
