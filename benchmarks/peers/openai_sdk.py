"""The openai SDK alone: ``AsyncOpenAI`` (retries off), render, call, parse, validate the schema."""

from __future__ import annotations

import json

from benchmarks.peers.base import API_KEY, MODEL, TIMEOUT_S, Run, measured, work

__all__ = ("run",)


async def run(base_url: str, calls: int, in_flight: int) -> Run:
    """Render the prompt, ``chat.completions.create``, ``json.loads``, jsonschema-validate."""
    import jsonschema
    from openai import AsyncOpenAI

    job = work()
    schema = dict(job.schema)
    validator = jsonschema.Draft202012Validator(schema)
    async with AsyncOpenAI(
        base_url=base_url, api_key=API_KEY, max_retries=0, timeout=TIMEOUT_S
    ) as client:

        async def one() -> None:
            completion = await client.chat.completions.create(
                model=MODEL,
                messages=[
                    {"role": "system", "content": job.system},
                    {"role": "user", "content": job.render()},
                ],
                temperature=0.0,
                max_tokens=1024,
                seed=0,
                response_format={
                    "type": "json_schema",
                    "json_schema": {"name": "output", "schema": schema, "strict": False},
                },
            )
            validator.validate(json.loads(completion.choices[0].message.content or "null"))

        return await measured(calls, in_flight, one)
