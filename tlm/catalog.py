"""The model catalog: model cards saying where a model is served, what it costs and can do.

Capabilities are data: adapters read a card's ``structured_output`` style instead of guessing from a
model's name. The catalog is ``definitions/models.json``, validated against
``definitions/schema/models-v1.json``.
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import attrs
import jsonschema

from tlm.errors import ConfigurationError, Problem, TaskSchemaError
from tlm.providers.base import Usage

__all__ = (
    "Api",
    "StructuredOutput",
    "Provenance",
    "ModelCard",
    "BatchLimits",
    "DEFAULT_BATCH_LIMITS",
    "Catalog",
    "default_catalog_path",
    "catalog_schema_path",
)

Api = Literal["openai", "anthropic"]
StructuredOutput = Literal["json_schema", "json_object", "json_object_schema", "none"]

_PACKAGE_DEFINITIONS = Path(__file__).resolve().parent.parent / "definitions"
_MILLION = 1_000_000


@attrs.frozen
class Provenance:
    """Where a local model's weights come from, for audit and checksum verification."""

    source: str
    license: str
    sha256: str | None = None
    """Hex sha256 of the assembled model file; ``None`` until someone has measured it."""
    file: str | None = None
    """File name of the model in the data directory."""
    size_bytes: int | None = None


@attrs.frozen
class ModelCard:
    """One model: how to reach it, its prices (USD per million tokens) and capabilities."""

    id: str
    """TLM's id for the model (what tasks and requests name)."""
    provider: str
    """Provider name ("openai", "anthropic", "local", ...); one connection pool per provider."""
    api: Api
    """Wire format spoken by the provider."""
    provider_model: str
    """The provider's own name for the model, sent on the wire."""
    context_window: int
    base_url: str | None = None
    base_url_env: str | None = None
    """Name of the environment variable holding the base URL, when ``base_url`` is not fixed."""
    api_key_env: str | None = None
    """Name of the environment variable holding the API key (``None``: no key is sent)."""
    input_price_per_mtok: float = 0.0
    output_price_per_mtok: float = 0.0
    cached_input_price_per_mtok: float | None = None
    """Price of input tokens served from the prompt cache; defaults to the input price."""
    batch_input_price_per_mtok: float | None = None
    """Input price in a provider batch (OpenAI Batch API, Anthropic Message Batches); ``None``:
    the model cannot be batched."""
    batch_output_price_per_mtok: float | None = None
    max_output_tokens: int | None = None
    structured_output: StructuredOutput = "none"
    embeddings: bool = False
    prior_quality: float = 0.5
    """Quality prior in 0..1 for cold-start selection, before any history exists."""
    prior_latency_s: float = 5.0
    tags: tuple[str, ...] = ()
    provenance: Provenance | None = None

    @property
    def batchable(self) -> bool:
        """Whether the card has batch prices (its provider sells a batch API for it)."""
        return self.batch_input_price_per_mtok is not None

    def cost(self, usage: Usage, *, batch: bool = False) -> float:
        """USD for ``usage``: cached input at the cached price, other input and output at theirs.

        ``batch``: at the card's batch prices (cached input at the lower of the cached and the
        batch input price). Raises ``ValueError`` if the card has none.
        """
        input_price, output_price = self.input_price_per_mtok, self.output_price_per_mtok
        if batch:
            if self.batch_input_price_per_mtok is None or self.batch_output_price_per_mtok is None:
                raise ValueError(f"model {self.id!r} has no batch prices in the catalog")
            input_price = self.batch_input_price_per_mtok
            output_price = self.batch_output_price_per_mtok
        cached = min(usage.cached_input_tokens, usage.input_tokens)
        cached_price = (
            input_price
            if self.cached_input_price_per_mtok is None
            else min(self.cached_input_price_per_mtok, input_price)
        )
        return (
            (usage.input_tokens - cached) * input_price
            + cached * cached_price
            + usage.output_tokens * output_price
        ) / _MILLION

    def resolve_base_url(self, env: Mapping[str, str] | None = None) -> str:
        """The base URL, from the card or its environment variable.

        Raises:
            ConfigurationError: neither is set, or the variable is missing (named, never valued).
        """
        if self.base_url:
            return self.base_url.rstrip("/")
        if self.base_url_env:
            value = (os.environ if env is None else env).get(self.base_url_env, "").strip()
            if not value:
                raise ConfigurationError(
                    f"model {self.id!r}: environment variable {self.base_url_env} "
                    "(its base URL) is not set"
                )
            return value.rstrip("/")
        raise ConfigurationError(f"model {self.id!r} has neither base_url nor base_url_env")


@attrs.frozen
class BatchLimits:
    """What one provider batch may hold."""

    max_requests: int
    max_bytes: int
    """Bytes of the batch's input: the uploaded JSONL file, or the request body."""


DEFAULT_BATCH_LIMITS: Mapping[Api, BatchLimits] = {
    "openai": BatchLimits(max_requests=50_000, max_bytes=200 * 1024 * 1024),
    "anthropic": BatchLimits(max_requests=100_000, max_bytes=256 * 1024 * 1024),
}
"""The providers' documented limits per wire format, used when the catalog names none."""


def default_catalog_path() -> Path:
    """``models.json`` in the definitions directory: $TLM_DEFINITIONS, ./definitions, the repo's."""
    try:
        finder = importlib.import_module("tlm.definition.registry").default_definitions_dir
    except (ImportError, AttributeError):
        return _own_definitions_dir() / "models.json"
    return Path(finder()) / "models.json"


def _own_definitions_dir() -> Path:
    env = os.environ.get("TLM_DEFINITIONS")
    if env:
        return Path(env)
    cwd = Path("definitions")
    if (cwd / "models.json").is_file():
        return cwd
    return _PACKAGE_DEFINITIONS


def catalog_schema_path() -> Path:
    """The catalog's JSON Schema, shipped beside the default catalog."""
    return _PACKAGE_DEFINITIONS / "schema" / "models-v1.json"


def _json_path(parts: Sequence[Any]) -> str:
    out = "$"
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


@attrs.frozen
class Catalog:
    """The model cards, by id. Build with :meth:`load` or :meth:`from_data`."""

    cards: tuple[ModelCard, ...]
    source: str = "<memory>"
    batch_limits: Mapping[str, BatchLimits] = attrs.field(factory=dict)
    """Per provider name, the limits of one provider batch (``batch_limits`` in the file)."""
    _by_id: Mapping[str, ModelCard] = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "_by_id", {card.id: card for card in self.cards})

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None) -> Catalog:
        """Read and validate a catalog file (default: :func:`default_catalog_path`).

        Raises:
            ConfigurationError: the file is missing or unreadable.
            TaskSchemaError: the file is not valid JSON or breaks the schema; every problem is
                located by file and JSON path.
        """
        file = Path(path) if path is not None else default_catalog_path()
        try:
            text = file.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigurationError(
                f"cannot read model catalog {file}: {exc.strerror or exc}"
            ) from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise TaskSchemaError(
                [Problem(str(file), "$", f"invalid JSON at line {exc.lineno} column {exc.colno}")]
            ) from None
        return cls.from_data(data, source=str(file))

    @classmethod
    def from_data(cls, data: Any, *, source: str = "<memory>") -> Catalog:
        """Validate already-parsed catalog data (the ``models.json`` shape) and build a catalog."""
        schema = json.loads(catalog_schema_path().read_text(encoding="utf-8"))
        validator = jsonschema.Draft202012Validator(schema)
        problems = [
            Problem(source, _json_path(err.absolute_path), _message(err))
            for err in sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.path)))
        ]
        if problems:
            raise TaskSchemaError(problems)
        cards: list[ModelCard] = []
        seen: dict[str, int] = {}
        for index, raw in enumerate(data["models"]):
            where = f"$.models[{index}]"
            if raw["id"] in seen:
                problems.append(
                    Problem(
                        source,
                        f"{where}.id",
                        f"duplicate id {raw['id']!r} (first at $.models[{seen[raw['id']]}])",
                    )
                )
                continue
            seen[raw["id"]] = index
            if raw["provider"] != "local" and not (raw.get("base_url") or raw.get("base_url_env")):
                problems.append(
                    Problem(source, where, "needs base_url or base_url_env (only 'local' may omit)")
                )
            cards.append(_card_from_json(raw))
        if problems:
            raise TaskSchemaError(problems)
        limits = {
            name: _batch_limits(raw, cards, name)
            for name, raw in (data.get("batch_limits") or {}).items()
        }
        return cls(tuple(cards), source, limits)

    def get(self, model_id: str) -> ModelCard:
        """The card for ``model_id``.

        Raises:
            ConfigurationError: unknown id; the message lists the known ids.
        """
        try:
            return self._by_id[model_id]
        except KeyError:
            known = ", ".join(sorted(self._by_id)) or "(none)"
            raise ConfigurationError(
                f"unknown model {model_id!r} in catalog {self.source}; known: {known}"
            ) from None

    def __contains__(self, model_id: object) -> bool:
        return model_id in self._by_id

    def __iter__(self) -> Iterator[ModelCard]:
        return iter(self.cards)

    def __len__(self) -> int:
        return len(self.cards)

    def ids(self) -> tuple[str, ...]:
        """Every model id, in file order."""
        return tuple(card.id for card in self.cards)

    def for_provider(self, provider: str) -> tuple[ModelCard, ...]:
        """The cards served by ``provider``."""
        return tuple(card for card in self.cards if card.provider == provider)

    def batch_limits_for(self, card: ModelCard) -> BatchLimits:
        """The batch limits of ``card``'s provider (the wire format's documented ones if unset)."""
        return self.batch_limits.get(card.provider) or DEFAULT_BATCH_LIMITS[card.api]


def _message(error: jsonschema.ValidationError) -> str:
    if error.validator == "not":
        return "give base_url or base_url_env, not both"
    if error.validator == "additionalProperties":
        return error.message
    message = error.message
    return message if len(message) <= 200 else message[:199] + "…"


def _batch_limits(raw: Mapping[str, Any], cards: Sequence[ModelCard], name: str) -> BatchLimits:
    apis = {card.api for card in cards if card.provider == name}
    default = DEFAULT_BATCH_LIMITS["anthropic" if apis == {"anthropic"} else "openai"]
    return BatchLimits(
        max_requests=int(raw.get("max_requests", default.max_requests)),
        max_bytes=int(raw.get("max_bytes", default.max_bytes)),
    )


def _card_from_json(raw: Mapping[str, Any]) -> ModelCard:
    fields = dict(raw)
    provenance = fields.pop("provenance", None)
    fields["tags"] = tuple(fields.get("tags", ()))
    return ModelCard(
        **fields,
        provenance=Provenance(**provenance) if provenance is not None else None,
    )
