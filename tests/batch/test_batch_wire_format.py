"""The fake batch servers speak the providers' exact wire formats: the official SDKs drive them."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import openai
from openai.types.chat import ChatCompletion

from tlm.testing import ReplyLike, anthropic_error, openai_error
from tlm.testing.batch_servers import FakeAnthropicBatchServer, FakeOpenAIBatchServer

KEY = "sk-wire-0123456789"


def _chat_line(custom_id: str, text: str) -> str:
    body = {"model": "gpt-x", "messages": [{"role": "user", "content": text}]}
    line = {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body}
    return json.dumps(line)


async def test_the_openai_sdk_runs_a_batch_against_the_fake() -> None:
    def script(body: dict[str, Any]) -> ReplyLike:
        text = str(body["messages"][-1]["content"])
        return openai_error(400, "rejected line") if "reject" in text else f"echo {text}"

    async with FakeOpenAIBatchServer(script, api_key=KEY, polls_to_complete=2) as server:
        client = openai.AsyncOpenAI(api_key=KEY, base_url=server.base_url, max_retries=0)
        content = "\n".join(
            [_chat_line("a", "one"), _chat_line("b", "reject me"), _chat_line("c", "three")]
        ).encode()
        uploaded = await client.files.create(file=("in.jsonl", content), purpose="batch")
        assert uploaded.purpose == "batch"
        assert uploaded.bytes == len(content)
        batch = await client.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        assert batch.status == "validating"
        server.expire(["c"])
        statuses = []
        while batch.status not in ("completed", "failed", "expired", "cancelled"):
            batch = await client.batches.retrieve(batch.id)
            statuses.append(batch.status)
        assert statuses == ["in_progress", "expired"]
        assert batch.request_counts is not None
        assert (batch.request_counts.total, batch.request_counts.failed) == (3, 2)
        assert batch.output_file_id
        assert batch.error_file_id
        output = (await client.files.content(batch.output_file_id)).text.splitlines()
        error_text = (await client.files.content(batch.error_file_id)).text
        errors = [json.loads(x) for x in error_text.splitlines()]
        await client.close()
    ok = json.loads(output[0])
    assert ok["custom_id"] == "a"
    assert ok["response"]["status_code"] == 200
    assert ChatCompletion.model_validate(ok["response"]["body"]).choices[0].message.content == (
        "echo one"
    )
    by_id = {e["custom_id"]: e for e in errors}
    assert by_id["b"]["response"]["status_code"] == 400
    assert by_id["c"]["response"] is None
    assert by_id["c"]["error"]["code"] == "batch_expired"


async def test_the_openai_sdk_cancels_and_sees_a_failed_batch() -> None:
    async with FakeOpenAIBatchServer(api_key=KEY, polls_to_complete=5, fail_batches=1) as server:
        client = openai.AsyncOpenAI(api_key=KEY, base_url=server.base_url, max_retries=0)
        uploaded = await client.files.create(
            file=("in.jsonl", _chat_line("a", "x").encode()), purpose="batch"
        )
        failed = await client.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        assert failed.status == "failed"
        assert failed.errors
        assert failed.errors.data
        batch = await client.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        cancelling = await client.batches.cancel(batch.id)
        assert cancelling.status == "cancelling"
        assert (await client.batches.retrieve(batch.id)).status == "cancelled"
        await client.close()


async def test_the_anthropic_sdk_runs_a_message_batch_against_the_fake() -> None:
    def replies(body: dict[str, Any]) -> ReplyLike:
        text = str(body["messages"][-1]["content"])
        if "reject" in text:
            return anthropic_error(400, "invalid_request_error", "rejected")
        return f"echo {text}"

    async with FakeAnthropicBatchServer(replies, api_key=KEY, polls_to_complete=2) as server:
        client = anthropic.AsyncAnthropic(api_key=KEY, base_url=server.base_url, max_retries=0)
        requests = [
            {
                "custom_id": cid,
                "params": {
                    "model": "claude-x",
                    "max_tokens": 64,
                    "messages": [{"role": "user", "content": text}],
                },
            }
            for cid, text in (("a", "one"), ("b", "reject"), ("c", "three"))
        ]
        batch = await client.messages.batches.create(requests=requests)  # type: ignore[arg-type]
        assert batch.processing_status == "in_progress"
        assert batch.request_counts.processing == 3
        server.expire(["c"])
        statuses = []
        while batch.processing_status != "ended":
            batch = await client.messages.batches.retrieve(batch.id)
            statuses.append(batch.processing_status)
        assert statuses == ["in_progress", "ended"]
        assert batch.results_url
        assert (batch.request_counts.succeeded, batch.request_counts.errored) == (1, 1)
        assert batch.request_counts.expired == 1
        lines = await client.messages.batches.results(batch.id)
        results = {r.custom_id: r.result async for r in lines}
        other = await client.messages.batches.create(requests=requests[:1])  # type: ignore[arg-type]
        canceling = await client.messages.batches.cancel(other.id)
        assert canceling.processing_status == "canceling"
        ended = await client.messages.batches.retrieve(other.id)
        assert ended.processing_status == "ended"
        assert ended.request_counts.canceled == 1
        await client.close()
    assert results["a"].type == "succeeded"
    assert results["a"].message.content[0].type == "text"
    assert results["b"].type == "errored"
    assert results["b"].error.error.type == "invalid_request_error"
    assert results["c"].type == "expired"
