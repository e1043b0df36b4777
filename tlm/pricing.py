"""What tokens cost: the one pricing function.

Provider adapters do not price their answers: a response carries its token :class:`Usage` and
the prices of the model that answered (its catalog card), and :func:`price` turns the two into
USD. The engine's call stage prices each call once, with the usage it bills (output capped at
the ``max_tokens`` sent); a caller of a provider directly reads ``response.cost_usd``, which
:func:`price` computes from the response's own usage and prices. :meth:`ModelCard.cost
<tlm.catalog.ModelCard.cost>` and every estimate (reservations, batch plans, selection) go
through it too.
"""

from __future__ import annotations

from typing import Protocol

from tlm.usage import Usage

__all__ = ("Prices", "price")

_MILLION = 1_000_000


class Prices(Protocol):
    """A model's prices in USD per million tokens (a :class:`tlm.catalog.ModelCard` is one)."""

    @property
    def id(self) -> str: ...
    @property
    def input_price_per_mtok(self) -> float: ...
    @property
    def output_price_per_mtok(self) -> float: ...
    @property
    def cached_input_price_per_mtok(self) -> float | None: ...
    @property
    def batch_input_price_per_mtok(self) -> float | None: ...
    @property
    def batch_output_price_per_mtok(self) -> float | None: ...


def price(prices: Prices | None, usage: Usage, *, batch: bool = False) -> float:
    """USD for ``usage``: cached input at the cached price, other input and output at theirs.

    ``prices`` ``None`` (a model outside the catalog) costs nothing. ``batch``: at the batch
    prices (cached input at the lower of the cached and the batch input price); raises
    ``ValueError`` if the model has none.
    """
    if prices is None:
        return 0.0
    input_price, output_price = prices.input_price_per_mtok, prices.output_price_per_mtok
    if batch:
        batch_input, batch_output = (
            prices.batch_input_price_per_mtok,
            prices.batch_output_price_per_mtok,
        )
        if batch_input is None or batch_output is None:
            raise ValueError(f"model {prices.id!r} has no batch prices in the catalog")
        input_price, output_price = batch_input, batch_output
    cached = min(usage.cached_input_tokens, usage.input_tokens)
    cached_price = (
        input_price
        if prices.cached_input_price_per_mtok is None
        else min(prices.cached_input_price_per_mtok, input_price)
    )
    return (
        (usage.input_tokens - cached) * input_price
        + cached * cached_price
        + usage.output_tokens * output_price
    ) / _MILLION
