"""The public names are pinned: removing or renaming one is a breaking change, made on purpose."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import tlm

PINNED = {
    "tlm": {
        "execute", "run", "feedback", "aclose", "Engine", "EngineConfig", "ExecuteOptions",
        "ExecutionResult", "Verdict", "TaskDefinition", "load_config", "TLMError",
        "DefinitionError", "TaskSchemaError", "ConfigurationError", "ExecutionError",
        "InputInvalid", "OutputInvalid", "ProviderError", "BudgetExceeded", "VerificationFailed",
    },
    "tlm.engine": {
        "BudgetLedger", "Engine", "EngineConfig", "ExecuteOptions", "ExecutionResult",
        "ResultStream", "aclose", "default_engine", "execute", "feedback", "load_config", "run",
    },
    "tlm.testing": {
        "Answer", "FakeAnthropicBatchServer", "FakeAnthropicServer", "FakeBatch",
        "FakeOpenAIBatchServer", "FakeOpenAIServer", "FakeProvider", "Handler", "RecordedRequest",
        "Reply", "ReplyLike", "Script", "ScriptedModels", "ScriptedProvider", "anthropic_error",
        "anthropic_message", "anthropic_rate_limited", "anthropic_unauthorized",
        "chat_completion", "context_length_exceeded", "hang", "malformed", "openai_error",
        "overloaded", "prompt_too_long", "rate_limited", "reset", "server_error", "truncated",
        "unauthorized",
    },
}  # fmt: skip


@pytest.mark.parametrize("module_name", sorted(PINNED))
def test_public_names_are_pinned(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert set(module.__all__) == PINNED[module_name]


def _modules_with_all() -> list[str]:
    names = ["tlm"]
    for info in pkgutil.walk_packages(tlm.__path__, "tlm."):
        if info.name.startswith(("tlm.ui", "tlm.cli")):
            continue  # optional extras / entry points, imported by the tests that use them
        names.append(info.name)
    return names


@pytest.mark.parametrize("module_name", _modules_with_all())
def test_every_exported_name_exists_once(module_name: str) -> None:
    module = importlib.import_module(module_name)
    exported = getattr(module, "__all__", ())
    assert len(exported) == len(set(exported)), f"{module_name}.__all__ repeats a name"
    missing = [name for name in exported if not hasattr(module, name)]
    assert not missing, f"{module_name}.__all__ names what it lacks: {missing}"
