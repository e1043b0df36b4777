"""Build the verifier a definition's ``verification`` section asks for.

:func:`create_verifier` covers every method in
:data:`tlm.definition.model.VERIFICATION_METHODS`; a chain's steps are built recursively and
ordered cheapest first (none < external < hierarchical < consensus < human; stable otherwise).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from tlm.definition.model import (
    CascadeParams,
    ChainParams,
    ConsensusParams,
    ExternalParams,
    HierarchicalParams,
    HumanParams,
    NoParams,
    VerificationSpec,
)
from tlm.errors import ConfigurationError, DefinitionError
from tlm.verify.base import NoVerifier, Verifier
from tlm.verify.chain import ChainVerifier
from tlm.verify.egress import ExternalPolicy
from tlm.verify.external import ExternalFunction, ExternalVerifier
from tlm.verify.hierarchical import HierarchicalVerifier
from tlm.verify.human import HumanVerifier
from tlm.verify.review_queue import ReviewQueue

if TYPE_CHECKING:
    import aiohttp

    from tlm.engine.config import EngineConfig
    from tlm.learn.cascade import CascadePlan
    from tlm.similarity import MetricRegistry
    from tlm.verify.cascade import PlanSource

__all__ = (
    "METHOD_COST_RANK",
    "NoVerifier",
    "create_verifier",
    "external_policy",
    "order_cheapest_first",
)

METHOD_COST_RANK: Mapping[str, int] = {
    "none": 0,
    "external": 1,
    "hierarchical": 2,
    "consensus": 3,
    "cascade": 3,
    "human": 4,
}
"""How expensive each method is, relative to the others (a chain ranks as its dearest step)."""

_PARAMS_TYPE: Mapping[str, type] = {
    "none": NoParams,
    "consensus": ConsensusParams,
    "hierarchical": HierarchicalParams,
    "external": ExternalParams,
    "human": HumanParams,
    "chain": ChainParams,
    "cascade": CascadeParams,
}


def _rank(spec: VerificationSpec) -> int:
    if spec.method == "chain" and isinstance(spec.parameters, ChainParams):
        return max((_rank(step) for step in spec.parameters.steps), default=0)
    return METHOD_COST_RANK.get(spec.method, len(METHOD_COST_RANK))


def order_cheapest_first(steps: Sequence[VerificationSpec]) -> list[VerificationSpec]:
    """Steps sorted by :data:`METHOD_COST_RANK`, keeping the given order among equals."""
    return sorted(steps, key=_rank)


def external_policy(config: EngineConfig) -> ExternalPolicy:
    """External verifiers' policy from an engine's configuration (``external_*``, ``redact``)."""
    return ExternalPolicy(
        hosts=config.external_hosts,
        env=config.external_env,
        unredacted=config.external_unredacted,
        redact=config.redact,
        environ=config.env,
    )


def create_verifier(
    spec: VerificationSpec,
    *,
    metrics: MetricRegistry | None = None,
    functions: Mapping[str, ExternalFunction] | None = None,
    review_queue: ReviewQueue | None = None,
    session: aiohttp.ClientSession | None = None,
    policy: ExternalPolicy | None = None,
    cascade_plans: PlanSource | Mapping[str, CascadePlan] | None = None,
    _path: str = "$.verification",
) -> Verifier:
    """The verifier for ``spec``.

    Args:
        spec: the definition's verification section.
        metrics: the similarity metrics consensus may name; default
            :func:`tlm.similarity.default_metrics` (imported only for consensus).
        functions: async functions that ``external`` verification may name.
        review_queue: where ``human`` verification puts outputs.
        session: an aiohttp session ``external`` endpoints are called through.
        policy: what ``external`` verifiers may reach, expand and send (default: loopback
            only, no environment variables; see :mod:`tlm.verify.egress`).
        cascade_plans: learned cascade plans by task id, for ``"ladder": "learned"``.

    Raises:
        DefinitionError: unknown method, or parameters that do not belong to the method.
        ConfigurationError: ``human`` without a review queue, an unregistered external function,
            or an unknown similarity metric.
    """
    method = spec.method
    expected = _PARAMS_TYPE.get(method)
    if expected is None:
        known = ", ".join(_PARAMS_TYPE)
        raise DefinitionError(
            f"unknown verification method {method!r} (known: {known}) @ {_path}.method"
        )
    params = spec.parameters
    if method == "none" and not isinstance(params, NoParams):
        params = NoParams()  # parameters of "none" are ignored
    if not isinstance(params, expected):
        raise DefinitionError(
            f"verification method {method!r} needs {expected.__name__}, got "
            f"{type(params).__name__} @ {_path}.parameters"
        )
    if isinstance(params, NoParams):
        return NoVerifier()
    if isinstance(params, HierarchicalParams):
        return HierarchicalVerifier(params)
    if isinstance(params, ExternalParams):
        return ExternalVerifier(
            params, functions=functions or {}, session=session, policy=policy or ExternalPolicy()
        )
    if isinstance(params, HumanParams):
        if review_queue is None:
            raise ConfigurationError(
                f"human verification needs a review queue ({_path} uses method 'human')"
            )
        return HumanVerifier(params, review_queue)
    if isinstance(params, ConsensusParams):
        return _consensus(params, metrics, _path)
    if isinstance(params, CascadeParams):
        from tlm.verify.cascade import CascadeVerifier  # lazy, like consensus

        try:
            return CascadeVerifier.from_params(params, metrics, plans=cascade_plans)
        except ConfigurationError as exc:
            raise ConfigurationError(f"{exc} @ {_path}.parameters.similarity_metric") from None
    assert isinstance(params, ChainParams)
    indexed = sorted(enumerate(params.steps), key=lambda pair: _rank(pair[1]))
    steps = [
        create_verifier(
            step,
            metrics=metrics,
            functions=functions,
            review_queue=review_queue,
            session=session,
            policy=policy,
            cascade_plans=cascade_plans,
            _path=f"{_path}.parameters.steps[{index}]",
        )
        for index, step in indexed
    ]
    return ChainVerifier(steps)


def _consensus(params: ConsensusParams, metrics: MetricRegistry | None, path: str) -> Verifier:
    from tlm.verify.consensus import ConsensusVerifier  # lazy: pulls in numpy and the metrics

    try:
        return ConsensusVerifier.from_params(params, metrics)
    except ConfigurationError as exc:
        raise ConfigurationError(f"{exc} @ {path}.parameters.similarity_metric") from None
