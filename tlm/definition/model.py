"""The task-definition model: frozen attrs classes mirroring ``task-definition-v1.json``.

A definition is loaded from JSON by :mod:`tlm.definition.loader`, which checks the JSON Schema
first, then structures the document into these classes with the one converter in
:mod:`tlm.definition.serde`, then runs the checks that a schema cannot express.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from tlm.verify.methods import METHODS
from tlm.verify.params import (
    CascadeAccept,
    CascadeParams,
    ChainParams,
    ConsensusParams,
    ExternalParams,
    FallbackSpec,
    HierarchicalParams,
    HumanParams,
    NoParams,
    VerificationParams,
    VerificationSpec,
)

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

VERIFICATION_METHODS: tuple[str, ...] = METHODS.names()
"""The built-in verification methods (each a record in :mod:`tlm.verify.methods`; the methods
registered there later are accepted too)."""
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
