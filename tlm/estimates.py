"""What is believed about one model on one task: quality, latency and cost.

The catalog's priors start it; the learning system (:mod:`tlm.learn`) refines it; selection
(:mod:`tlm.engine.selection`) ranks models by it. It sits below all three.
"""

from __future__ import annotations

import attrs

__all__ = ("ModelEstimate",)


@attrs.frozen
class ModelEstimate:
    """Learned estimates for one model on one task (from the learning system)."""

    quality: float
    latency_s: float
    cost_usd: float | None = None
    samples: int = 0
