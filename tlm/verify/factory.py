"""Build the verifier a definition's ``verification`` section asks for.

:func:`create_verifier` builds every method registered in :data:`tlm.verify.methods.METHODS`
with that method's builder; a chain's steps are built recursively and ordered cheapest first
(by :func:`tlm.verify.methods.cost_rank`; stable otherwise).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from tlm.errors import DefinitionError
from tlm.verify.base import NoVerifier, Verifier
from tlm.verify.egress import ExternalPolicy
from tlm.verify.methods import METHODS, BuildContext, cost_rank
from tlm.verify.params import NoParams, VerificationSpec

if TYPE_CHECKING:
    import aiohttp

    from tlm.engine.config import EngineConfig
    from tlm.learn.cascade import CascadePlan
    from tlm.similarity import MetricRegistry
    from tlm.verify.cascade import PlanSource
    from tlm.verify.external import ExternalFunction
    from tlm.verify.review_queue import ReviewQueue

__all__ = (
    "NoVerifier",
    "create_verifier",
    "external_policy",
    "order_cheapest_first",
)


def order_cheapest_first(steps: Sequence[VerificationSpec]) -> list[VerificationSpec]:
    """Steps sorted by :func:`tlm.verify.methods.cost_rank`, keeping the given order among
    equals."""
    return sorted(steps, key=cost_rank)


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
    method = METHODS.get(spec.method)
    if method is None:
        known = ", ".join(METHODS.names())
        raise DefinitionError(
            f"unknown verification method {spec.method!r} (known: {known}) @ {_path}.method"
        )
    params = spec.parameters
    if method.parameters is NoParams and not isinstance(params, NoParams):
        params = NoParams()  # a method without parameters ignores any it is given
    if not isinstance(params, method.parameters):
        raise DefinitionError(
            f"verification method {spec.method!r} needs {method.parameters.__name__}, got "
            f"{type(params).__name__} @ {_path}.parameters"
        )

    def build_step(step: VerificationSpec, path: str) -> Verifier:
        return create_verifier(
            step,
            metrics=metrics,
            functions=functions,
            review_queue=review_queue,
            session=session,
            policy=policy,
            cascade_plans=cascade_plans,
            _path=path,
        )

    context = BuildContext(
        path=_path,
        build_step=build_step,
        metrics=metrics,
        functions=functions or {},
        review_queue=review_queue,
        session=session,
        policy=policy,
        cascade_plans=cascade_plans,
    )
    return method.build(params, context)
