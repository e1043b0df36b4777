"""``tlm batch``: a task over a JSONL file, synchronously or through the providers' batch APIs.

- :func:`run_local_batch`: :meth:`tlm.Engine.map` over the file, bounded memory.
- :func:`run_ray_batch` (``tlm[ray]``): Ray Data reads the file, a pool of actors (one engine
  each) runs it.
- :func:`run_provider_batch`: OpenAI's Batch API / Anthropic's Message Batches at the batch price,
  with the same validation, re-asks, verification and records; its state survives restarts
  (:func:`resume_provider_batch`) and it can be cancelled (:func:`cancel_provider_batch`).

Each output line is keyed by its input's line number (blank lines are not inputs); every input ends
as one execution record. Local and Ray batches are resumable: a re-run skips the inputs whose
execution already succeeded (:mod:`tlm.batch.resume`).
"""

from typing import TYPE_CHECKING, Any

from tlm.batch.driver import BatchReport, PollPolicy
from tlm.batch.local import run_local_batch
from tlm.batch.provider import (
    batch_state,
    cancel_provider_batch,
    resume_provider_batch,
    run_provider_batch,
)

if TYPE_CHECKING:
    from tlm.batch.ray import run_ray_batch

__all__ = (
    "BatchReport",
    "PollPolicy",
    "run_local_batch",
    "run_provider_batch",
    "resume_provider_batch",
    "cancel_provider_batch",
    "batch_state",
    "run_ray_batch",
)


def __getattr__(name: str) -> Any:
    if name == "run_ray_batch":  # Ray is an optional extra: imported on first use
        from tlm.batch.ray import run_ray_batch

        return run_ray_batch
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
