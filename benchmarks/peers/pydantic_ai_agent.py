"""Pydantic AI: an ``Agent`` with an OpenAI-compatible chat model and ``NativeOutput(JobDetails)``.

The model's OpenAI client has ``max_retries=0`` and the agent's retries are 0; its
instrumentation (OpenTelemetry/Logfire) stays off (it is on only after ``Agent.instrument_all``).
It has no cache. ``NativeOutput`` asks for the schema with ``response_format`` and parses the
reply's text.
"""

from __future__ import annotations

from benchmarks.peers.base import API_KEY, MODEL, TIMEOUT_S, Run, job_details_model, measured, work

__all__ = ("run",)


async def run(base_url: str, calls: int, in_flight: int) -> Run:
    """Render, ``await agent.run(prompt)``, the validated model in ``result.output``."""
    from openai import AsyncOpenAI
    from pydantic_ai import Agent, NativeOutput
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    job = work()
    model = job_details_model()
    async with AsyncOpenAI(
        base_url=base_url, api_key=API_KEY, max_retries=0, timeout=TIMEOUT_S
    ) as openai_client:
        chat_model = OpenAIChatModel(MODEL, provider=OpenAIProvider(openai_client=openai_client))
        agent = Agent(
            chat_model,
            output_type=NativeOutput(model),
            system_prompt=job.system,
            retries=0,
            model_settings={"temperature": 0.0, "max_tokens": 1024, "seed": 0},
        )

        async def one() -> None:
            result = await agent.run(job.render())
            assert isinstance(result.output, model)

        return await measured(calls, in_flight, one)
