"""What the learning system gives an engine as it opens: learned rankings (``tlm
update-rankings``), input-aware selection and learned cascades, and the verification policy."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import attrs

from tlm.catalog import Catalog
from tlm.definition.registry import DefinitionRegistry
from tlm.engine.config import EngineConfig
from tlm.estimates import ModelEstimate

if TYPE_CHECKING:
    from tlm.engine.resources import EngineResources
    from tlm.learn.coldstart import VerificationPolicy
    from tlm.learn.live import LiveEstimates
    from tlm.learn.updates import LearningSink
    from tlm.rollout.router import RolloutRouter

__all__ = ("Learned", "open_learned", "close_followers")

Estimates = Callable[[str], Mapping[str, ModelEstimate]]


@attrs.frozen
class Learned:
    """The engine's learned parts (each the caller's own when it gave one)."""

    estimates: Estimates | None
    cascade_plans: Mapping[str, Any]
    policy: VerificationPolicy | None
    live: LiveEstimates | None = None
    """The live rankings opened here (closed by :func:`close_followers`); ``None`` when the
    caller gave its own estimates."""


async def open_learned(
    data_dir: Path,
    config: EngineConfig,
    *,
    catalog: Catalog | None,
    registry: DefinitionRegistry | None,
    estimates: Estimates | None,
    policy: VerificationPolicy | None,
    sink: LearningSink | None,
) -> Learned:
    """Read what ``data_dir`` holds of the learning system's output (files checked off the loop)."""
    if policy is None and config.adaptive_verification:
        from tlm.learn.coldstart import VerificationPolicy

        policy = VerificationPolicy()
    live = None
    if estimates is None:  # the rankings of `tlm update-rankings`, followed while running
        from tlm.learn.live import open_live_estimates

        estimates = live = await anyio.to_thread.run_sync(
            lambda: open_live_estimates(
                data_dir, config, catalog=catalog, models=config.models, registry=registry
            )
        )
    cascade_plans: Mapping[str, Any] = {}
    found = [await anyio.Path(data_dir / f).is_file() for f in ("selector.json", "cascades.json")]
    if any(found) or hasattr(estimates, "observe"):
        from tlm.learn.updates import open_learned as read_learned  # input-aware, cascades

        estimates, cascade_plans = await anyio.to_thread.run_sync(
            read_learned, data_dir, estimates, catalog, sink
        )
    return Learned(estimates, cascade_plans, policy, live)


async def close_followers(
    learned: Learned | None, rollouts: RolloutRouter | None, resources: EngineResources
) -> None:
    """Close what an engine follows other processes with: the live rankings it opened (a check
    in progress finishes first), the rollout router's store, and the resources other packages
    kept for it. Off the loop, not cancellable."""

    def close() -> None:
        try:
            if learned is not None and learned.live is not None:
                learned.live.close()
        finally:
            try:
                if rollouts is not None:
                    rollouts.close()
            finally:
                resources.close()

    with anyio.CancelScope(shield=True):
        await anyio.to_thread.run_sync(close)
