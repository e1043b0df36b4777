"""``tlm batch``: a task over a JSONL file, synchronously or through the providers' batch APIs.

- :func:`run_local_batch`: :meth:`tlm.Engine.map` over the file, bounded memory.
- :func:`run_provider_batch`: OpenAI's Batch API / Anthropic's Message Batches at the batch price,
  with the same validation, re-asks, verification and records; its state survives restarts
  (:func:`resume_provider_batch`) and it can be cancelled (:func:`cancel_provider_batch`).

Each output line is keyed by its input's line number (blank lines are not inputs); every input ends
as one execution record.
"""

from tlm.batch.driver import BatchReport, PollPolicy
from tlm.batch.local import run_local_batch
from tlm.batch.provider import (
    batch_state,
    cancel_provider_batch,
    resume_provider_batch,
    run_provider_batch,
)

__all__ = (
    "BatchReport",
    "PollPolicy",
    "run_local_batch",
    "run_provider_batch",
    "resume_provider_batch",
    "cancel_provider_batch",
    "batch_state",
)
