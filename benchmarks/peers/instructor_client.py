"""Instructor: ``instructor.from_openai(AsyncOpenAI(...), mode=JSON_SCHEMA)`` with a pydantic model.

The OpenAI client has ``max_retries=0``; Instructor's own re-asking is off (``max_retries=0``:
one attempt). It has no cache or telemetry of its own.
"""

from __future__ import annotations

from benchmarks.peers.base import API_KEY, MODEL, TIMEOUT_S, Run, job_details_model, measured, work

__all__ = ("run",)


async def run(base_url: str, calls: int, in_flight: int) -> Run:
    """Render, ``create(response_model=JobDetails)`` (parse and validate in one)."""
    import instructor
    from openai import AsyncOpenAI

    job = work()
    model = job_details_model()
    async with AsyncOpenAI(
        base_url=base_url, api_key=API_KEY, max_retries=0, timeout=TIMEOUT_S
    ) as openai_client:
        client = instructor.from_openai(openai_client, mode=instructor.Mode.JSON_SCHEMA)

        async def one() -> None:
            result = await client.chat.completions.create(
                model=MODEL,
                response_model=model,
                messages=[
                    {"role": "system", "content": job.system},
                    {"role": "user", "content": job.render()},
                ],
                temperature=0.0,
                max_tokens=1024,
                seed=0,
                max_retries=0,
            )
            assert isinstance(result, model)

        return await measured(calls, in_flight, one)
