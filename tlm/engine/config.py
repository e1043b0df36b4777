"""Engine configuration: ``tlm.toml`` and environment variables, with offline defaults.

Lookup order for each setting: explicit argument, environment variable, ``tlm.toml`` (the
``[tlm]`` table of the project's file: ``TLM_CONFIG``, else the nearest ``tlm.toml`` from the
working directory upward, see :mod:`tlm.project`), default. Relative paths in ``tlm.toml`` are
relative to the file; in the environment, to the working directory. The defaults use the embedded
local models and keep all state under the project's ``.tlm/``.

``tlm.toml`` (every setting; ``tlm init`` writes them all, commented)::

    [tlm]
    models = ["qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-1.5b-instruct"]   # models TLM may use
    data_dir = ".tlm"
    definitions = "definitions"
    catalog = "definitions/models.json"  # extends/overrides the packaged catalog (tlm.catalog)
    store = true          # record executions in <data_dir>/tlm.db
    database = "postgresql://tlm@db.internal/tlm"  # shared state in PostgreSQL (tlm[postgres])
    cache = true          # the result cache in <data_dir>/cache.db
    redact = ["email"]    # field names masked in inputs/outputs everywhere
    max_reasks = 2        # bounded re-asks after invalid output
    adaptive_verification = false  # cold-start consensus and lighter checks for reliable models
    durability = "durable"  # "relaxed": return before the record is committed
    default_deadline_s = 300       # an execution's deadline when neither task nor call sets one
    max_response_bytes = 16777216  # the largest provider reply read (16 MiB); more is an error
    external_hosts = ["verify.example.com"]  # hosts external verifiers may call (+ loopback)
    external_env = ["MY_VERIFIER_TOKEN"]     # env vars external verifier headers may expand
    external_unredacted = []  # endpoint hosts / function names that get redacted fields unmasked
    telemetry_compat = ["openinference", "langfuse"]  # backend dialects on exported spans

    [tlm.provider_limits.openai]     # one provider: every model it serves, together
    max_in_flight = 512              # calls in flight (0: no limit)
    requests_per_minute = 10000      # token buckets (0 or absent: no limit)
    tokens_per_minute = 2000000

    [tlm.model_limits."gpt-4o-mini"] # one model (also settable on its catalog card, "limits")
    requests_per_minute = 5000

``default_deadline_s`` (env ``TLM_DEFAULT_DEADLINE_S``) bounds every execution whose task and
options give no ``deadline_s``: each model request is sent with the time left as its timeout and
retries stop there, so a provider that hangs fails after it with ``BudgetExceeded`` ("the default
deadline of 300s passed") instead of after every retry's transport timeout (4 x 120 s). 300 s
fits a consensus run on the embedded CPU models with room to spare. Unlike a budget's own
``deadline_s``, it does not cancel work in progress that is not a model request.
``max_response_bytes`` (env ``TLM_MAX_RESPONSE_BYTES``) stops reading
a reply past that size with ``ResponseTooLarge``. Both must be positive, finite numbers.
(``TLM_REDACT``, ``TLM_EXTERNAL_HOSTS``, ``TLM_EXTERNAL_ENV`` and ``TLM_EXTERNAL_UNREDACTED`` take
comma-separated lists; see docs/redaction.md.)
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import attrs

from tlm.errors import ConfigurationError
from tlm.project import Project, find_project
from tlm.providers._http import DEFAULT_MAX_RESPONSE_BYTES
from tlm.providers.limits import LIMIT_KEYS, LimitSettings, check_limit_settings
from tlm.store.backend import check_database_url

__all__ = (
    "EngineConfig",
    "load_config",
    "DEFAULT_LOCAL_MODELS",
    "DEFAULT_DEADLINE_S",
    "Durability",
    "TOML_KEYS",
)

DEFAULT_LOCAL_MODELS = ("qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-1.5b-instruct")
DEFAULT_DEADLINE_S = 300.0
"""Seconds an execution may take when neither its task nor its options set a deadline."""

Durability = Literal["durable", "relaxed"]
"""When an execution returns: once its record is committed, or once it is queued."""

TELEMETRY_DIALECTS = ("openinference", "langfuse")
"""The backend dialects ``telemetry_compat`` may name (see :mod:`tlm.telemetry.dialects`)."""


@attrs.frozen
class EngineConfig:
    """Everything an :class:`tlm.Engine` needs to start."""

    definitions_dir: Path | None = None
    """Task definitions; ``None`` uses :func:`tlm.definition.registry.default_definitions_dir`."""
    catalog_path: Path | None = None
    """The project's catalog, layered over the packaged one (:meth:`tlm.catalog.Catalog.layered`);
    ``None`` uses ``models.json`` in the definitions directory, if there is one."""
    data_dir: Path = Path(".tlm")
    models: tuple[str, ...] = DEFAULT_LOCAL_MODELS
    """The catalog models this engine may use."""
    store: bool = True
    cache: bool = True
    database: str | None = None
    """A PostgreSQL URL holding the shared state (``TLM_DATABASE_URL``); ``None``: SQLite files
    in ``data_dir`` (see :mod:`tlm.store.backend`)."""
    redact: tuple[str, ...] = ()
    max_reasks: int = 2
    adaptive_verification: bool = False
    """Cold start (consensus until a task has history) and risk-based lighter verification."""
    durability: Durability = attrs.field(
        default="durable", validator=attrs.validators.in_(("durable", "relaxed"))
    )
    """``"durable"``: an execution returns once its record is committed; ``"relaxed"``: once it
    is queued (see :mod:`tlm.engine.recording`)."""
    default_deadline_s: float = DEFAULT_DEADLINE_S
    """The deadline of an execution whose task and options set none."""
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    """The largest provider reply read; a larger one fails with ``ResponseTooLarge``."""
    external_hosts: tuple[str, ...] = ()
    """Hosts ``external`` verification endpoints may call besides loopback."""
    external_env: tuple[str, ...] = ()
    """Environment variables ``external`` verifier headers may expand (``${VAR}``)."""
    external_unredacted: tuple[str, ...] = ()
    """Endpoint hosts and function names that receive redacted fields unmasked."""
    otlp_endpoint: str | None = None
    """``None`` reads ``OTEL_EXPORTER_OTLP_ENDPOINT`` when the tracer provider is built."""
    telemetry_compat: tuple[str, ...] = TELEMETRY_DIALECTS
    """Attributes of these backends added to exported spans (``()``: the GenAI conventions only)."""
    env: Mapping[str, str] = attrs.field(factory=lambda: dict(os.environ), repr=False)
    """Environment for API keys and endpoints (never logged)."""
    provider_limits: Mapping[str, LimitSettings] = attrs.field(factory=dict)
    """Per provider name: ``max_in_flight``, ``requests_per_minute``, ``tokens_per_minute``."""
    model_limits: Mapping[str, LimitSettings] = attrs.field(factory=dict)
    """Per catalog model id, the same keys; over the card's own ``limits``."""
    project_root: Path | None = None
    """The project this configuration came from (``None``: no project found)."""

    def __attrs_post_init__(self) -> None:
        _check_positive("default_deadline_s", self.default_deadline_s)
        _check_positive("max_response_bytes", self.max_response_bytes, integer=True)
        if not isinstance(self.max_reasks, int) or isinstance(self.max_reasks, bool):
            raise ConfigurationError(f"max_reasks must be an integer, not {self.max_reasks!r}")
        if self.max_reasks < 0:
            raise ConfigurationError(f"max_reasks must be 0 or more, not {self.max_reasks!r}")


TOML_KEYS = frozenset(
    {"models", "data_dir", "definitions", "catalog", "store", "cache", "redact", "max_reasks",
     "adaptive_verification", "durability", "default_deadline_s", "max_response_bytes",
     "external_hosts", "external_env", "external_unredacted", "provider_limits", "model_limits",
     "telemetry_compat", "database"}
)  # fmt: skip
"""The settings ``[tlm]`` may hold (documented in this module's docstring)."""


def _limit_tables(table: Mapping[str, Any], key: str, source: str) -> dict[str, LimitSettings]:
    raw = table.get(key, {})
    if not isinstance(raw, dict):
        raise ConfigurationError(f"{source}: [tlm.{key}] must be a table of tables")
    tables: dict[str, LimitSettings] = {}
    for name, settings in raw.items():
        where = f"{source}: [tlm.{key}.{name}]"
        if not isinstance(settings, dict):
            raise ConfigurationError(f"{where} must be a table of {', '.join(LIMIT_KEYS)}")
        tables[name] = check_limit_settings(settings, where)
    return tables


def load_config(
    path: Path | None = None, *, env: Mapping[str, str] | None = None, **overrides: Any
) -> EngineConfig:
    """Build an :class:`EngineConfig` from ``tlm.toml``, the environment and ``overrides``.

    ``path`` names the ``tlm.toml`` (its directory is the project root); without it the project is
    found from the working directory upward (:func:`tlm.project.find_project`).
    """
    environ = dict(os.environ if env is None else env)
    if path is not None:
        if not path.is_file():
            raise ConfigurationError(f"{path}: no such configuration file")
        project: Project | None = Project.at(path.absolute().parent, path)
    else:
        project = find_project(env=environ)
    table: Mapping[str, Any] = project.settings if project is not None else {}
    file = project.config_file if project is not None else None

    def pick(key: str, env_key: str | None = None) -> Any:
        if key in overrides and overrides[key] is not None:
            return overrides[key]
        if env_key and env_key in environ:
            return environ[env_key]
        return table.get(key)

    def path_of(key: str, env_key: str) -> Path | None:
        if key in overrides and overrides[key] is not None:
            return Path(overrides[key])
        if environ.get(env_key):
            return Path(environ[env_key])
        return project.path_setting(key) if project is not None else None

    models = pick("models", "TLM_MODELS")
    if isinstance(models, str):
        models = [m.strip() for m in models.split(",") if m.strip()]
    redact = _as_list(pick("redact", "TLM_REDACT"), "redact", file)
    external = {
        key: _as_list(pick(key, f"TLM_{key.upper()}"), key, file)
        for key in ("external_hosts", "external_env", "external_unredacted")
    }
    compat = pick("telemetry_compat", "TLM_TELEMETRY_COMPAT")
    if isinstance(compat, str):
        compat = [d.strip() for d in compat.split(",") if d.strip()]
    unknown_dialects = sorted(set(compat or ()) - set(TELEMETRY_DIALECTS))
    if unknown_dialects:
        raise ConfigurationError(
            f"telemetry_compat: unknown dialect(s) {', '.join(unknown_dialects)} "
            f"(known: {', '.join(TELEMETRY_DIALECTS)})"
        )
    unknown = set(table) - TOML_KEYS
    if unknown:
        raise ConfigurationError(
            f"{file}: unknown setting(s) in [tlm]: {', '.join(sorted(unknown))}"
        )
    definitions = path_of("definitions", "TLM_DEFINITIONS")
    if definitions is None and project is not None:
        definitions = project.definitions_dir
    data_dir = path_of("data_dir", "TLM_DATA_DIR")
    if data_dir is None:
        data_dir = project.data_dir if project is not None else Path(".tlm")
    return EngineConfig(
        definitions_dir=definitions,
        catalog_path=path_of("catalog", "TLM_CATALOG"),
        data_dir=data_dir,
        models=tuple(models) if models else DEFAULT_LOCAL_MODELS,
        store=_as_bool(pick("store", "TLM_STORE"), True),
        cache=_as_bool(pick("cache", "TLM_CACHE"), True),
        database=check_database_url(
            pick("database", "TLM_DATABASE_URL"), f"{file or 'TLM_DATABASE_URL'}: database"
        ),
        redact=tuple(redact or ()),
        max_reasks=_number(pick("max_reasks"), "max_reasks", 2, integer=True),
        adaptive_verification=_as_bool(
            pick("adaptive_verification", "TLM_ADAPTIVE_VERIFICATION"), False
        ),
        durability=_durability(pick("durability", "TLM_DURABILITY"), file),
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
        external_hosts=external["external_hosts"],
        external_env=external["external_env"],
        external_unredacted=external["external_unredacted"],
        otlp_endpoint=overrides.get("otlp_endpoint"),
        telemetry_compat=TELEMETRY_DIALECTS if compat is None else tuple(compat),
        env=environ,
        provider_limits=_limit_tables(table, "provider_limits", str(file)),
        model_limits=_limit_tables(table, "model_limits", str(file)),
        project_root=project.root if project is not None else None,
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


def _as_list(value: Any, key: str, file: Path | None) -> tuple[str, ...]:
    """A list setting: a TOML array of strings, or comma-separated text (environment)."""
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ConfigurationError(f"{file or 'TLM_' + key.upper()}: {key} must be a list of strings")


def _as_bool(value: Any, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in {"1", "true", "yes", "on"}


def _durability(value: Any, file: Path | None) -> Durability:
    if value is None:
        return "durable"
    mode = str(value).strip().lower()
    if mode not in ("durable", "relaxed"):
        raise ConfigurationError(
            f"durability must be 'durable' or 'relaxed', not {value!r} "
            f"(TLM_DURABILITY or durability in {file})"
        )
    return "durable" if mode == "durable" else "relaxed"
