"""Span names and attribute keys TLM emits, as constants.

Spans follow the OpenTelemetry GenAI semantic conventions, which now live in their own
repository (``open-telemetry/semantic-conventions-genai``; every ``gen_ai.*`` name in the Python
package ``opentelemetry-semantic-conventions`` 0.66b2 is marked "moved" there). The tracer's schema
URL stays :data:`SCHEMA_URL` (semconv 1.44.0, the last core release that carried them). What the
conventions lack is under ``tlm.*``; the names OpenInference (Phoenix) and Langfuse read are added
at export by :mod:`tlm.telemetry.dialects`. ``docs/telemetry.md`` maps every key.
"""

from __future__ import annotations

from typing import Final

__all__ = (
    "SEMCONV_VERSION",
    "SCHEMA_URL",
    "INSTRUMENTATION_NAME",
    # span names
    "EXECUTE_SPAN",
    "VERIFY_SPAN",
    # gen_ai.*
    "GEN_AI_OPERATION_NAME",
    "GEN_AI_PROVIDER_NAME",
    "GEN_AI_REQUEST_MODEL",
    "GEN_AI_REQUEST_TEMPERATURE",
    "GEN_AI_REQUEST_MAX_TOKENS",
    "GEN_AI_REQUEST_SEED",
    "GEN_AI_RESPONSE_ID",
    "GEN_AI_RESPONSE_MODEL",
    "GEN_AI_RESPONSE_FINISH_REASONS",
    "GEN_AI_USAGE_INPUT_TOKENS",
    "GEN_AI_USAGE_OUTPUT_TOKENS",
    "GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS",
    "GEN_AI_USAGE_REASONING_OUTPUT_TOKENS",
    "GEN_AI_EVALUATION_NAME",
    "GEN_AI_EVALUATION_SCORE_VALUE",
    "GEN_AI_EVALUATION_SCORE_LABEL",
    "GEN_AI_EVALUATION_EXPLANATION",
    "GEN_AI_INPUT_MESSAGES",
    "GEN_AI_OUTPUT_MESSAGES",
    "GEN_AI_SYSTEM_INSTRUCTIONS",
    "GEN_AI_OUTPUT_TYPE",
    "GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS",
    "GEN_AI_WORKFLOW_NAME",
    "GEN_AI_CONVERSATION_ID",
    "GEN_AI_EVALUATION_RESULT",
    "GEN_AI_TOKEN_TYPE",
    "GEN_AI_CLIENT_TOKEN_USAGE",
    "GEN_AI_CLIENT_OPERATION_DURATION",
    "TOKEN_USAGE_BUCKETS",
    "DURATION_BUCKETS",
    "SERVER_ADDRESS",
    "SERVER_PORT",
    "SESSION_ID",
    "USER_ID",
    "TAG_TAGS",
    "METADATA",
    "ERROR_TYPE",
    "EMBEDDINGS_SPAN_OPERATION",
    # tlm.*
    "TLM_TASK_ID",
    "TLM_TASK_VERSION",
    "TLM_EXECUTION_ID",
    "TLM_INPUT",
    "TLM_OUTPUT",
    "TLM_OPTIONS",
    "TLM_PROMPT",
    "TLM_PROMPT_SYSTEM",
    "TLM_PROMPT_VARIANT",
    "TLM_MODELS_USED",
    "TLM_STATUS",
    "TLM_ERROR_MESSAGE",
    "TLM_COST_USD",
    "TLM_COST_SOURCE",
    "TLM_USAGE_INPUT_TOKENS",
    "TLM_USAGE_OUTPUT_TOKENS",
    "TLM_CACHE_HIT",
    "TLM_FALLBACK",
    "TLM_SELECTION",
    "TLM_ATTEMPTS",
    "TLM_ATTEMPT_OUTCOMES",
    "TLM_ATTEMPT_COSTS_USD",
    "TLM_QUEUE_WAIT_MS",
    "TLM_BUDGET_PREFIX",
    "TLM_VERIFICATION_METHOD",
    "TLM_VERIFICATION_PASSED",
    "TLM_VERIFICATION_CONFIDENCE",
    "TLM_VERIFICATION_DETAILS",
    "TLM_BATCH_ID",
    "TLM_BATCH_CUSTOM_ID",
    "TLM_BATCH_RUN_ID",
    "TLM_REQUEST_MODEL",
    "TLM_COST_INPUT_USD",
    "TLM_COST_OUTPUT_USD",
    "TLM_EMBEDDING_COUNT",
    "TLM_EXECUTIONS",
    "TLM_VERIFICATIONS",
    "TLM_COST",
    "CONTENT_ATTRIBUTES",
)

SEMCONV_VERSION: Final = "1.44.0"
"""The OpenTelemetry semantic-conventions version whose ``gen_ai.*`` attributes TLM follows."""
SCHEMA_URL: Final = f"https://opentelemetry.io/schemas/{SEMCONV_VERSION}"
INSTRUMENTATION_NAME: Final = "tlm"

EXECUTE_SPAN: Final = "tlm.execute"
"""Root span of one execution; the full name is ``tlm.execute {task_id}``."""
VERIFY_SPAN: Final = "tlm.verify"
"""Verification span; the full name is ``tlm.verify {method}``."""

# --- OpenTelemetry GenAI semantic conventions -------------------------------------------------
GEN_AI_OPERATION_NAME: Final = "gen_ai.operation.name"
GEN_AI_PROVIDER_NAME: Final = "gen_ai.provider.name"
GEN_AI_REQUEST_MODEL: Final = "gen_ai.request.model"
GEN_AI_REQUEST_TEMPERATURE: Final = "gen_ai.request.temperature"
GEN_AI_REQUEST_MAX_TOKENS: Final = "gen_ai.request.max_tokens"
GEN_AI_REQUEST_SEED: Final = "gen_ai.request.seed"
GEN_AI_RESPONSE_ID: Final = "gen_ai.response.id"
GEN_AI_RESPONSE_MODEL: Final = "gen_ai.response.model"
GEN_AI_RESPONSE_FINISH_REASONS: Final = "gen_ai.response.finish_reasons"
GEN_AI_USAGE_INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: Final = "gen_ai.usage.cache_read.input_tokens"
GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: Final = "gen_ai.usage.reasoning.output_tokens"
GEN_AI_EVALUATION_NAME: Final = "gen_ai.evaluation.name"
GEN_AI_EVALUATION_SCORE_VALUE: Final = "gen_ai.evaluation.score.value"
GEN_AI_EVALUATION_SCORE_LABEL: Final = "gen_ai.evaluation.score.label"
GEN_AI_EVALUATION_EXPLANATION: Final = "gen_ai.evaluation.explanation"
GEN_AI_INPUT_MESSAGES: Final = "gen_ai.input.messages"
GEN_AI_OUTPUT_MESSAGES: Final = "gen_ai.output.messages"
GEN_AI_SYSTEM_INSTRUCTIONS: Final = "gen_ai.system_instructions"
GEN_AI_OUTPUT_TYPE: Final = "gen_ai.output.type"
"""``json`` when the request carries an output schema, else ``text``."""
GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS: Final = "gen_ai.usage.cache_creation.input_tokens"
"""Input tokens written to the provider's prompt cache (included in ``input_tokens``)."""
GEN_AI_WORKFLOW_NAME: Final = "gen_ai.workflow.name"
GEN_AI_CONVERSATION_ID: Final = "gen_ai.conversation.id"
GEN_AI_EVALUATION_RESULT: Final = "gen_ai.evaluation.result"
"""The event name of a verdict, recorded on the span whose output it judges."""
GEN_AI_TOKEN_TYPE: Final = "gen_ai.token.type"
GEN_AI_CLIENT_TOKEN_USAGE: Final = "gen_ai.client.token.usage"
GEN_AI_CLIENT_OPERATION_DURATION: Final = "gen_ai.client.operation.duration"
TOKEN_USAGE_BUCKETS: Final = (
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
)  # fmt: skip
"""The conventions' advisory bucket boundaries of ``gen_ai.client.token.usage``."""
DURATION_BUCKETS: Final = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)  # fmt: skip
"""The conventions' advisory bucket boundaries of ``gen_ai.client.operation.duration`` (s)."""
EMBEDDINGS_SPAN_OPERATION: Final = "embeddings"
SERVER_ADDRESS: Final = "server.address"
SERVER_PORT: Final = "server.port"
SESSION_ID: Final = "session.id"
USER_ID: Final = "user.id"
TAG_TAGS: Final = "tag.tags"
"""The execution's tags (OpenInference's name; Langfuse reads it as trace tags)."""
METADATA: Final = "metadata"
"""The execution's metadata as a JSON object of strings (OpenInference's name)."""
ERROR_TYPE: Final = "error.type"

# --- TLM's own attributes ---------------------------------------------------------------------
TLM_TASK_ID: Final = "tlm.task.id"
TLM_TASK_VERSION: Final = "tlm.task.version"
TLM_EXECUTION_ID: Final = "tlm.execution.id"
TLM_INPUT: Final = "tlm.input"
"""The task input as compact JSON, configured fields redacted (content)."""
TLM_OUTPUT: Final = "tlm.output"
"""The task output as compact JSON, configured fields redacted (content)."""
TLM_OPTIONS: Final = "tlm.options"
TLM_PROMPT: Final = "tlm.prompt"
"""The rendered user prompt (content)."""
TLM_PROMPT_SYSTEM: Final = "tlm.prompt.system"
"""The rendered system prompt, when there is one (content)."""
TLM_PROMPT_VARIANT: Final = "tlm.prompt.variant"
TLM_MODELS_USED: Final = "tlm.models_used"
TLM_STATUS: Final = "tlm.status"
TLM_ERROR_MESSAGE: Final = "tlm.error.message"
TLM_COST_USD: Final = "tlm.cost.usd"
TLM_COST_SOURCE: Final = "tlm.cost.source"
TLM_USAGE_INPUT_TOKENS: Final = "tlm.usage.input_tokens"
TLM_USAGE_OUTPUT_TOKENS: Final = "tlm.usage.output_tokens"
TLM_CACHE_HIT: Final = "tlm.cache_hit"
TLM_FALLBACK: Final = "tlm.fallback"
TLM_SELECTION: Final = "tlm.selection"
"""Why the models were ordered as they were (the input-aware selector's explanation, JSON)."""
TLM_ATTEMPTS: Final = "tlm.attempts"
TLM_ATTEMPT_OUTCOMES: Final = "tlm.attempt.outcomes"
"""Per request sent for one model call: ``ok`` or the error class, with the HTTP status."""
TLM_ATTEMPT_COSTS_USD: Final = "tlm.attempt.costs_usd"
"""Per request sent for one model call: its cost in USD (failed replies report no usage: 0)."""
TLM_QUEUE_WAIT_MS: Final = "tlm.queue_wait_ms"
"""Milliseconds a model call waited for its provider's and model's limits (slots, rate buckets)."""
TLM_BUDGET_PREFIX: Final = "tlm.budget."
"""Budget facts, e.g. ``tlm.budget.limit_usd``, ``tlm.budget.remaining_usd``."""
TLM_VERIFICATION_METHOD: Final = "tlm.verification.method"
TLM_VERIFICATION_PASSED: Final = "tlm.verification.passed"
TLM_VERIFICATION_CONFIDENCE: Final = "tlm.verification.confidence"
TLM_VERIFICATION_DETAILS: Final = "tlm.verification.details"
"""Method-specific verification facts as compact JSON (content: may quote outputs)."""
TLM_REQUEST_MODEL: Final = "tlm.request.model"
"""The catalog model id (``gen_ai.request.model`` carries the provider's own model name)."""
TLM_COST_INPUT_USD: Final = "tlm.cost.input_usd"
TLM_COST_OUTPUT_USD: Final = "tlm.cost.output_usd"
TLM_EMBEDDING_COUNT: Final = "tlm.embedding.count"
"""How many texts one embeddings call embedded."""
# metrics of TLM's own
TLM_EXECUTIONS: Final = "tlm.executions"
TLM_VERIFICATIONS: Final = "tlm.verifications"
TLM_COST: Final = "tlm.cost"

TLM_BATCH_ID: Final = "tlm.batch.id"
"""The provider batch (OpenAI batch id, Anthropic message batch id) that answered the call."""
TLM_BATCH_CUSTOM_ID: Final = "tlm.batch.custom_id"
"""The request's ``custom_id`` in that provider batch."""
TLM_BATCH_RUN_ID: Final = "tlm.batch.run_id"
"""The ``tlm batch`` run the execution belongs to."""

CONTENT_ATTRIBUTES: Final = frozenset(
    {
        TLM_INPUT,
        TLM_OUTPUT,
        TLM_OPTIONS,
        TLM_PROMPT,
        TLM_PROMPT_SYSTEM,
        TLM_VERIFICATION_DETAILS,
        GEN_AI_EVALUATION_EXPLANATION,
        GEN_AI_INPUT_MESSAGES,
        GEN_AI_OUTPUT_MESSAGES,
        GEN_AI_SYSTEM_INSTRUCTIONS,
    }
)
"""Attributes carrying message content: kept in the local store, stripped before third-party
export unless ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` allows them."""
