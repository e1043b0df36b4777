"""The learned state on disk and its update from the execution log.

``tlm update-rankings`` writes, beside ``rankings.json``:

* ``selector.json``: the input-aware selector (:mod:`tlm.learn.selector`), its predictors learned
  record by record from the log (every answer a record holds);
* ``cascades.json``: per task whose definition declares ``"ladder": "learned"``, the cascade plan
  (:mod:`tlm.learn.cascade`) learned from the records in which every candidate model answered
  (consensus records, cascades that reached their top) — the only rows whose counterfactuals are
  known. A task with fewer than ``min_outcomes`` such records keeps its cold-start ladder.

The engine loads both when it opens (:func:`load_selector`, :func:`load_cascade_plans`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tlm.errors import ConfigurationError
from tlm.learn.cascade import CascadePlan, Outcome, plan_cascade
from tlm.learn.evidence import answer_evidence, answers_of
from tlm.learn.selector import SELECTOR_FILE, InputAwareSelector
from tlm.telemetry.records import ExecutionRecord

if TYPE_CHECKING:
    from tlm.catalog import Catalog
    from tlm.definition.model import TaskDefinition
    from tlm.definition.registry import DefinitionRegistry
    from tlm.estimates import ModelEstimate
    from tlm.store.base import ExecutionLog as ExecutionStore
    from tlm.telemetry.processor import RecordSink

__all__ = (
    "CASCADES_FILE",
    "load_selector",
    "load_cascade_plans",
    "save_cascade_plans",
    "outcomes_from_records",
    "learn_cascade_plans",
    "build_selector",
    "update_learning",
    "LearningSink",
    "open_learned",
)

CASCADES_FILE = "cascades.json"
FORMAT_VERSION = 1
_log = logging.getLogger(__name__)


def load_selector(
    data_dir: str | os.PathLike[str],
    *,
    fallback: Callable[[str], Mapping[str, ModelEstimate]] | None = None,
    catalog: Catalog | None = None,
    **kwargs: Any,
) -> InputAwareSelector:
    """The selector saved in ``<data_dir>/selector.json``, over the ``fallback`` rankings hook;
    with a ``catalog``, models not yet observed on a task start from its prior quality and
    prices.

    Raises:
        ConfigurationError: the file is unreadable or malformed.
    """
    priors = {card.id: card.prior_quality for card in catalog} if catalog is not None else {}
    return InputAwareSelector.load(
        Path(data_dir) / SELECTOR_FILE,
        fallback=fallback,
        prior_cost=_prices(catalog),
        prior_quality=priors,
        **kwargs,
    )


def _prices(catalog: Catalog | None) -> Callable[[str, int], float | None] | None:
    if catalog is None:
        return None
    from tlm.providers.base import Usage

    def prior_cost(model: str, tokens: int) -> float | None:
        return catalog.get(model).cost(Usage(tokens, 500)) if model in catalog else None

    return prior_cost


def build_selector(
    records: Iterable[ExecutionRecord], *, catalog: Catalog | None = None, **kwargs: Any
) -> InputAwareSelector:
    """A selector learned from ``records`` in order (oldest first)."""
    priors = {card.id: card.prior_quality for card in catalog} if catalog is not None else {}
    selector = InputAwareSelector(prior_quality=priors, prior_cost=_prices(catalog), **kwargs)
    selector.observe_all(records)
    return selector


def load_cascade_plans(data_dir: str | os.PathLike[str]) -> dict[str, CascadePlan]:
    """Learned cascade plans by task id from ``<data_dir>/cascades.json`` (empty without it).

    Raises:
        ConfigurationError: the file is unreadable or malformed.
    """
    path = Path(data_dir) / CASCADES_FILE
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return {str(task): CascadePlan.from_dict(plan) for task, plan in data["plans"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ConfigurationError(f"{path}: invalid cascade plans ({exc})") from None


def save_cascade_plans(data_dir: str | os.PathLike[str], plans: Mapping[str, CascadePlan]) -> Path:
    """Write ``plans`` to ``<data_dir>/cascades.json`` atomically."""
    target = Path(data_dir) / CASCADES_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(target.name + ".tmp")
    body = {"format": FORMAT_VERSION, "plans": {t: p.to_dict() for t, p in sorted(plans.items())}}
    temporary.write_text(json.dumps(body, indent=1) + "\n", encoding="utf-8")
    temporary.replace(target)
    return target


def outcomes_from_records(
    records: Iterable[ExecutionRecord], models: Sequence[str]
) -> list[Outcome]:
    """Rows for :func:`~tlm.learn.cascade.plan_cascade`: records in which every one of
    ``models`` answered, with each answer's cluster, judged correctness and cost."""
    wanted = set(models)
    rows = []
    for record in records:
        answers, _ = answers_of(record)
        if not answers or not wanted <= {m for m, _ in answers}:
            continue
        evidence = {e.model: e for e in answer_evidence(record)}
        if not evidence:
            continue
        correct = {m: e.successes / (e.successes + e.failures) for m, e in evidence.items()}
        details = record.verification_results.details if record.verification_results else {}
        cost = {
            v["model"]: float(v.get("cost_usd") or 0.0)
            for v in details.get("votes", ())
            if isinstance(v, Mapping) and isinstance(v.get("model"), str)
        }
        digest = int(hashlib.sha256(record.execution_id.encode("utf-8")).hexdigest(), 16)
        rows.append(
            Outcome(
                answers={m: c for m, c in answers if m in wanted},
                correct={m: correct.get(m, 0.0) for m in models},
                cost={m: cost.get(m, 0.0) for m in models},
                fold=digest,
            )
        )
    return rows


def learn_cascade_plans(
    records: Sequence[ExecutionRecord],
    definitions: Iterable[TaskDefinition],
    *,
    models: Sequence[str] = (),
    min_outcomes: int = 30,
) -> dict[str, CascadePlan]:
    """A plan per task whose definition asks for a learned ladder and has enough outcomes."""
    from tlm.definition.model import CascadeParams

    plans: dict[str, CascadePlan] = {}
    for definition in definitions:
        params = definition.verification.parameters
        if not isinstance(params, CascadeParams) or not params.learned:
            continue
        candidates = list(params.models or models)
        if len(candidates) < 2:
            continue
        mine = [r for r in records if r.task_id == definition.id]
        outcomes = outcomes_from_records(mine, candidates)
        if len(outcomes) < min_outcomes:
            continue
        plans[definition.id] = plan_cascade(
            outcomes,
            candidates,
            target_quality=params.target_quality,
            max_cost=params.max_cost_usd,
        )
    return plans


def update_learning(
    store: ExecutionStore,
    data_dir: str | os.PathLike[str],
    *,
    period: timedelta | None = timedelta(days=30),
    registry: DefinitionRegistry | None = None,
    catalog: Catalog | None = None,
    now: datetime | None = None,
) -> tuple[InputAwareSelector, dict[str, CascadePlan]]:
    """Learn the selector and the learned cascades from the store's records of the last
    ``period`` (oldest first) and write ``selector.json`` and ``cascades.json`` in ``data_dir``."""
    now = now or datetime.now(UTC)
    since = None if period is None else now - period
    records = list(store.iter_query(since=since))
    selector = build_selector(records, catalog=catalog)
    selector.save(Path(data_dir) / SELECTOR_FILE)
    definitions = (
        [registry.get(task_id) for task_id in registry.task_ids()] if registry is not None else []
    )
    models = catalog.ids() if catalog is not None else ()
    plans = learn_cascade_plans(records, definitions, models=models)
    save_cascade_plans(data_dir, plans)
    return selector, plans


class LearningSink:
    """A record sink in front of the store that also feeds each record to a learner.

    The engine puts it between its span processor and its store when an input-aware selector is
    in use, so the selector keeps learning from every execution of the running process (after the
    record is handed to the store, so a learner's failure never costs a record).
    """

    def __init__(self, store: RecordSink) -> None:
        self.store = store
        self.observer: Callable[[ExecutionRecord], object] | None = None

    def write(self, record: ExecutionRecord, /) -> None:
        """Hand ``record`` to the store, then to the learner."""
        self.store.write(record)
        observer = self.observer
        if observer is not None:
            try:
                observer(record)
            except Exception:  # learning is best effort; the record is already kept
                _log.exception("cannot learn from execution record %s", record.execution_id)

    def flush(self, timeout: float | None = None) -> bool:
        """Flush the store."""
        return self.store.flush(timeout)


def open_learned(
    data_dir: str | os.PathLike[str],
    estimates: Callable[[str], Mapping[str, ModelEstimate]] | None,
    catalog: Catalog | None,
    sink: LearningSink | None,
) -> tuple[Callable[[str], Mapping[str, ModelEstimate]] | None, dict[str, CascadePlan]]:
    """The engine's learned state: the selector of ``selector.json`` over ``estimates`` (unless
    ``estimates`` already selects), fed by ``sink``; and the plans of ``cascades.json``.

    Raises:
        ConfigurationError: a malformed file (named).
    """
    if (Path(data_dir) / SELECTOR_FILE).is_file() and not hasattr(estimates, "select"):
        estimates = load_selector(data_dir, fallback=estimates, catalog=catalog)
    observe = getattr(estimates, "observe", None)
    if sink is not None and observe is not None:
        sink.observer = observe
    return estimates, load_cascade_plans(data_dir)
