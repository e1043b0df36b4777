"""The peer registry and the openai SDK peer (a test dependency) over a real socket."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
from pydantic import ValidationError

from benchmarks import throughput
from benchmarks.fixtures import OUTPUT, OUTPUT_TEXT, POSTING
from benchmarks.peers import PEERS, Peer, available, missing, versions
from benchmarks.peers.__main__ import main as peer_main
from benchmarks.peers.base import job_details_model, work
from benchmarks.peers.openai_sdk import run as openai_sdk
from tlm.testing import FakeOpenAIServer

ABSENT = Peer("Absent", "no_such_peer", ("json", "tlm_no_such_framework_h12"), "tlm-no-such-dist")
PRESENT = Peer("Present", "openai_sdk", ("json", "openai"), "openai")


def _reply(body: dict[str, Any]) -> str:
    return OUTPUT_TEXT


def test_every_peer_of_the_issue_is_registered() -> None:
    names = [p.name for p in PEERS]
    assert names == ["openai SDK", "LangChain", "DSPy", "LiteLLM", "Instructor", "Pydantic AI"]
    assert len({p.module for p in PEERS}) == len(PEERS)


def test_a_missing_framework_is_left_out_with_the_reason() -> None:
    assert not ABSENT.installed()
    assert ABSENT.version() == "not installed"
    assert "Absent" not in available([ABSENT, PRESENT], isolated=False)
    assert set(available([ABSENT, PRESENT])) == {"Present"}
    reasons = missing([ABSENT, PRESENT])
    assert list(reasons) == ["Absent"]
    assert "bench-peers" in reasons["Absent"]
    assert "tlm-no-such-dist" in reasons["Absent"]
    assert versions([ABSENT])["tlm-no-such-dist"] == "not installed"


def test_the_throughput_scenario_runs_the_installed_peers_after_the_floor_and_tlm() -> None:
    names = list(throughput.RUNNERS)
    assert names[:3] == ["raw aiohttp", "tlm", "openai SDK"]
    peers_in = set(names[2:])
    assert peers_in | set(throughput.PEERS_LEFT_OUT) == {p.name for p in PEERS}
    assert not peers_in & set(throughput.PEERS_LEFT_OUT)


def test_the_work_is_the_task_prompt_and_output_schema() -> None:
    job = work()
    prompt = job.render()
    assert POSTING in prompt
    assert "{{" not in prompt
    assert job.schema["required"] == ["job_title", "responsibilities", "requirements"]
    assert job.response_format()["json_schema"]["schema"] == job.schema
    jsonschema.Draft202012Validator(job.schema).validate(OUTPUT)


def test_the_pydantic_model_accepts_the_reply_and_rejects_what_the_schema_and_rules_reject() -> (
    None
):
    model = job_details_model()
    assert model.model_validate(OUTPUT).job_title == OUTPUT["job_title"]
    with pytest.raises(ValidationError):
        model.model_validate({**OUTPUT, "responsibilities": []})
    with pytest.raises(ValidationError):
        model.model_validate({**OUTPUT, "salary_range": {"currency": "euro", "period": "year"}})
    with pytest.raises(ValidationError):
        model.model_validate({"location": "Remote"})


async def test_openai_sdk_peer_does_the_work_over_a_socket() -> None:
    async with FakeOpenAIServer(_reply) as server:
        run = await openai_sdk(server.base_url, 6, 3)
    assert run.calls == 6
    assert run.wall_s > 0
    assert run.cpu_s > 0
    assert len(server.requests) == 2 * 3 + 6  # warm-up, then the measured calls
    body = server.requests[-1].body
    assert body["messages"][0]["content"] == work().system
    assert body["messages"][1]["content"] == work().render()
    assert body["response_format"]["json_schema"]["schema"] == dict(work().schema)


async def test_openai_sdk_peer_validates_the_reply() -> None:
    async with FakeOpenAIServer(lambda body: json.dumps({"job_title": 7})) as server:
        with pytest.raises(ExceptionGroup) as raised:
            await openai_sdk(server.base_url, 1, 1)
    assert raised.group_contains(jsonschema.ValidationError, match="7 is not of type 'string'")


async def test_a_peer_runs_in_a_process_of_its_own() -> None:
    async with FakeOpenAIServer(_reply) as server:
        run = await PRESENT.isolated()(server.base_url, 4, 2)
        assert run.calls == 4
    assert len(server.requests) == 2 * 2 + 4


def test_the_peer_command_refuses_an_unknown_peer(capsys: pytest.CaptureFixture[str]) -> None:
    assert peer_main(["no_such_peer", "http://127.0.0.1:9/v1", "1", "1"]) == 2
    assert "unknown peer 'no_such_peer'" in capsys.readouterr().err
    assert peer_main([]) == 2
