"""LiteLLM: ``litellm.acompletion`` with an ``openai/`` model at the fake server.

Off: telemetry, every callback list, the cache, retries (``num_retries=0``, ``max_retries=0``),
the remote model-cost-map fetch (``LITELLM_LOCAL_MODEL_COST_MAP``). Not removable: its per-call
logging object and the cost/usage bookkeeping it does after each response.
"""

from __future__ import annotations

import json
from typing import Any

from benchmarks.peers.base import API_KEY, MODEL, TIMEOUT_S, Run, environment, measured, work

__all__ = ("ENVIRONMENT", "quiet_litellm", "run")

ENVIRONMENT = {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_TELEMETRY": "False"}
"""Set while a LiteLLM-based peer runs: no network fetch of the cost map, no telemetry."""


def quiet_litellm() -> Any:
    """Import LiteLLM with its telemetry, callbacks, cache and debug output off."""
    with environment(ENVIRONMENT):
        import litellm

    litellm.telemetry = False
    litellm.cache = None
    litellm.callbacks = []
    litellm.success_callback = []
    litellm.failure_callback = []
    litellm._async_success_callback = []
    litellm._async_failure_callback = []
    litellm.suppress_debug_info = True
    litellm.turn_off_message_logging = True
    litellm.num_retries = 0
    return litellm


async def run(base_url: str, calls: int, in_flight: int) -> Run:
    """Render, ``acompletion``, ``json.loads``, jsonschema-validate."""
    import jsonschema

    with environment(ENVIRONMENT):
        litellm = quiet_litellm()
        job = work()
        validator = jsonschema.Draft202012Validator(job.schema)

        async def one() -> None:
            response = await litellm.acompletion(
                model=f"openai/{MODEL}",
                api_base=base_url,
                api_key=API_KEY,
                messages=[
                    {"role": "system", "content": job.system},
                    {"role": "user", "content": job.render()},
                ],
                temperature=0.0,
                max_tokens=1024,
                seed=0,
                response_format=job.response_format(),
                num_retries=0,
                timeout=TIMEOUT_S,
                max_retries=0,
                caching=False,
            )
            validator.validate(json.loads(response.choices[0].message.content or "null"))

        return await measured(calls, in_flight, one)
