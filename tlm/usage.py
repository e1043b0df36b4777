"""Token counts: what a provider reports for one call (priced by the catalog), and the one
estimate of a text's tokens made before a call.

It sits below both ``tlm.providers`` (adapters report it) and ``tlm.catalog`` (a model card prices
it), so neither needs the other for it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

import attrs

__all__ = (
    "Usage",
    "estimate_tokens",
    "estimate_prompt_tokens",
    "tokens_for_chars",
    "MESSAGE_OVERHEAD_CHARS",
)

MESSAGE_OVERHEAD_CHARS = 4
"""Characters each chat message counts beyond its text, for its role and framing."""


@attrs.frozen
class Usage:
    """Token counts of one call, as the provider reported them."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    """Input tokens served from the provider's prompt cache (a subset of ``input_tokens``)."""
    reasoning_tokens: int = 0
    """Output tokens spent on hidden reasoning (a subset of ``output_tokens``)."""
    cache_creation_input_tokens: int = 0
    """Input tokens written to the provider's prompt cache (a subset of ``input_tokens``)."""

    @property
    def total_tokens(self) -> int:
        """Input plus output tokens."""
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cached_input_tokens + other.cached_input_tokens,
            self.reasoning_tokens + other.reasoning_tokens,
            self.cache_creation_input_tokens + other.cache_creation_input_tokens,
        )


def tokens_for_chars(chars: int) -> int:
    """A cheap, conservative token estimate for ``chars`` characters (about 3.5 a token)."""
    return chars * 2 // 7 + 8


def estimate_tokens(text: str) -> int:
    """A cheap, conservative token estimate of ``text`` (about 3.5 characters a token)."""
    return tokens_for_chars(len(text))


class HasContent(Protocol):
    """A chat message, as far as an estimate needs it."""

    @property
    def content(self) -> str: ...


def estimate_prompt_tokens(messages: Iterable[HasContent]) -> int:
    """The one estimate of a prompt's tokens: its messages' text plus
    :data:`MESSAGE_OVERHEAD_CHARS` each, at :func:`tokens_for_chars`."""
    return tokens_for_chars(sum(len(m.content) + MESSAGE_OVERHEAD_CHARS for m in messages))
