"""Cost reservations: a model call's worst case is reserved before it is sent, never after.

The rule, for a call under a cost limit:

1. The worst case is the prompt's estimated tokens (:func:`tlm.usage.estimate_prompt_tokens`,
   about 3.5 characters a token) plus ``max_tokens`` of output, at the model card's prices.
   Without a ``max_tokens`` the card's ``max_output_tokens`` (else the rest of the context
   window) stands in.
2. If the worst case does not fit what is left of the budget (here and in a parent budget),
   ``max_tokens`` is lowered until it does, and the lowered value is what the provider
   receives. A call that cannot get at least :data:`MIN_OUTPUT_TOKENS` (or the tokens asked for,
   when fewer) is refused before it is sent, with :class:`BudgetExceeded` naming the estimate.
   Beside calls still in flight (a consensus fan-out) a call is not capped but refused when its
   worst case does not fit: their reservations are mostly released unused moments later, and a
   peer starved of output tokens would be paid for and then cut short.
3. Output is charged at most the ``max_tokens`` sent (no provider bills more than that); a
   reply reporting more is charged ``max_tokens``, the provider's own report stays on the
   model-call span and the discrepancy is logged.

So spending can exceed the limit only by the input tokens the provider counts beyond the prompt
estimate (priced as input), never by output.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Protocol

import attrs

from tlm.budget import BudgetLedger
from tlm.providers.base import Message, Usage
from tlm.usage import estimate_prompt_tokens

__all__ = ("CallReservation", "PricedModel", "reserve_call", "billable_usage", "MIN_OUTPUT_TOKENS")

_log = logging.getLogger(__name__)

MIN_OUTPUT_TOKENS = 16
"""The fewest output tokens a capped call is sent with; below that it is refused instead."""
_MILLION = 1_000_000


class PricedModel(Protocol):
    """What a reservation needs of a catalog card."""

    @property
    def id(self) -> str: ...
    @property
    def context_window(self) -> int: ...
    @property
    def max_output_tokens(self) -> int | None: ...
    @property
    def output_price_per_mtok(self) -> float: ...
    def cost(self, usage: Usage, /) -> float: ...


@attrs.frozen
class CallReservation:
    """What one admitted call reserved, and the ``max_tokens`` it is sent with."""

    estimate_usd: float
    prompt_tokens: int
    max_tokens: int | None
    capped: bool = False
    """Whether ``max_tokens`` was lowered to fit the budget."""


def reserve_call(
    ledger: BudgetLedger, card: PricedModel, messages: Sequence[Message], max_tokens: int | None
) -> CallReservation:
    """Admit one call to ``card``: reserve its worst case, capping ``max_tokens`` to fit.

    Raises:
        BudgetExceeded: attempts or time are used up, or not even :data:`MIN_OUTPUT_TOKENS`
            fit in the money left (the message gives the estimate).
    """
    prompt_tokens = estimate_prompt_tokens(messages)
    headroom = ledger.headroom_usd()
    if math.isinf(headroom):  # no cost limit anywhere: reserve the estimate, change nothing
        reservation = CallReservation(
            card.cost(Usage(prompt_tokens, max_tokens or 0)), prompt_tokens, max_tokens
        )
        ledger.before_call(reservation.estimate_usd)
        return reservation
    wanted = max_tokens or card.max_output_tokens or max(card.context_window - prompt_tokens, 1)
    input_usd = card.cost(Usage(prompt_tokens, 0))
    per_token = card.output_price_per_mtok / _MILLION
    worst = input_usd + wanted * per_token
    sent, capped = wanted, False
    if worst > headroom and per_token > 0 and ledger.reserved_in_flight() == 0:
        affordable = math.floor((headroom - input_usd) / per_token * (1 - 1e-9))
        least = min(wanted, MIN_OUTPUT_TOKENS)
        if affordable < least:
            left = max(headroom, 0.0)
            raise ledger.exceeded(
                f"the next call to {card.id} would exceed the cost budget: estimated "
                f"${worst:.6f} (about {prompt_tokens} prompt + {wanted} output tokens), and "
                f"even {least} output tokens need ${input_usd + least * per_token:.6f}, "
                f"with ${left:.6f} left"
            )
        sent, capped = affordable, True
    estimate = input_usd + sent * per_token
    ledger.before_call(min(estimate, max(headroom, 0.0)) if capped else estimate)
    return CallReservation(estimate, prompt_tokens, sent, capped)


def billable_usage(usage: Usage, *, model: str, max_tokens: int | None) -> Usage:
    """``usage`` with its output limited to the ``max_tokens`` sent (rule 3 of the module doc)."""
    if max_tokens is None or usage.output_tokens <= max_tokens:
        return usage
    _log.warning(
        "%s reported %d output tokens for a request allowing at most %d; charged %d",
        model,
        usage.output_tokens,
        max_tokens,
        max_tokens,
    )
    return attrs.evolve(
        usage,
        output_tokens=max_tokens,
        reasoning_tokens=min(usage.reasoning_tokens, max_tokens),
    )
