"""Rankings that follow ``tlm update-rankings`` while the engine runs.

:class:`LiveEstimates` is the engine's ``estimates=`` hook over a
:class:`~tlm.learn.rankings_store.RankingsStore`: a
:class:`~tlm.learn.estimator.RankingsEstimator` over the newest rankings, replaced when the
store's version moves. The selection path only compares a clock reading with the time of the
next check; the check (a ``stat`` of ``rankings.json``, or one primary-key lookup in
PostgreSQL) and any reload run in a background thread at most every ``refresh_s`` seconds, and
the new estimator is swapped in whole. A failed check or a malformed new ranking is logged and
the current one kept. While no rankings exist the hook is falsy and returns nothing, so the
engine orders models by the catalog's priors exactly as without a hook.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Final

from tlm.estimates import ModelEstimate
from tlm.learn.estimator import RankingsEstimator, cold_start_priors_for
from tlm.learn.rankings import Policy

if TYPE_CHECKING:
    from pathlib import Path

    from tlm.catalog import Catalog
    from tlm.definition.registry import DefinitionRegistry
    from tlm.engine.config import EngineConfig
    from tlm.learn.rankings_store import RankingsStore

__all__ = ("LiveEstimates", "REFRESH_S", "refresh_interval", "open_live_estimates")

REFRESH_S: Final = 5.0
"""Default seconds between two checks for new rankings (``TLM_RANKINGS_REFRESH_S``)."""
_log = logging.getLogger("tlm.learn")


def refresh_interval(env: Mapping[str, str] | None = None) -> float:
    """``TLM_RANKINGS_REFRESH_S`` from ``env`` (default the process environment), else
    :data:`REFRESH_S`."""
    raw = (os.environ if env is None else env).get("TLM_RANKINGS_REFRESH_S", "")
    try:
        value = float(raw) if raw else REFRESH_S
    except ValueError:
        value = REFRESH_S
    return value if value > 0 else REFRESH_S


class LiveEstimates:
    """The engine's estimates hook over the newest rankings of ``store`` (module docstring).

    Args:
        store: Where the rankings are (file or PostgreSQL); closed by :meth:`close`.
        refresh_s: Seconds between two checks for a new version at most.
        catalog, models, registry, policy, rng, min_samples: As for
            :func:`~tlm.learn.estimator.load_estimator` (the same ``rng`` across reloads).
    """

    def __init__(
        self,
        store: RankingsStore,
        *,
        refresh_s: float = REFRESH_S,
        catalog: Catalog | None = None,
        models: Iterable[str] | None = None,
        registry: DefinitionRegistry | None = None,
        policy: Policy = "thompson",
        rng: random.Random | None = None,
        min_samples: int = 5,
    ) -> None:
        self.store = store
        self.refresh_s = refresh_s
        self._catalog = catalog
        self._models = tuple(models) if models is not None else None
        self._registry = registry
        self._policy: Policy = policy
        self._rng = rng if rng is not None else random.Random()
        self._min_samples = min_samples
        self._estimator: RankingsEstimator | None = None
        self._version: str | None = None
        self._next_check = 0.0
        self._checking = threading.Lock()
        self._checker: threading.Thread | None = None
        self._closed = False
        self.reloads = 0
        """How many times rankings were (re)loaded."""
        self.refresh()

    @property
    def estimator(self) -> RankingsEstimator | None:
        """The estimator over the rankings in use (``None``: none saved yet)."""
        return self._estimator

    def refresh(self) -> bool:
        """Check the store now and load its rankings if they changed; whether they did."""
        version = self.store.version()
        if version == self._version:
            return False
        rankings = self.store.load()
        if rankings is None:
            self._estimator, self._version = None, version
            return True
        estimator = RankingsEstimator(
            rankings,
            policy=self._policy,
            rng=self._rng,
            min_samples=self._min_samples,
            catalog=self._catalog,
            models=self._models,
            priors=cold_start_priors_for(rankings, self._registry),
        )
        self._estimator, self._version = estimator, version
        self.reloads += 1
        return True

    def _due(self) -> None:
        now = time.monotonic()
        if now < self._next_check or self._closed:
            return
        self._next_check = now + self.refresh_s
        if self._checking.acquire(blocking=False):
            self._checker = threading.Thread(target=self._check, name="tlm-rankings", daemon=True)
            self._checker.start()

    def _check(self) -> None:
        try:
            if not self._closed and self.refresh():
                _log.info("rankings reloaded from %s", self.store.where)
        except Exception as exc:  # keep the rankings in use; try again at the next check
            _log.warning("cannot check for new rankings in %s: %s", self.store.where, exc)
        finally:
            self._checking.release()

    def __bool__(self) -> bool:
        self._due()
        return self._estimator is not None

    def __call__(self, task_id: str) -> Mapping[str, ModelEstimate]:
        """Estimates for every known model on ``task_id`` (empty while no rankings exist)."""
        self._due()
        estimator = self._estimator
        return {} if estimator is None else estimator(task_id)

    def close(self) -> None:
        """Stop checking, wait for a check in progress, and close the store's connection (if it
        has one); the rankings in use stay."""
        self._closed = True
        with self._checking:  # no check runs (or starts) past this point
            checker, self._checker = self._checker, None
            self.store.close()
        if checker is not None:
            checker.join()


def open_live_estimates(
    data_dir: Path,
    config: EngineConfig,
    *,
    catalog: Catalog | None = None,
    models: Iterable[str] | None = None,
    registry: DefinitionRegistry | None = None,
) -> LiveEstimates:
    """The engine's hook over the rankings of ``config.database`` (else ``data_dir``'s file),
    checked every ``TLM_RANKINGS_REFRESH_S`` seconds (of ``config.env``).

    Raises:
        ConfigurationError: the rankings are malformed.
        StoreError: the database cannot be reached.
    """
    from tlm.learn.rankings_store import open_rankings

    store = open_rankings(data_dir, config.database)
    try:
        return LiveEstimates(
            store,
            refresh_s=refresh_interval(config.env),
            catalog=catalog,
            models=models,
            registry=registry,
        )
    except BaseException:
        store.close()
        raise
