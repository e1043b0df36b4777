"""Content rules: redaction of configured fields, secret values, and secret-free error messages.

Two mechanisms, combined by :class:`Redaction`:

* **by field name**: every mapping entry whose key is a redacted field (``tlm.toml`` ``redact``,
  ``TLM_REDACT``) is replaced by ``"[REDACTED]"`` at any depth (:func:`redact`);
* **by value**: the values those fields hold in one execution's input, and the configured API
  keys, are masked wherever else they appear — in other fields, the output, the rendered prompt,
  error messages and verifier details — in raw, JSON-escaped and ``repr`` forms, and as the
  truncated prefix of a bounded excerpt (``"TOPSECRET@exa…"``). Strings shaped like API keys are
  masked by :func:`tlm.providers.errors.scrub`, the one key scrubber.

Values shorter than :data:`MIN_SCRUB_CHARS` are masked only where a whole string or number
equals them (masking ``"42"`` inside every text would mangle unrelated content).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from typing import Any

import attrs

from tlm.errors import Problem
from tlm.json_codec import compact_text

__all__ = (
    "REDACTED",
    "MIN_SCRUB_CHARS",
    "Redaction",
    "redact",
    "path_is_redacted",
    "sanitize_message",
    "schema_message",
    "to_json",
    "plain_json",
)

REDACTED = "[REDACTED]"
MIN_SCRUB_CHARS = 3
"""Shorter redacted values are masked only where a whole string or number equals them."""
_MIN_PREFIX_CHARS = 6
_FIXED_TEXTS = 64
"""Texts :meth:`Redaction.fixed_text` remembers (then it starts over)."""
"""The shortest truncated prefix of a redacted value that is still masked before a ``…``."""

_SECRET_PATTERNS = (
    re.compile(r"\b(?:sk|pk|rk)-[A-Za-z0-9_\-]{8,}"),
    re.compile(r"\bAIza[0-9A-Za-z_\-]{20,}"),
    re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/\-]+=*"),
    re.compile(
        r"(?i)\b(api[_-]?key|x-api-key|access[_-]?token|token|secret|password|authorization)"
        r"(\"?'?\s*[:=]\s*\"?'?)[^\s\"',&}]+"
    ),
)
_MESSAGE_LIMIT = 500
_VALUE_EXCERPT = re.compile(r" \(value: .*\)$", re.DOTALL)
"""The value excerpt a validation rule's problem ends with (:mod:`tlm.rules`)."""
_PATH_SEGMENT = re.compile(r"\.([^.\[\]]+)|\['((?:[^'\\]|\\.)*)'\]|\[\"((?:[^\"\\]|\\.)*)\"\]")


def redact(value: Any, fields: Collection[str]) -> Any:
    """Return ``value`` with every mapping entry whose key is in ``fields`` replaced, at any depth.

    ``value`` itself is never modified; unchanged sub-trees are shared.
    """
    if not fields:
        return value
    if isinstance(value, Mapping):
        return {k: (REDACTED if k in fields else redact(v, fields)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v, fields) for v in value]
    return value


def path_is_redacted(path: str, fields: Collection[str]) -> bool:
    """Whether the JSON path (``$.a.b``, ``$['a'][0]``, ``a.b``) goes through a redacted field."""
    if not fields:
        return False
    text = path if path.startswith("$") else "$." + path
    for match in _PATH_SEGMENT.finditer(text):
        name = next(g for g in match.groups() if g is not None)
        if name in fields:
            return True
    return False


def contains_field(value: Any, fields: Collection[str]) -> bool:
    """Whether ``value`` holds a mapping entry named in ``fields`` at any depth."""
    if not fields:
        return False
    if isinstance(value, Mapping):
        return any(k in fields or contains_field(v, fields) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(contains_field(v, fields) for v in value)
    return False


def _leaves(value: Any, *, keys: bool = False) -> Iterator[str | int | float]:
    """The scalars in ``value`` (and its mapping keys, with ``keys``)."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            if keys and isinstance(key, str):
                yield key
            yield from _leaves(item, keys=keys)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _leaves(item, keys=keys)
    elif isinstance(value, str | int | float) and not isinstance(value, bool):
        yield value


def _redacted_values(value: Any, fields: Collection[str]) -> Iterator[str | int | float]:
    """The leaves held under redacted fields in ``value`` (the values to mask elsewhere)."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            if key in fields:
                yield from _leaves(item)
            else:
                yield from _redacted_values(item, fields)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _redacted_values(item, fields)


def _forms(text: str) -> set[str]:
    """The ways ``text`` may be written into other text: raw, JSON-escaped, ``repr``-escaped."""
    return {
        text,
        json.dumps(text, ensure_ascii=False)[1:-1],
        json.dumps(text)[1:-1],
        repr(text)[1:-1],
    }


def _names(items: Iterable[str]) -> frozenset[str]:
    return frozenset(items)


def _scalars(items: Iterable[str | int | float]) -> frozenset[str | int | float]:
    return frozenset(items)


def _texts(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(items)


@attrs.frozen
class Redaction:
    """What must never be stored, exported or sent where the user did not allow it.

    ``fields`` are redacted by name; ``values`` (the redacted fields' values of one execution) and
    ``secrets`` (configured API keys) are masked wherever they appear. An engine holds one
    redaction built from its configuration; :meth:`for_input` adds one execution's values.
    """

    fields: frozenset[str] = attrs.field(default=frozenset(), converter=_names)
    values: frozenset[str | int | float] = attrs.field(default=frozenset(), converter=_scalars)
    secrets: tuple[str, ...] = attrs.field(default=(), converter=_texts)
    _forms: tuple[str, ...] = attrs.field(init=False, repr=False, eq=False)
    _plain: bool = attrs.field(init=False, repr=False, eq=False)
    """No value to mask and every secret written into JSON as it is: :meth:`json` may scrub
    the serialised text once."""
    _fixed: dict[str, str] = attrs.field(init=False, repr=False, eq=False, factory=dict)
    """:meth:`fixed_text`'s answers."""

    def __attrs_post_init__(self) -> None:
        forms: set[str] = set()
        for value in self.values:
            text = value if isinstance(value, str) else str(value)
            if len(text) >= MIN_SCRUB_CHARS:
                forms |= _forms(text)
        # longest first, so a value never leaves a tail of a longer one behind
        object.__setattr__(self, "_forms", tuple(sorted(forms, key=len, reverse=True)))
        plain = not self.values and all(json.dumps(s)[1:-1] == s for s in self.secrets)
        object.__setattr__(self, "_plain", plain)

    @property
    def masks_values(self) -> bool:
        """Whether any value (beyond the field names) is masked."""
        return bool(self.values)

    def for_input(self, value: Any) -> Redaction:
        """This redaction plus the values ``value`` holds under the redacted fields."""
        if not self.fields:
            return self
        found = set(_redacted_values(value, self.fields))
        if not found:
            return self
        return attrs.evolve(self, values=self.values | frozenset(found))

    def holds_value(self, value: Any) -> bool:
        """Whether ``value`` carries a redacted field, a masked value, a secret or a string
        shaped like an API key, anywhere (what must not be written to a file as it is)."""
        if contains_field(value, self.fields):
            return True
        if self._plain:
            text = to_json(value)
            return _scrub_fast(text, self.secrets) != text
        return any(
            leaf in self.values or (isinstance(leaf, str) and self.text(leaf) != leaf)
            for leaf in _leaves(value, keys=True)
        )

    def text(self, text: str) -> str:
        """``text`` with every masked value, truncated prefix and key-shaped string masked."""
        for form in self._forms:
            if form in text:
                text = text.replace(form, REDACTED)
        if "…" in text and self._forms:
            text = _mask_truncated(text, self._forms)
        return _scrub_fast(text, self.secrets)

    def fixed_text(self, text: str) -> str:
        """:meth:`text` for a text that comes back unchanged (a prompt variant's system
        message): scanned once, while this redaction masks no values (a few are kept)."""
        if self._forms:
            return self.text(text)
        fixed = self._fixed
        clean = fixed.get(text)
        if clean is None:
            clean = self.text(text)
            if len(fixed) >= _FIXED_TEXTS:
                fixed.clear()
            fixed[text] = clean
        return clean

    def value(self, value: Any) -> Any:
        """``value`` (JSON-like) with redacted fields replaced and masked values scrubbed."""
        value = redact(value, self.fields)
        return self._scrub(value)

    def _scrub(self, value: Any) -> Any:
        if isinstance(value, str):
            return REDACTED if value in self.values else self.text(value)
        if isinstance(value, Mapping):
            return {
                (self.text(k) if isinstance(k, str) else k): self._scrub(v)
                for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return [self._scrub(v) for v in value]
        if isinstance(value, int | float) and not isinstance(value, bool) and value in self.values:
            return REDACTED
        return value

    def json(self, value: Any) -> str:
        """:meth:`value` as compact JSON (what span attributes and records hold)."""
        if self._plain:
            # No value to mask: the key scrubber runs once over the JSON text. Its replacements
            # stay inside JSON strings (key shapes hold no quote, backslash or JSON whitespace).
            return _scrub_fast(plain_json(redact(value, self.fields)), self.secrets)
        return plain_json(self.value(value))

    def problems(self, problems: Iterable[Problem], value: Any) -> list[Problem]:
        """Validation ``problems`` about ``value`` with its redacted values left out.

        A problem located under a redacted field loses its ``(value: ...)`` excerpt; every
        message is cleaned of the values ``value`` holds under redacted fields.
        """
        scope = self.for_input(value)
        cleaned = []
        for problem in problems:
            message = problem.message
            if path_is_redacted(problem.path, self.fields):
                message = _VALUE_EXCERPT.sub(f" (value: {REDACTED})", message)
            cleaned.append(Problem(problem.source, problem.path, scope.text(message)))
        return cleaned

    def with_secrets(self, secrets: Iterable[str | None]) -> Redaction:
        """This redaction also masking ``secrets`` (e.g. API keys); empty ones are ignored."""
        extra = tuple(s for s in secrets if s and s not in self.secrets)
        return attrs.evolve(self, secrets=self.secrets + extra) if extra else self


_KEY_DASH = re.compile("-(?<=[kKyYsS\u017f\u212a]-)")
"""A ``-`` that may end the prefix of a key shape :func:`tlm.providers.errors.scrub` masks
(``sk-``, ``pk-``, ``rk-``, ``key-``, ``sess-``; its pattern ignores case, so the long s and the
Kelvin sign count), found by its last letter; ``bearer`` is the other shape. (The literal first
keeps the search fast.)"""


@functools.cache
def _scrub() -> Callable[..., str]:
    from tlm.providers.errors import scrub  # imported late: it pulls in aiohttp

    return scrub


def _may_hold_key(text: str) -> bool:
    """Whether ``text`` could hold a key shape (never ``False`` where the scrubber would match).

    The scrubber's pattern is slow on long text, so it runs on a window around each candidate
    ``-``: the window holds a character before the longest prefix (for the word boundary) and the
    shortest tail a key shape needs, so any match in ``text`` shows in its window.
    """
    scrub = _scrub()
    for found in _KEY_DASH.finditer(text):
        dash = found.start()
        window = text[max(0, dash - 5) : dash + 5]
        if scrub(window) != window:
            return True
    return "bearer" in text.casefold()


def _scrub_fast(text: str, secrets: Iterable[str]) -> str:
    """:func:`tlm.providers.errors.scrub`, the one key scrubber, behind an exact fast path."""
    if _may_hold_key(text) or any(s and len(s) >= 4 and s in text for s in secrets):
        return _scrub()(text, secrets)
    return text


def _mask_truncated(text: str, forms: Iterable[str]) -> str:
    """Mask the start of a value cut short by an excerpt (``"TOPSECRET@exa…"``)."""
    for form in forms:
        if len(form) < _MIN_PREFIX_CHARS + 1:
            continue
        start = 0
        while (cut := text.find("…", start)) != -1:
            start = cut + 1
            for size in range(min(len(form) - 1, cut), _MIN_PREFIX_CHARS - 1, -1):
                if text.startswith(form[:size], cut - size):
                    text = text[: cut - size] + REDACTED + text[cut:]
                    start = cut - size + len(REDACTED) + 1
                    break
    return text


def schema_message(error: Any, fields: Collection[str]) -> str:
    """A jsonschema ``ValidationError``'s message with redacted values left out.

    Under a redacted field the value is shown as ``[REDACTED]``; a value holding redacted fields
    is shown with them redacted; a message that would still show a redacted value falls back to
    naming the failed keyword only.
    """
    under = any(isinstance(part, str) and part in fields for part in error.absolute_path)
    instance = error.instance
    if not under and not contains_field(instance, fields):
        return str(error.message)
    shown = REDACTED if under else repr(redact(instance, fields))
    message = str(error.message).replace(repr(instance), shown)
    scope = Redaction(fields=fields).for_input(
        {next(iter(fields)): instance} if under else instance
    )
    if any(form in message for form in scope._forms):
        return f"{REDACTED} does not satisfy {error.validator!r}"
    return message


def sanitize_message(text: str, limit: int = _MESSAGE_LIMIT) -> str:
    """Mask anything that looks like an API key or credential and cut ``text`` to ``limit``."""
    for pattern in _SECRET_PATTERNS:
        if pattern.groups >= 2:
            text = pattern.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
        else:
            text = pattern.sub(REDACTED, text)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text


_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str).encode


def to_json(value: Any) -> str:
    """Compact JSON; values JSON cannot express are rendered with ``str``."""
    return _dumps(value)


def plain_json(value: Any) -> str:
    """:func:`to_json` for JSON values (a checked input, a parsed reply, chat messages), faster
    (see :func:`tlm.json_codec.compact_text`: the same value, a float's exponent may be shorter)."""
    return compact_text(value)
