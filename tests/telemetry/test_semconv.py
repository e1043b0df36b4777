"""Every name TLM emits, against the official packages that define them (versions pinned).

``opentelemetry-semantic-conventions`` 0.66b2 still ships the ``gen_ai.*`` names but marks each as
moved to the GenAI conventions' own repository; ``openinference-semantic-conventions`` 0.1.42
defines what Phoenix reads. Both are pinned in the ``test`` extra.
"""

from __future__ import annotations

import inspect
import re
from importlib.metadata import version
from types import ModuleType

import pytest
from openinference.semconv.trace import (
    OpenInferenceMimeTypeValues,
    OpenInferenceSpanKindValues,
    SpanAttributes,
)
from opentelemetry.semconv._incubating.attributes import (
    gen_ai_attributes,
    session_attributes,
    user_attributes,
)
from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import (
    GenAiOperationNameValues,
    GenAiOutputTypeValues,
    GenAiTokenTypeValues,
)
from opentelemetry.semconv._incubating.metrics import gen_ai_metrics
from opentelemetry.semconv.attributes import error_attributes, server_attributes

from tlm.telemetry import conventions as c
from tlm.telemetry.dialects import dialect_attributes

PINNED = {
    "opentelemetry-semantic-conventions": "0.66b2",
    "openinference-semantic-conventions": "0.1.42",
}
MOVED = "Moved to the [OpenTelemetry GenAI semantic conventions repository]"


def _names(module: ModuleType | type) -> dict[str, str]:
    """value → constant name, for every string constant of ``module``."""
    return {v: k for k, v in vars(module).items() if k.isupper() and isinstance(v, str)}


def _docstring(module: ModuleType, constant: str) -> str:
    source = inspect.getsource(module)
    match = re.search(rf'^{constant}: Final = "[^"]*"\n"""(.*?)"""', source, re.S | re.M)
    assert match is not None, constant
    return match.group(1)


@pytest.mark.parametrize(("package", "pinned"), sorted(PINNED.items()))
def test_the_compared_packages_are_the_pinned_versions(package: str, pinned: str) -> None:
    assert version(package) == pinned


def test_every_gen_ai_name_tlm_emits_is_defined_and_marked_moved() -> None:
    ours = {
        getattr(c, name)
        for name in c.__all__
        if name.startswith("GEN_AI_") and isinstance(getattr(c, name), str)
    }
    ours -= {
        c.GEN_AI_EVALUATION_RESULT,
        c.GEN_AI_CLIENT_TOKEN_USAGE,
        c.GEN_AI_CLIENT_OPERATION_DURATION,
    }
    theirs = _names(gen_ai_attributes)
    missing = sorted(name for name in ours if name not in theirs)
    assert missing == []
    for name in ours:
        assert MOVED in _docstring(gen_ai_attributes, theirs[name]), name


def test_metric_names_and_enum_values_are_the_conventions() -> None:
    metrics = _names(gen_ai_metrics)
    assert c.GEN_AI_CLIENT_TOKEN_USAGE in metrics
    assert c.GEN_AI_CLIENT_OPERATION_DURATION in metrics
    assert {"chat", "embeddings", "invoke_workflow"} <= {v.value for v in GenAiOperationNameValues}
    assert {"json", "text"} <= {v.value for v in GenAiOutputTypeValues}
    assert {"input", "output"} <= {v.value for v in GenAiTokenTypeValues}


def test_general_names_are_the_stable_and_incubating_ones() -> None:
    assert c.SERVER_ADDRESS == server_attributes.SERVER_ADDRESS
    assert c.SERVER_PORT == server_attributes.SERVER_PORT
    assert c.ERROR_TYPE == error_attributes.ERROR_TYPE
    assert c.SESSION_ID == session_attributes.SESSION_ID
    assert c.USER_ID == user_attributes.USER_ID


def test_every_openinference_name_tlm_adds_is_defined() -> None:
    full = {
        c.GEN_AI_OPERATION_NAME: "chat",
        c.GEN_AI_REQUEST_MODEL: "m",
        c.GEN_AI_PROVIDER_NAME: "openai",
        c.GEN_AI_USAGE_INPUT_TOKENS: 10,
        c.GEN_AI_USAGE_OUTPUT_TOKENS: 2,
        c.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 4,
        c.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS: 3,
        c.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: 1,
        c.GEN_AI_INPUT_MESSAGES: "[]",
        c.GEN_AI_OUTPUT_MESSAGES: '[{"role":"assistant","parts":[{"type":"text","content":"x"}]}]',
        c.TLM_COST_USD: 0.5,
        c.TLM_COST_INPUT_USD: 0.3,
        c.TLM_COST_OUTPUT_USD: 0.2,
    }
    names = set(_names(SpanAttributes))
    emitted = set(dialect_attributes("chat m", full, failed=False, dialects=("openinference",)))
    emitted |= set(
        dialect_attributes(
            "embeddings m",
            {**full, c.GEN_AI_OPERATION_NAME: "embeddings"},
            failed=False,
            dialects=("openinference",),
        )
    )
    emitted |= set(
        dialect_attributes(
            "tlm.execute t",
            {c.TLM_INPUT: "{}", c.TLM_OUTPUT: "{}"},
            failed=False,
            dialects=("openinference",),
        )
    )
    assert sorted(emitted - names) == []
    assert {c.TAG_TAGS, c.METADATA, c.SESSION_ID, c.USER_ID} <= names
    kinds = {v.value for v in OpenInferenceSpanKindValues}
    assert {"CHAIN", "LLM", "EMBEDDING", "EVALUATOR"} <= kinds
    assert {"application/json", "text/plain"} == {v.value for v in OpenInferenceMimeTypeValues}
