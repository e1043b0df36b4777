"""Engine configuration: ``tlm.toml`` and environment variables, with offline defaults.

Lookup order for each setting: explicit argument, environment variable, ``tlm.toml`` (the
``[tlm]`` table of the file named by ``TLM_CONFIG``, else ``./tlm.toml``), default. The defaults use
the embedded local models and keep all state under ``./.tlm``.

``tlm.toml``::

    [tlm]
    models = ["qwen2.5-coder-0.5b-instruct", "smollm2-135m-instruct"]   # models TLM may use
    data_dir = ".tlm"
    definitions = "definitions"
    catalog = "definitions/models.json"
    store = true          # record executions in <data_dir>/tlm.db
    cache = true          # the result cache in <data_dir>/cache.db
    redact = ["email"]    # field names masked in inputs/outputs everywhere
    max_reasks = 2        # bounded re-asks after invalid output
    adaptive_verification = false  # cold-start consensus and lighter checks for reliable models
    default_deadline_s = 300       # an execution's deadline when neither task nor call sets one
    max_response_bytes = 16777216  # the largest provider reply read (16 MiB); more is an error

``default_deadline_s`` (env ``TLM_DEFAULT_DEADLINE_S``) bounds every execution whose task and
options give no ``deadline_s``: each model request is sent with the time left as its timeout and
retries stop there, so a provider that hangs fails after it with ``BudgetExceeded`` ("the default
deadline of 300s passed") instead of after every retry's transport timeout (4 x 120 s). 300 s
fits a consensus run on the embedded CPU models with room to spare. Unlike a budget's own
``deadline_s``, it does not cancel work in progress that is not a model request.
``max_response_bytes`` (env ``TLM_MAX_RESPONSE_BYTES``) stops reading
a reply past that size with ``ResponseTooLarge``. Both must be positive, finite numbers.
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from tlm.errors import ConfigurationError
from tlm.providers._http import DEFAULT_MAX_RESPONSE_BYTES

__all__ = ("EngineConfig", "load_config", "DEFAULT_LOCAL_MODELS", "DEFAULT_DEADLINE_S")

DEFAULT_LOCAL_MODELS = ("qwen2.5-coder-0.5b-instruct", "smollm2-135m-instruct")
DEFAULT_DEADLINE_S = 300.0
"""Seconds an execution may take when neither its task nor its options set a deadline."""


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
    default_deadline_s: float = DEFAULT_DEADLINE_S
    """The deadline of an execution whose task and options set none."""
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    """The largest provider reply read; a larger one fails with ``ResponseTooLarge``."""
    otlp_endpoint: str | None = None
    """``None`` reads ``OTEL_EXPORTER_OTLP_ENDPOINT`` when the tracer provider is built."""
    env: Mapping[str, str] = attrs.field(factory=lambda: dict(os.environ), repr=False)
    """Environment for API keys and endpoints (never logged)."""

    def __attrs_post_init__(self) -> None:
        _check_positive("default_deadline_s", self.default_deadline_s)
        _check_positive("max_response_bytes", self.max_response_bytes, integer=True)
        if not isinstance(self.max_reasks, int) or isinstance(self.max_reasks, bool):
            raise ConfigurationError(f"max_reasks must be an integer, not {self.max_reasks!r}")
        if self.max_reasks < 0:
            raise ConfigurationError(f"max_reasks must be 0 or more, not {self.max_reasks!r}")


_TOML_KEYS = frozenset(
    {"models", "data_dir", "definitions", "catalog", "store", "cache", "redact", "max_reasks",
     "adaptive_verification", "default_deadline_s", "max_response_bytes"}
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
        max_reasks=_number(pick("max_reasks"), "max_reasks", 2, integer=True),
        adaptive_verification=_as_bool(
            pick("adaptive_verification", "TLM_ADAPTIVE_VERIFICATION"), False
        ),
        default_deadline_s=_number(
            pick("default_deadline_s", "TLM_DEFAULT_DEADLINE_S"),
            "default_deadline_s",
            DEFAULT_DEADLINE_S,
        ),
        max_response_bytes=_number(
            pick("max_response_bytes", "TLM_MAX_RESPONSE_BYTES"),
            "max_response_bytes",
            DEFAULT_MAX_RESPONSE_BYTES,
            integer=True,
        ),
        otlp_endpoint=overrides.get("otlp_endpoint"),
        env=environ,
    )


def _number(value: Any, name: str, default: Any, *, integer: bool = False) -> Any:
    """A setting's number from TOML or the environment (text), refused when not one."""
    if value is None:
        return default
    if isinstance(value, str):
        try:
            value = int(value.strip()) if integer else float(value.strip())
        except ValueError:
            kind = "an integer" if integer else "a number"
            raise ConfigurationError(f"{name} must be {kind}, not {value!r}") from None
    return value


def _check_positive(name: str, value: Any, *, integer: bool = False) -> None:
    wanted = int if integer else int | float
    if not isinstance(value, wanted) or isinstance(value, bool):
        kind = "an integer" if integer else "a number"
        raise ConfigurationError(f"{name} must be {kind}, not {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ConfigurationError(f"{name} must be a positive, finite number, not {value!r}")


def _as_bool(value: Any, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in {"1", "true", "yes", "on"}
