"""The task-definition model: frozen attrs classes mirroring ``task-definition-v1.json``.

A definition is loaded from JSON by :mod:`tlm.definition.loader`, which checks the JSON Schema
first, then structures the document into these classes with the one converter in
:mod:`tlm.definition.serde`, then runs the checks that a schema cannot express.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import attrs

__all__ = (
    "IOSpec",
    "PromptVariant",
    "ConsensusParams",
    "HierarchicalParams",
    "ExternalParams",
    "HumanParams",
    "ChainParams",
    "CascadeParams",
    "CascadeAccept",
    "NoParams",
    "VerificationParams",
    "VerificationSpec",
    "FallbackSpec",
    "RankingCriteria",
    "Budget",
    "CacheSpec",
    "TaskDefinition",
    "VERIFICATION_METHODS",
    "FALLBACK_STRATEGIES",
    "RISK_LEVELS",
    "CONTEXT_SIZES",
)

JSON = Any
"""A JSON value as :func:`json.loads` returns it."""

VERIFICATION_METHODS = (
    "none",
    "consensus",
    "hierarchical",
    "external",
    "human",
    "chain",
    "cascade",
)
FALLBACK_STRATEGIES = (
    "use_highest_ranked_model",
    "next_model",
    "retry_with_variant",
    "human_review",
    "fail",
    "default_value",
)
RISK_LEVELS = ("low", "medium", "high", "critical")
CONTEXT_SIZES = ("small", "medium", "large", "xlarge")
"""Named context sizes; see :data:`tlm.definition.model.CONTEXT_TOKENS`."""

CONTEXT_TOKENS: Mapping[str, int] = {
    "small": 4_096,
    "medium": 16_384,
    "large": 65_536,
    "xlarge": 200_000,
}


@attrs.frozen
class IOSpec:
    """The input or output side of a task."""

    schema: Mapping[str, JSON]
    """JSON Schema (draft 2020-12) the value must satisfy."""
    examples: tuple[JSON, ...] = ()
    """Example values; each is checked against ``schema`` and ``validations`` at load time."""
    validations: tuple[str, ...] = ()
    """Names of validation rules from the rule registry, e.g. ``min_length_100``."""


@attrs.frozen
class PromptVariant:
    """One prompt template and when to use it."""

    id: str
    text: str
    """Template text with strict ``{{variable}}`` placeholders."""
    template_variables: tuple[str, ...]
    usage_conditions: Mapping[str, JSON] = attrs.field(factory=dict)
    """``{"default": true}``, ``{"when": "context_provided"}`` or ``{"when": "<condition>"}``."""
    system: str | None = None
    """Optional system message sent before the rendered prompt."""

    @property
    def is_default(self) -> bool:
        """Whether this variant is the task's default."""
        return bool(self.usage_conditions.get("default", False))


@attrs.frozen
class ConsensusParams:
    """Consensus across distinct models."""

    similarity_threshold: float = 0.8
    min_models: int = 2
    max_models: int = 3
    consensus_count: int | None = None
    """How many models must agree; ``None`` means ``min_models``."""
    similarity_metric: str = "structured"
    models: tuple[str, ...] = ()
    """Explicit model ids to consult, in rank order; empty means chosen by ranking."""
    field_weights: Mapping[str, float] = attrs.field(factory=dict)
    """For the structured metric: weight per top-level field (default 1)."""

    @property
    def quorum(self) -> int:
        """The number of agreeing models needed to pass."""
        return self.consensus_count if self.consensus_count is not None else self.min_models


@attrs.frozen
class HierarchicalParams:
    """A verifier model reviews the primary model's output."""

    verification_prompt: str
    min_confidence: float = 0.8
    verifier_model: str | None = None
    correction_round: bool = False
    """Send the verifier's issues back to the primary once and verify again."""


@attrs.frozen
class ExternalParams:
    """An HTTP endpoint or a registered async function checks the output."""

    endpoint: str | None = None
    function: str | None = None
    timeout_s: float = 10.0
    retries: int = 2
    headers: Mapping[str, str] = attrs.field(factory=dict)


@attrs.frozen
class HumanParams:
    """A person reviews the output through the review queue."""

    queue: str = "default"
    timeout_s: float | None = None
    default_action: Literal["approve", "reject", "fallback"] = "fallback"
    wait: bool = False
    """Whether ``execute`` waits for the decision (up to ``timeout_s``) or returns a pending one."""


@attrs.frozen
class ChainParams:
    """Several verification methods in order, cheapest first, stopping at the first decisive one."""

    steps: tuple[VerificationSpec, ...]


@attrs.frozen
class CascadeAccept:
    """When a cascade accepts an answer below the top of its ladder."""

    agreement: int = 2
    """Answers (from distinct models, so far) that must agree."""
    min_confidence: float = 0.0
    """The learned probability that such an agreeing answer is right, at least (0: agreement
    alone decides, as before anything is learned)."""


@attrs.frozen
class CascadeParams:
    """A verified cascade: cheap models first, escalating up a ladder until an answer is trusted.

    ``ladder`` is a list of rungs (a model id, or several asked together), cheapest first; with
    ``learned`` the ladder and the acceptance thresholds come from the execution log (see
    :mod:`tlm.learn.cascade`), chosen among ``models`` to reach ``target_quality`` at least cost,
    or the best quality within ``max_cost_usd`` per execution.
    """

    ladder: tuple[tuple[str, ...], ...] = ()
    """The rungs, cheapest first; empty when ``learned``."""
    learned: bool = False
    models: tuple[str, ...] = ()
    """Candidates of a learned ladder (default: the configured models)."""
    accept: CascadeAccept = attrs.field(factory=CascadeAccept)
    similarity_metric: str = "structured"
    similarity_threshold: float = 0.9
    field_weights: Mapping[str, float] = attrs.field(factory=dict)
    """For the structured metric: weight per top-level field (default 1; 0 ignores a field)."""
    target_quality: float | None = None
    max_cost_usd: float | None = None

    @property
    def first_rung(self) -> tuple[str, ...]:
        """The models asked first (empty for a learned ladder)."""
        return self.ladder[0] if self.ladder else ()


@attrs.frozen
class NoParams:
    """No verification beyond the output schema and rules."""


VerificationParams = (
    ConsensusParams
    | HierarchicalParams
    | ExternalParams
    | HumanParams
    | ChainParams
    | CascadeParams
    | NoParams
)


@attrs.frozen
class FallbackSpec:
    """What to do when validation or verification fails."""

    strategy: str = "fail"
    """One of :data:`FALLBACK_STRATEGIES`."""
    value: JSON = None
    """The output to return for ``default_value``."""


@attrs.frozen
class VerificationSpec:
    """How a task's outputs are verified and what happens when verification fails."""

    method: str = "none"
    parameters: VerificationParams = attrs.field(factory=NoParams)
    fallback: FallbackSpec = attrs.field(factory=FallbackSpec)


@attrs.frozen
class RankingCriteria:
    """How models are ranked for this task."""

    quality_priority: float = 0.7
    speed_priority: float = 0.3
    cost_priority: float = 0.0
    context_size: str = "medium"
    """One of :data:`CONTEXT_SIZES`: the context window a model needs."""
    preferred_models: tuple[str, ...] = ()
    """Model ids to try first, in order, before ranking the rest."""


@attrs.frozen
class Budget:
    """Per-execution limits; a call may tighten them further."""

    max_cost_usd: float | None = None
    deadline_s: float | None = None
    max_attempts: int | None = None


@attrs.frozen
class CacheSpec:
    """Result caching for this task."""

    enabled: bool = True
    ttl_s: float | None = 86_400.0
    """Seconds a cached result stays valid; ``None`` keeps it forever."""


@attrs.frozen
class TaskDefinition:
    """One version of one task, as declared in ``definitions/tasks/<id>/<version>.json``."""

    id: str
    name: str
    description: str
    version: str
    input: IOSpec
    output: IOSpec
    prompts: tuple[PromptVariant, ...]
    verification: VerificationSpec = attrs.field(factory=VerificationSpec)
    model_ranking_criteria: RankingCriteria = attrs.field(factory=RankingCriteria)
    task_type: str | None = None
    """A coarse kind (``extraction``, ``classification``, ...) used for cold-start priors."""
    tags: tuple[str, ...] = ()
    depends_on: tuple[str, ...] = ()
    """Task ids (optionally ``id@range``) whose outputs this task consumes."""
    budget: Budget = attrs.field(factory=Budget)
    cache: CacheSpec = attrs.field(factory=CacheSpec)
    risk: str = "medium"
    """One of :data:`RISK_LEVELS`; sets how thorough verification is."""
    source: str | None = attrs.field(default=None, eq=False)
    """The file this definition was loaded from, if any."""

    @property
    def key(self) -> str:
        """``id@version``."""
        return f"{self.id}@{self.version}"

    @property
    def default_prompt(self) -> PromptVariant:
        """The variant marked ``{"default": true}`` (the loader guarantees exactly one)."""
        for prompt in self.prompts:
            if prompt.is_default:
                return prompt
        return self.prompts[0]

    def prompt(self, prompt_id: str) -> PromptVariant:
        """The variant with this id; raises ``KeyError`` if there is none."""
        for prompt in self.prompts:
            if prompt.id == prompt_id:
                return prompt
        raise KeyError(prompt_id)
