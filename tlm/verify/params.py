"""The parameters of each verification method, and a definition's verification section.

Each method's parameter class is named by its record in :mod:`tlm.verify.methods`; the definition
model (:mod:`tlm.definition.model`) re-exports these classes, and the one converter
(:mod:`tlm.definition.serde`) structures ``verification.parameters`` into the class the method's
record names.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import attrs

__all__ = (
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
)

JSON = Any
"""A JSON value as :func:`json.loads` returns it."""


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


VerificationParams = (  # the built-in methods' parameters
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
    """One of :data:`tlm.definition.model.FALLBACK_STRATEGIES`."""
    value: JSON = None
    """The output to return for ``default_value``."""


@attrs.frozen
class VerificationSpec:
    """How a task's outputs are verified and what happens when verification fails."""

    method: str = "none"
    """A method registered in :mod:`tlm.verify.methods`."""
    parameters: attrs.AttrsInstance = attrs.field(factory=NoParams)
    """An instance of the method's parameter class (one of :data:`VerificationParams` for the
    built-in methods)."""
    fallback: FallbackSpec = attrs.field(factory=FallbackSpec)
