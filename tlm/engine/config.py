"""Engine configuration: ``tlm.toml`` and environment variables, with offline defaults.

Lookup order for each setting: explicit argument, environment variable, ``tlm.toml`` (the
``[tlm]`` table of the file named by ``TLM_CONFIG``, else ``./tlm.toml``), default. The defaults use
the embedded local models and keep all state under ``./.tlm``.

``tlm.toml``::

    [tlm]
    models = ["qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-1.5b-instruct"]   # models TLM may use
    data_dir = ".tlm"
    definitions = "definitions"
    catalog = "definitions/models.json"
    store = true          # record executions in <data_dir>/tlm.db
    cache = true          # the result cache in <data_dir>/cache.db
    redact = ["email"]    # field names masked in inputs/outputs everywhere
    max_reasks = 2        # bounded re-asks after invalid output
    adaptive_verification = false  # cold-start consensus and lighter checks for reliable models
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from tlm.errors import ConfigurationError

__all__ = ("EngineConfig", "load_config", "DEFAULT_LOCAL_MODELS")

DEFAULT_LOCAL_MODELS = ("qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-1.5b-instruct")


@attrs.frozen
class EngineConfig:
    """Everything an :class:`tlm.Engine` needs to start."""

    definitions_dir: Path | None = None
    """Task definitions; ``None`` uses :func:`tlm.definition.registry.default_definitions_dir`."""
    catalog_path: Path | None = None
    """The model catalog; ``None`` uses ``models.json`` in the definitions directory."""
    data_dir: Path = Path(".tlm")
    models: tuple[str, ...] = DEFAULT_LOCAL_MODELS
    """The catalog models this engine may use."""
    store: bool = True
    cache: bool = True
    redact: tuple[str, ...] = ()
    max_reasks: int = 2
    adaptive_verification: bool = False
    """Cold start (consensus until a task has history) and risk-based lighter verification."""
    otlp_endpoint: str | None = None
    """``None`` reads ``OTEL_EXPORTER_OTLP_ENDPOINT`` when the tracer provider is built."""
    env: Mapping[str, str] = attrs.field(factory=lambda: dict(os.environ), repr=False)
    """Environment for API keys and endpoints (never logged)."""


_TOML_KEYS = frozenset(
    {"models", "data_dir", "definitions", "catalog", "store", "cache", "redact", "max_reasks",
     "adaptive_verification"}
)  # fmt: skip
"""The settings ``[tlm]`` may hold (documented in this module's docstring)."""


def _read_toml(path: Path) -> Mapping[str, Any]:
    try:
        with path.open("rb") as handle:
            document = tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"{path}: {exc}") from exc
    table = document.get("tlm", {})
    if not isinstance(table, dict):
        raise ConfigurationError(f"{path}: [tlm] must be a table")
    return table


def load_config(
    path: Path | None = None, *, env: Mapping[str, str] | None = None, **overrides: Any
) -> EngineConfig:
    """Build an :class:`EngineConfig` from ``tlm.toml``, the environment and ``overrides``."""
    environ = dict(os.environ if env is None else env)
    file = path or (Path(environ["TLM_CONFIG"]) if "TLM_CONFIG" in environ else Path("tlm.toml"))
    table: Mapping[str, Any] = _read_toml(file) if file.is_file() else {}
    if path is not None and not file.is_file():
        raise ConfigurationError(f"{file}: no such configuration file")

    def pick(key: str, env_key: str | None = None) -> Any:
        if key in overrides and overrides[key] is not None:
            return overrides[key]
        if env_key and env_key in environ:
            return environ[env_key]
        return table.get(key)

    def path_of(value: Any) -> Path | None:
        return None if value is None else Path(value)

    models = pick("models", "TLM_MODELS")
    if isinstance(models, str):
        models = [m.strip() for m in models.split(",") if m.strip()]
    redact = pick("redact", "TLM_REDACT")
    if isinstance(redact, str):
        redact = [r.strip() for r in redact.split(",") if r.strip()]
    unknown = set(table) - _TOML_KEYS
    if unknown:
        raise ConfigurationError(
            f"{file}: unknown setting(s) in [tlm]: {', '.join(sorted(unknown))}"
        )
    return EngineConfig(
        definitions_dir=path_of(pick("definitions", "TLM_DEFINITIONS")),
        catalog_path=path_of(pick("catalog", "TLM_CATALOG")),
        data_dir=path_of(pick("data_dir", "TLM_DATA_DIR")) or Path(".tlm"),
        models=tuple(models) if models else DEFAULT_LOCAL_MODELS,
        store=_as_bool(pick("store", "TLM_STORE"), True),
        cache=_as_bool(pick("cache", "TLM_CACHE"), True),
        redact=tuple(redact or ()),
        max_reasks=2 if pick("max_reasks") is None else int(pick("max_reasks")),
        adaptive_verification=_as_bool(
            pick("adaptive_verification", "TLM_ADAPTIVE_VERIFICATION"), False
        ),
        otlp_endpoint=overrides.get("otlp_endpoint"),
        env=environ,
    )


def _as_bool(value: Any, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in {"1", "true", "yes", "on"}
