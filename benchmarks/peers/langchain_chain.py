"""LangChain: ``ChatPromptTemplate | ChatOpenAI | PydanticOutputParser`` (a JSON output parser).

Tracing is off through its environment variables (LangSmith), retries are off
(``max_retries=0``), no cache is set; the callback manager still runs per call (it cannot be
left out of a runnable chain).
"""

from __future__ import annotations

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

__all__ = ("ENVIRONMENT", "run")

ENVIRONMENT = {
    "LANGCHAIN_TRACING_V2": "false",
    "LANGSMITH_TRACING": "false",
    "LANGCHAIN_TRACING": "false",
    "LANGSMITH_TRACING_V2": "false",
}


async def run(base_url: str, calls: int, in_flight: int) -> Run:
    """``await chain.ainvoke(input)`` with the prompt in LangChain's mustache template format."""
    with environment(ENVIRONMENT):
        from langchain_core.output_parsers import PydanticOutputParser
        from langchain_core.prompts import ChatPromptTemplate
        from langchain_openai import ChatOpenAI

        job = work()
        model = job_details_model()
        prompt = ChatPromptTemplate.from_messages(
            [("system", job.system), ("human", job.template)], template_format="mustache"
        )
        llm = ChatOpenAI(
            model=MODEL,
            base_url=base_url,
            api_key=API_KEY,
            max_retries=0,
            timeout=TIMEOUT_S,
            temperature=0.0,
            max_tokens=1024,
            seed=0,
            use_responses_api=False,
            cache=False,
        ).bind(response_format=job.response_format())
        chain: Any = prompt | llm | PydanticOutputParser(pydantic_object=model)
        values = {name: job.input.get(name, "") for name in job.variables}

        async def one() -> None:
            result = await chain.ainvoke(values)
            assert isinstance(result, model)

        return await measured(calls, in_flight, one)
