"""DSPy: ``dspy.Predict`` over a Signature (the posting in, the extraction's fields out).

The LM is ``dspy.LM("openai/...")`` at the fake server (LiteLLM underneath) with ``cache=False``
and ``num_retries=0``; the disk and memory caches are switched off, the call history is disabled,
and the adapter is ``JSONAdapter`` (the reply is a JSON object; the default ChatAdapter would
fail to parse it and retry with JSON). DSPy writes its own instructions around the task's prompt:
its prompt is not byte-for-byte the others'. LiteLLM's per-call logging object stays.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

from benchmarks.peers.base import (
    API_KEY,
    MODEL,
    TIMEOUT_S,
    Run,
    environment,
    job_details_model,
    measured,
    work,
)
from benchmarks.peers.litellm_completion import ENVIRONMENT, quiet_litellm

__all__ = ("run",)


def _signature(dspy: Any, instructions: str) -> Any:
    model = job_details_model()
    fields: dict[str, Any] = {"job_posting": (str, dspy.InputField())}
    for name, info in model.model_fields.items():
        fields[name] = (info.annotation, dspy.OutputField())
    return dspy.Signature(fields, instructions)


async def run(base_url: str, calls: int, in_flight: int) -> Run:
    """``await predict.acall(job_posting=...)``, then the prediction checked by the model."""
    with (
        tempfile.TemporaryDirectory() as tmp,
        environment({**ENVIRONMENT, "DSPY_CACHEDIR": os.path.join(tmp, "dspy")}),
    ):
        quiet_litellm()
        import dspy

        dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=False)
        job = work()
        model = job_details_model()
        placeholders = {name: f"(the `{name}` input field)" for name in job.variables}
        instructions = f"{job.system}\n\n{job.render(placeholders)}"
        predict = dspy.Predict(_signature(dspy, instructions))
        lm = dspy.LM(
            f"openai/{MODEL}",
            api_base=base_url,
            api_key=API_KEY,
            cache=False,
            num_retries=0,
            timeout=TIMEOUT_S,
            temperature=0.0,
            max_tokens=1024,
        )
        posting = str(job.input["job_posting"])

        async def one() -> None:
            prediction = await predict.acall(job_posting=posting)
            model.model_validate(prediction.toDict())

        with dspy.context(lm=lm, adapter=dspy.JSONAdapter(), disable_history=True):
            return await measured(calls, in_flight, one)
