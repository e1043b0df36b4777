"""The one cattrs converter between task-definition JSON and :class:`TaskDefinition`.

JSON ``verification.parameters`` becomes the parameter class named by the method's record in
:data:`tlm.verify.methods.METHODS` (chain steps recursively), JSON
``verification.fallback_strategy`` becomes :attr:`VerificationSpec.fallback`, and unstructuring
gives back the same JSON shape.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import attrs
import cattrs
from cattrs.gen import make_dict_unstructure_fn, override

from tlm.verify.methods import METHODS
from tlm.verify.params import (
    CascadeAccept,
    CascadeParams,
    ChainParams,
    FallbackSpec,
    VerificationSpec,
)

__all__ = ("make_converter", "configure_converter")


def make_converter() -> cattrs.Converter:
    """A new converter configured for task definitions."""
    converter = cattrs.Converter()
    configure_converter(converter)
    return converter


def configure_converter(converter: cattrs.Converter) -> None:
    """Register the task-definition hooks on ``converter``."""

    def structure_fallback(value: Any, _: type) -> FallbackSpec:
        if isinstance(value, Mapping):
            return FallbackSpec(strategy=str(value["strategy"]), value=value.get("value"))
        return FallbackSpec(strategy=str(value))

    def unstructure_fallback(fallback: FallbackSpec) -> Any:
        if fallback.strategy == "default_value":
            return {"strategy": fallback.strategy, "value": fallback.value}
        return fallback.strategy

    def structure_verification(value: Mapping[str, Any], _: type) -> VerificationSpec:
        method = str(value.get("method", "none"))
        record = METHODS.get(method)
        if record is None:
            known = ", ".join(METHODS.names())
            raise ValueError(f"unknown verification method {method!r} (known: {known})")
        parameters = converter.structure(value.get("parameters") or {}, record.parameters)
        fallback = converter.structure(value.get("fallback_strategy", "fail"), FallbackSpec)
        return VerificationSpec(method=method, parameters=parameters, fallback=fallback)

    def unstructure_verification(spec: VerificationSpec) -> dict[str, Any]:
        return {
            "method": spec.method,
            "parameters": converter.unstructure(spec.parameters, type(spec.parameters)),
            "fallback_strategy": unstructure_fallback(spec.fallback),
        }

    def unstructure_step(spec: VerificationSpec) -> dict[str, Any]:
        return {
            "method": spec.method,
            "parameters": converter.unstructure(spec.parameters, type(spec.parameters)),
        }

    def unstructure_chain(params: ChainParams) -> dict[str, Any]:
        return {"steps": [unstructure_step(step) for step in params.steps]}

    def structure_cascade(value: Mapping[str, Any], _: type) -> CascadeParams:
        raw = dict(value)
        ladder = raw.pop("ladder", ())
        learned = ladder == "learned"
        if not learned and (isinstance(ladder, str) or not isinstance(ladder, list | tuple)):
            raise ValueError(f"ladder must be a list of rungs or 'learned', not {ladder!r}")
        rungs = (
            ()
            if learned
            else tuple(
                (rung,) if isinstance(rung, str) else tuple(str(m) for m in rung) for rung in ladder
            )
        )
        accept = converter.structure(raw.pop("accept", {}) or {}, CascadeAccept)
        target = raw.get("target_quality")
        max_cost = raw.get("max_cost_usd")
        return CascadeParams(
            ladder=rungs,
            learned=learned,
            models=tuple(str(m) for m in raw.get("models", ())),
            accept=accept,
            similarity_metric=str(raw.get("similarity_metric", "structured")),
            similarity_threshold=float(raw.get("similarity_threshold", 0.9)),
            field_weights={str(k): float(v) for k, v in (raw.get("field_weights") or {}).items()},
            target_quality=None if target is None else float(target),
            max_cost_usd=None if max_cost is None else float(max_cost),
        )

    def unstructure_cascade(params: CascadeParams) -> dict[str, Any]:
        data: dict[str, Any] = {
            "ladder": "learned" if params.learned else [list(rung) for rung in params.ladder],
            "accept": {
                "agreement": params.accept.agreement,
                "min_confidence": params.accept.min_confidence,
            },
            "similarity_metric": params.similarity_metric,
            "similarity_threshold": params.similarity_threshold,
        }
        if params.models:
            data["models"] = list(params.models)
        if params.field_weights:
            data["field_weights"] = dict(params.field_weights)
        if params.target_quality is not None:
            data["target_quality"] = params.target_quality
        if params.max_cost_usd is not None:
            data["max_cost_usd"] = params.max_cost_usd
        return data

    converter.register_structure_hook(CascadeParams, structure_cascade)
    converter.register_unstructure_hook(CascadeParams, unstructure_cascade)
    converter.register_structure_hook(FallbackSpec, structure_fallback)
    converter.register_unstructure_hook(FallbackSpec, unstructure_fallback)
    converter.register_structure_hook(VerificationSpec, structure_verification)
    converter.register_unstructure_hook(VerificationSpec, unstructure_verification)
    converter.register_unstructure_hook(ChainParams, unstructure_chain)

    def unstructure_attrs(cls: type) -> Callable[[Any], dict[str, Any]]:
        # Optional fields left at None are omitted, so the JSON keeps the author's shape.
        base: Callable[[Any], dict[str, Any]] = make_dict_unstructure_fn(
            cls, converter, source=override(omit=True)
        )
        optional = {f.name for f in attrs.fields(cls) if f.default is None}

        def unstructure(obj: Any) -> dict[str, Any]:
            data: dict[str, Any] = base(obj)
            return {k: v for k, v in data.items() if v is not None or k not in optional}

        return unstructure

    converter.register_unstructure_hook_factory(attrs.has, unstructure_attrs)
    # JSON has arrays, not tuples.
    converter.register_unstructure_hook_func(
        lambda t: t is tuple or getattr(t, "__origin__", None) is tuple,
        lambda value: [converter.unstructure(v) for v in value],
    )
