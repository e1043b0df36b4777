"""Through the real embedded local models (the ``local`` extra): few, short calls.

The model files are assembled once per session into a temporary data directory.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import anyio
import pytest

from tlm.catalog import Catalog
from tlm.errors import ConfigurationError
from tlm.providers._local_server import LocalModelServer
from tlm.providers.base import ChatRequest, ChatResponse
from tlm.providers.local import LocalProvider

pytestmark = pytest.mark.local_model

QWEN = "qwen2.5-coder-0.5b-instruct"
SMOL = "smollm2-135m-instruct"

POSTING = (
    "Senior Python Engineer - Berlin (hybrid)\n"
    "Acme GmbH builds logistics software. You will design async services and review code.\n"
    "Requirements: 5+ years of Python, asyncio, PostgreSQL. Contact: jobs@acme.example"
)
JOB_SCHEMA = {
    "type": "object",
    "properties": {
        "job_title": {"type": "string"},
        "location": {"type": "string"},
        "requirements": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["job_title", "location", "requirements"],
}
PERSON_SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
}


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("local-models")


@pytest.fixture
def provider(data_dir: Path) -> LocalProvider:
    return LocalProvider(catalog=Catalog.load(), data_dir=data_dir)


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


async def test_both_local_models_answer_schema_constrained_json_and_repeat_when_greedy(
    provider: LocalProvider, data_dir: Path
) -> None:
    replies: dict[str, ChatResponse] = {}
    requests = {
        QWEN: ChatRequest.from_prompt(
            QWEN,
            f"Extract the job title, location and requirements as JSON.\n\n{POSTING}",
            temperature=0,
            max_tokens=96,
            output_schema=JOB_SCHEMA,
        ),
        SMOL: ChatRequest.from_prompt(
            SMOL,
            "Alice is 30 years old. Reply with JSON giving her name and age.",
            temperature=0,
            max_tokens=40,
            output_schema=PERSON_SCHEMA,
        ),
    }

    async def ask(model: str) -> None:
        replies[model] = await provider.complete(requests[model])

    async with provider:
        async with anyio.create_task_group() as tg:
            for model in requests:
                tg.start_soon(ask, model)
        servers = [provider.server(m) for m in requests]
        pids = [s.pid for s in servers if s is not None and s.pid is not None]
        assert len(set(pids)) == 2  # one process per model
        again = await provider.complete(requests[SMOL])  # greedy: the same text again

    assert again.text == replies[SMOL].text

    assert all(_gone(pid) for pid in pids)
    log = (data_dir / "logs" / f"{SMOL}.log").read_text()
    assert "Uvicorn running on http://127.0.0.1:" in log
    assert "POST /v1/chat/completions" not in log  # no access log: the file stays small
    job = replies[QWEN].parsed
    assert isinstance(job, dict)
    assert set(JOB_SCHEMA["required"]) <= job.keys()
    assert "python" in job["job_title"].lower()
    person = replies[SMOL].parsed
    assert isinstance(person, dict)
    assert set(PERSON_SCHEMA["required"]) <= person.keys()
    for reply in replies.values():
        assert reply.provider == "local"
        assert reply.usage.input_tokens > 0
        assert reply.usage.output_tokens > 0
        assert reply.cost_usd == 0.0


async def test_real_server_rejects_a_broken_model_file_with_its_own_message(
    tmp_path: Path,
) -> None:
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"not a gguf file at all" * 10)
    server = LocalModelServer(model_path=bad, alias="broken", log_path=tmp_path / "broken.log")
    with pytest.raises(ConfigurationError) as info:
        await server.start()
    message = str(info.value)
    assert "exited with status" in message
    assert str(bad) in message
    assert not server.running


async def test_a_restarted_server_reuses_the_saved_prompt_prefix(data_dir: Path) -> None:
    instructions = "Answer with the job title of the posting only. " * 12

    async def ask(posting: str) -> str:
        async with LocalProvider(catalog=Catalog.load(), data_dir=data_dir) as provider:
            request = ChatRequest.from_prompt(
                QWEN, f"{instructions}\nPosting: {posting}", temperature=0, max_tokens=8
            )
            return (await provider.complete(request)).text

    first = await ask("Senior Python Engineer - Berlin (hybrid)")
    log = data_dir / "logs" / f"{QWEN}.log"
    seen = len(log.read_text())
    second = await ask("Line Cook - Galway")  # a fresh process: only the posting is new
    again = await ask("Senior Python Engineer - Berlin (hybrid)")
    hits = re.findall(r"prompt cache: found (\d+) of (\d+) prompt tokens", log.read_text()[seen:])
    assert len(hits) == 2
    assert all(int(found) >= 0.8 * int(total) for found, total in hits), hits
    assert "python" in first.lower()
    assert "cook" in second.lower()
    assert again == first  # greedy, from a restored state: the same answer
    assert list((data_dir / "prompt-cache").glob(f"{QWEN}-*/*.tokens"))
