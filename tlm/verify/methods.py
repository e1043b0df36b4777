"""Every verification method, one record each: its name, parameter class, cost rank and builder.

:data:`METHODS` is the one registry. The definition model, schema and converter
(:mod:`tlm.definition`) accept exactly the methods it holds and structure their parameters into
the record's class; :func:`tlm.verify.factory.create_verifier` builds a verifier with the record's
builder; a chain orders its steps by :func:`cost_rank`; cold start
(:mod:`tlm.learn.coldstart`) reads the same rank as a method's strictness; the engine opens an
HTTP session only for methods that :func:`calls_out`, and starts a method's
:func:`voters_ahead` beside the primary call. Adding a method means registering one record::

    METHODS.register(VerificationMethod("regex", RegexParams, cost_rank=1, build=build_regex))

The verifier modules are imported by the builders, on first use, so importing this module (which
every definition load does) pulls in neither aiohttp nor numpy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from tlm.errors import ConfigurationError
from tlm.verify.params import (
    CascadeParams,
    ChainParams,
    ConsensusParams,
    ExternalParams,
    HierarchicalParams,
    HumanParams,
    NoParams,
    VerificationSpec,
)

if TYPE_CHECKING:
    import aiohttp

    from tlm.learn.cascade import CascadePlan
    from tlm.similarity import MetricRegistry
    from tlm.verify.base import Verifier
    from tlm.verify.cascade import PlanSource
    from tlm.verify.egress import ExternalPolicy
    from tlm.verify.external import ExternalFunction
    from tlm.verify.review_queue import ReviewQueue

__all__ = (
    "BuildContext",
    "Builder",
    "VerificationMethod",
    "MethodRegistry",
    "METHODS",
    "cost_rank",
    "calls_out",
    "steps_of",
    "voters_ahead",
)


@attrs.frozen
class BuildContext:
    """What a builder may draw on: the engine's parts, and where in the definition it is."""

    path: str
    """The JSON path of the verification section being built (e.g. ``$.verification``)."""
    build_step: Callable[[VerificationSpec, str], Verifier]
    """Builds a nested verification section found at a JSON path (a chain's steps)."""
    metrics: MetricRegistry | None = None
    functions: Mapping[str, ExternalFunction] = attrs.field(factory=dict)
    review_queue: ReviewQueue | None = None
    session: aiohttp.ClientSession | None = None
    policy: ExternalPolicy | None = None
    cascade_plans: PlanSource | Mapping[str, CascadePlan] | None = None


Builder = Callable[[Any, BuildContext], "Verifier"]
"""Builds the verifier for one method's parameters (an instance of the record's class)."""


@attrs.frozen
class VerificationMethod:
    """One verification method."""

    name: str
    """The ``verification.method`` value that selects it."""
    parameters: type[attrs.AttrsInstance]
    """The attrs class ``verification.parameters`` is structured into."""
    cost_rank: int
    """How expensive and how thorough the method is, relative to the others (0 = nothing
    checked): a chain runs its cheapest steps first, and cold start keeps a method at least as
    strict as consensus. A composite method ranks as its dearest step."""
    build: Builder
    parameters_schema: Mapping[str, Any] | None = None
    """The JSON Schema of the parameters, for a method registered at run time (the built-in
    methods' schemas are in ``task-definition-v1.json``); ``None``: any JSON object."""
    steps: Callable[[Any], Sequence[VerificationSpec]] | None = None
    """For a composite method (a chain): the nested verification sections of its parameters."""
    calls_out: bool = False
    """Whether the verifier POSTs to an external endpoint (it then gets an HTTP session)."""
    voters: Callable[[Any], int] | None = None
    """How many other models the verifier will surely ask for the same task (consensus): the
    engine starts those calls beside the primary one."""


class MethodRegistry:
    """The verification methods by name, in registration order."""

    def __init__(self, methods: Sequence[VerificationMethod] = ()) -> None:
        self._methods: dict[str, VerificationMethod] = {}
        self.version = 0
        """Bumped at every change, so derived tables (the definition schema) can be rebuilt."""
        for method in methods:
            self.register(method)

    def register(self, method: VerificationMethod, *, replace: bool = False) -> None:
        """Add ``method``.

        Raises:
            ConfigurationError: a method of that name exists (unless ``replace``), or its
                parameter class is not an attrs class.
        """
        if method.name in self._methods and not replace:
            raise ConfigurationError(f"verification method {method.name!r} is already registered")
        if not attrs.has(method.parameters):
            raise ConfigurationError(
                f"verification method {method.name!r}: parameters must be an attrs class, not "
                f"{method.parameters!r}"
            )
        self._methods[method.name] = method
        self.version += 1

    def unregister(self, name: str) -> None:
        """Remove the method ``name`` (raises ``KeyError`` if there is none)."""
        del self._methods[name]
        self.version += 1

    def get(self, name: str) -> VerificationMethod | None:
        """The method ``name``, or ``None``."""
        return self._methods.get(name)

    def names(self) -> tuple[str, ...]:
        """Every method's name, in registration order."""
        return tuple(self._methods)

    def __getitem__(self, name: str) -> VerificationMethod:
        return self._methods[name]

    def __contains__(self, name: object) -> bool:
        return name in self._methods

    def __iter__(self) -> Iterator[VerificationMethod]:
        return iter(tuple(self._methods.values()))

    def __len__(self) -> int:
        return len(self._methods)


def steps_of(
    spec: VerificationSpec, registry: MethodRegistry | None = None
) -> Sequence[VerificationSpec]:
    """The nested sections of a composite ``spec`` (a chain's steps); empty otherwise."""
    method = (registry or METHODS).get(spec.method)
    if method is None or method.steps is None or not isinstance(spec.parameters, method.parameters):
        return ()
    return method.steps(spec.parameters)


def cost_rank(spec: VerificationSpec, registry: MethodRegistry | None = None) -> int:
    """How expensive and thorough ``spec`` is: its method's rank, or its dearest step's.

    An unknown method ranks above every known one.
    """
    methods = registry or METHODS
    method = methods.get(spec.method)
    if method is None:
        return max((m.cost_rank for m in methods), default=0) + 1
    return max([method.cost_rank, *(cost_rank(s, methods) for s in steps_of(spec, methods))])


def calls_out(spec: VerificationSpec, registry: MethodRegistry | None = None) -> bool:
    """Whether verification ``spec`` POSTs to an external endpoint (directly or in a step)."""
    methods = registry or METHODS
    method = methods.get(spec.method)
    if method is not None and method.calls_out:
        return True
    return any(calls_out(step, methods) for step in steps_of(spec, methods))


def voters_ahead(spec: VerificationSpec, registry: MethodRegistry | None = None) -> int:
    """How many second opinions ``spec``'s verifier will ask for first (0 for most methods)."""
    method = (registry or METHODS).get(spec.method)
    if method is None or method.voters is None:
        return 0
    if not isinstance(spec.parameters, method.parameters):
        return 0
    return max(method.voters(spec.parameters), 0)


# --- the built-in methods ---------------------------------------------------------------------


def _none(params: NoParams, context: BuildContext) -> Verifier:
    from tlm.verify.base import NoVerifier

    return NoVerifier()


def _consensus(params: ConsensusParams, context: BuildContext) -> Verifier:
    from tlm.verify.consensus import ConsensusVerifier  # numpy and the metrics

    try:
        return ConsensusVerifier.from_params(params, context.metrics)
    except ConfigurationError as exc:
        raise ConfigurationError(f"{exc} @ {context.path}.parameters.similarity_metric") from None


def _hierarchical(params: HierarchicalParams, context: BuildContext) -> Verifier:
    from tlm.verify.hierarchical import HierarchicalVerifier

    return HierarchicalVerifier(params)


def _external(params: ExternalParams, context: BuildContext) -> Verifier:
    from tlm.verify.egress import ExternalPolicy  # aiohttp
    from tlm.verify.external import ExternalVerifier

    return ExternalVerifier(
        params,
        functions=context.functions,
        session=context.session,
        policy=context.policy or ExternalPolicy(),
    )


def _human(params: HumanParams, context: BuildContext) -> Verifier:
    from tlm.verify.human import HumanVerifier

    if context.review_queue is None:
        raise ConfigurationError(
            f"human verification needs a review queue ({context.path} uses method 'human')"
        )
    return HumanVerifier(params, context.review_queue)


def _chain(params: ChainParams, context: BuildContext) -> Verifier:
    from tlm.verify.chain import ChainVerifier

    # Cheapest first; sorted() is stable, so equals keep the author's order.
    indexed = sorted(enumerate(params.steps), key=lambda pair: cost_rank(pair[1]))
    return ChainVerifier(
        [
            context.build_step(step, f"{context.path}.parameters.steps[{index}]")
            for index, step in indexed
        ]
    )


def _cascade(params: CascadeParams, context: BuildContext) -> Verifier:
    from tlm.verify.cascade import CascadeVerifier

    try:
        return CascadeVerifier.from_params(params, context.metrics, plans=context.cascade_plans)
    except ConfigurationError as exc:
        raise ConfigurationError(f"{exc} @ {context.path}.parameters.similarity_metric") from None


def _chain_steps(params: ChainParams) -> Sequence[VerificationSpec]:
    return params.steps


def _consensus_voters(params: ConsensusParams) -> int:
    return params.min_models - 1


METHODS = MethodRegistry(
    [
        VerificationMethod("none", NoParams, cost_rank=0, build=_none),
        VerificationMethod(
            "consensus", ConsensusParams, cost_rank=3, build=_consensus, voters=_consensus_voters
        ),
        VerificationMethod("hierarchical", HierarchicalParams, cost_rank=2, build=_hierarchical),
        VerificationMethod(
            "external", ExternalParams, cost_rank=1, build=_external, calls_out=True
        ),
        VerificationMethod("human", HumanParams, cost_rank=4, build=_human),
        VerificationMethod("chain", ChainParams, cost_rank=0, build=_chain, steps=_chain_steps),
        VerificationMethod("cascade", CascadeParams, cost_rank=3, build=_cascade),
    ]
)
"""The verification methods TLM knows; :meth:`MethodRegistry.register` adds one."""
