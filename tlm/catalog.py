"""The model catalog: model cards saying where a model is served, what it costs and can do.

Capabilities are data: adapters read a card's ``structured_output`` style instead of guessing from a
model's name. The packaged catalog is ``tlm/data/models.json``, validated against
``tlm/data/schema/models-v1.json``.

A project's catalog (``definitions/models.json``, or the file ``catalog`` names in ``tlm.toml``)
has the same shape and is layered over the packaged one (:meth:`Catalog.layered`):

- an entry whose ``id`` is new adds a model (a complete card);
- an entry whose ``id`` is a packaged model changes that card: its fields are a JSON merge patch
  (RFC 7386) — given fields replace the packaged ones, objects (``limits``, ``provenance``) merge
  key by key, ``null`` removes a field, fields not given are kept. ``base_url`` and
  ``base_url_env`` are one choice: giving one drops the other.

So ``{"id": "gpt-4o-mini", "input_price_per_mtok": 0.1}`` changes a price, and
``{"id": "qwen2.5-coder-0.5b-instruct", "provider": "vllm-lab", "base_url": "http://gpu:8000/v1"}``
points a model at a vLLM server. Every merged card is checked against the schema; a problem is
reported at the project file's entry.
"""

from __future__ import annotations

import copy
import functools
import importlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, Literal

import attrs
import jsonschema

from tlm.data import resource
from tlm.errors import ConfigurationError, Problem, TaskSchemaError
from tlm.pricing import price
from tlm.usage import Usage

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
    limits: Mapping[str, float] | None = attrs.field(default=None, hash=False)
    """This model's own ``max_in_flight``, ``requests_per_minute``, ``tokens_per_minute``
    (0: no limit), within its provider's; ``tlm.toml``'s ``model_limits`` override them."""

    @property
    def batchable(self) -> bool:
        """Whether the card has batch prices (its provider sells a batch API for it)."""
        return self.batch_input_price_per_mtok is not None

    def cost(self, usage: Usage, *, batch: bool = False) -> float:
        """USD for ``usage`` at this card's prices (:func:`tlm.pricing.price`).

        ``batch``: at the card's batch prices (cached input at the lower of the cached and the
        batch input price). Raises ``ValueError`` if the card has none.
        """
        return price(self, usage, batch=batch)

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


_PACKAGED = "<packaged catalog tlm/data/models.json>"


def default_catalog_path(definitions_dir: Path | None = None) -> Path:
    """``models.json`` in the definitions directory if there is one, else the packaged catalog."""
    mine = _project_catalog_path(definitions_dir)
    return mine if mine is not None else Path(str(resource("models.json")))


def _project_catalog_path(definitions_dir: Path | None = None) -> Path | None:
    """``models.json`` in ``definitions_dir`` (default: the project's), if it exists."""
    if definitions_dir is None:
        finder = importlib.import_module("tlm.definition.registry").default_definitions_dir
        try:
            definitions_dir = Path(finder())
        except ConfigurationError:  # no project: the packaged catalog alone
            return None
    mine = definitions_dir / "models.json"
    return mine if mine.is_file() else None


@functools.cache
def _packaged_json() -> str:
    return resource("models.json").read_text(encoding="utf-8")


def _packaged_data() -> Any:
    return json.loads(_packaged_json())


def _read_json(file: Path) -> Any:
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(
            f"cannot read model catalog {file}: {exc.strerror or exc}"
        ) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise TaskSchemaError(
            [Problem(str(file), "$", f"invalid JSON at line {exc.lineno} column {exc.colno}")]
        ) from None


@functools.cache
def _catalog_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(catalog_schema_path().read_text(encoding="utf-8"))
    return schema


@functools.cache
def _catalog_validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(_catalog_schema())


@functools.cache
def _card_validator() -> jsonschema.Draft202012Validator:
    schema = _catalog_schema()
    return jsonschema.Draft202012Validator({**schema["$defs"]["model"], "$defs": schema["$defs"]})


@functools.cache
def _overlay_validator() -> jsonschema.Draft202012Validator:
    """The catalog schema for a project's entries: only ``id`` required, ``null`` removes."""
    schema = copy.deepcopy(_catalog_schema())
    model = schema["$defs"]["model"]
    model.pop("not", None)
    _as_patch(model)
    model["required"] = ["id"]
    model["properties"]["id"] = model["properties"]["id"]["anyOf"][1]
    return jsonschema.Draft202012Validator(schema)


def _as_patch(spec: dict[str, Any]) -> None:
    """Make an object schema accept a merge patch: nothing required, any property ``null``."""
    spec.pop("required", None)
    for name, prop in spec.get("properties", {}).items():
        if "properties" in prop:
            _as_patch(prop)
        spec["properties"][name] = {"anyOf": [{"type": "null"}, prop]}


def _schema_problems(
    validator: jsonschema.Draft202012Validator, data: Any, source: str, *, base: str = "$"
) -> list[Problem]:
    errors = sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.path)))
    return [Problem(source, _json_path(e.absolute_path, base), _message(e)) for e in errors]


def _merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: objects merge key by key, ``null`` removes, the rest replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    merged = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = _merge_patch(merged.get(key), value)
    return merged


def _merge_card(card: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    merged: dict[str, Any] = _merge_patch(card, patch)
    for given, other in (("base_url", "base_url_env"), ("base_url_env", "base_url")):
        if patch.get(given) is not None and other not in patch:
            merged.pop(other, None)  # one choice: the project's replaces the packaged one
    return merged


def catalog_schema_path() -> Traversable:
    """The catalog's JSON Schema, shipped inside the package."""
    return resource("schema/models-v1.json")


def _json_path(parts: Sequence[Any], base: str = "$") -> str:
    out = base
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
        """Read and validate one complete catalog file; without ``path``, the packaged catalog
        layered with the project's (:meth:`layered`).

        Raises:
            ConfigurationError: the file is missing or unreadable.
            TaskSchemaError: the file is not valid JSON or breaks the schema; every problem is
                located by file and JSON path.
        """
        if path is None:
            return cls.layered(_project_catalog_path())
        file = Path(path)
        return cls.from_data(_read_json(file), source=str(file))

    @classmethod
    def packaged(cls) -> Catalog:
        """The catalog shipped inside the package (``tlm/data/models.json``)."""
        return cls.from_data(_packaged_data(), source=_PACKAGED)

    @classmethod
    def layered(cls, overlay: str | os.PathLike[str] | None = None) -> Catalog:
        """The packaged catalog extended and overridden by the project catalog ``overlay``.

        The merge rule is in this module's docstring; ``None`` gives the packaged catalog.

        Raises:
            ConfigurationError: ``overlay`` is missing or unreadable.
            TaskSchemaError: ``overlay`` is not valid JSON, breaks the schema, or makes a card
                invalid; each problem is located at the overlay's entry.
        """
        if overlay is None:
            return cls.packaged()
        file = Path(overlay)
        data = _read_json(file)
        problems = _schema_problems(_overlay_validator(), data, str(file))
        if problems:
            raise TaskSchemaError(problems)
        base = _packaged_data()["models"]
        entries: list[tuple[dict[str, Any], str, str]] = [(raw, _PACKAGED, "") for raw in base]
        index_of = {raw["id"]: i for i, raw in enumerate(base)}
        patched: dict[str, int] = {}
        for index, patch in enumerate(data["models"]):
            where = f"$.models[{index}]"
            if patch["id"] in patched:
                first = patched[patch["id"]]
                problems.append(
                    Problem(
                        str(file),
                        f"{where}.id",
                        f"duplicate id {patch['id']!r} (first at $.models[{first}])",
                    )
                )
                continue
            patched[patch["id"]] = index
            if patch["id"] in index_of:
                at = index_of[patch["id"]]
                entries[at] = (_merge_card(entries[at][0], patch), str(file), where)
            else:
                entries.append((_merge_card({}, patch), str(file), where))
        if problems:
            raise TaskSchemaError(problems)
        batch_limits = {
            **(_packaged_data().get("batch_limits") or {}),
            **(data.get("batch_limits") or {}),
        }
        return cls._from_entries(
            entries, source=f"{file} over the packaged catalog", batch_limits=batch_limits
        )

    @classmethod
    def from_data(cls, data: Any, *, source: str = "<memory>") -> Catalog:
        """Validate already-parsed catalog data (the ``models.json`` shape) and build a catalog."""
        problems = _schema_problems(_catalog_validator(), data, source)
        if problems:
            raise TaskSchemaError(problems)
        entries = [(raw, source, f"$.models[{i}]") for i, raw in enumerate(data["models"])]
        return cls._from_entries(
            entries, source=source, checked=True, batch_limits=data.get("batch_limits")
        )

    @classmethod
    def _from_entries(
        cls,
        entries: Sequence[tuple[Any, str, str]],
        *,
        source: str,
        checked: bool = False,
        batch_limits: Mapping[str, Any] | None = None,
    ) -> Catalog:
        """Cards from ``(raw card, its file, its JSON path)``; ``checked``: schema already held."""
        problems: list[Problem] = []
        cards: list[ModelCard] = []
        seen: dict[str, str] = {}
        card_validator = _card_validator()
        for raw, file, where in entries:
            if not checked:
                found = _schema_problems(card_validator, raw, file, base=where or "$")
                if found:
                    problems += found
                    continue
            if raw["id"] in seen:
                message = f"duplicate id {raw['id']!r} (first at {seen[raw['id']]})"
                problems.append(Problem(file, f"{where}.id", message))
                continue
            seen[raw["id"]] = where
            if raw["provider"] != "local" and not (raw.get("base_url") or raw.get("base_url_env")):
                problems.append(
                    Problem(file, where, "needs base_url or base_url_env (only 'local' may omit)")
                )
            cards.append(_card_from_json(raw))
        if problems:
            raise TaskSchemaError(problems)
        limits = {
            name: _batch_limits(raw, cards, name) for name, raw in (batch_limits or {}).items()
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
