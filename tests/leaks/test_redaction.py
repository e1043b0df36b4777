"""Issue 12 item 15: a redacted field's value reaches no file, span, log, error or outbound request.

A unique secret is planted in the redacted ``email`` field (and copied into other fields and into
the model's reply); the task runs through the real engine against the fake OpenAI server on a
socket, with an external verifier on a real local endpoint and the human review fallback. Then
every file under the data directory, every span attribute, the captured logs, the error texts,
the CLI's review and export output and the bytes the endpoint received are searched for it.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.leaks.support import (
    KEY_ENV,
    MODEL,
    contact_task,
    encodings,
    leaks_in_files,
    recording_endpoint,
    verdict,
    write_project,
)
from tlm.cli import main
from tlm.engine import Engine, EngineConfig
from tlm.errors import BadRequest, InputInvalid, OutputInvalid
from tlm.testing import FakeOpenAIServer, openai_error

SECRET = "TOPSECRET-7f3a9c@x.com"
NO_AT = "NOATSIGN-SECRET-5d21e8"  # fails the schema's pattern: the message used to quote it
LONG = "LONGSECRET-" + "q8Zr" * 18 + "@x.com"  # over max_length_60: the rule quoted 59 chars of it
KEY = "zz-provider-key-0f9e8d7c6b5a"  # not key-shaped: only its configured value identifies it


def _span_texts(exporter: InMemorySpanExporter) -> list[str]:
    texts = []
    for span in exporter.get_finished_spans():
        texts.append(span.name)
        texts.extend(f"{k}={v!s}" for k, v in (span.attributes or {}).items())
        texts.append(str(span.status.description))
        texts.extend(str(event.attributes) for event in span.events)
    return texts


def _assert_nowhere(secret: str, texts: list[str], where: str) -> None:
    forms = [form.decode() for form in encodings(secret)]
    found = [text for text in texts if any(form in text for form in forms)]
    assert not found, f"{secret} leaked into {where}: {found[:3]}"


async def test_a_redacted_value_leaks_nowhere(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    exporter = InMemorySpanExporter()
    async with (
        recording_endpoint(verdict(False)) as endpoint,
        FakeOpenAIServer(api_key=KEY) as server,
    ):
        external_step = {"endpoint": f"{endpoint.url}/check", "retries": 0}
        reviewed = contact_task(
            task_id="reviewed_summary",
            verification={
                "method": "external",
                "parameters": external_step,
                "fallback_strategy": "human_review",
            },
        )
        plain = contact_task(task_id="plain_summary")
        definitions, catalog = write_project(tmp_path, server.base_url, reviewed, plain)
        data_dir = tmp_path / "data"
        config = EngineConfig(
            definitions_dir=definitions,
            catalog_path=catalog,
            data_dir=data_dir,
            models=(MODEL,),
            redact=("email",),
            env={KEY_ENV: KEY},
        )
        echo = json.dumps({"summary": f"Write to {SECRET} today"})
        errors: list[str] = []
        async with Engine(config, span_processors=[SimpleSpanProcessor(exporter)]) as engine:
            # 1. the verifier fails the output: it goes to the human review queue
            server.push(echo)
            pending = await engine.execute(
                "reviewed_summary", {"email": SECRET, "note": f"call {SECRET} back"}
            )
            # 2. verified, not reviewed: the output holding the secret must not be cached
            server.push(echo)
            verified = await engine.execute("plain_summary", {"email": SECRET, "note": "call back"})
            # 3. invalid inputs: a wrong type, a failed pattern, a failed length rule
            for bad in ({"email": [SECRET], "note": "x"}, {"email": NO_AT, "note": "x"},
                        {"email": LONG, "note": "x"}):  # fmt: skip
                with pytest.raises(InputInvalid) as caught:
                    await engine.execute("plain_summary", bad)
                errors.append(str(caught.value))
                errors.extend(str(p) for p in caught.value.problems)
            # 4. the model's output is invalid and quotes the secret
            server.push(json.dumps({"summary": 1, "wrong": SECRET}))
            server.push(json.dumps({"summary": 2, "wrong": SECRET}))
            server.push(json.dumps({"summary": 3, "wrong": SECRET}))
            with pytest.raises(OutputInvalid) as invalid:
                await engine.execute("plain_summary", {"email": SECRET, "note": "n"})
            errors.append(str(invalid.value))
            # 5. the provider refuses the request, quoting the prompt in its error text
            server.push(openai_error(400, f"cannot process 'Summarise this note for {SECRET}'"))
            with pytest.raises(BadRequest) as refused:
                await engine.execute("plain_summary", {"email": SECRET, "note": "n"})
            errors.append(str(refused.value))
            engine.flush()

    assert pending.status == "pending"
    assert verified.status == "verified"
    assert verified.output == {"summary": f"Write to {SECRET} today"}  # the caller gets it all
    assert len(endpoint.raw) == 1
    sent = json.loads(endpoint.raw[0])
    assert sent["input"] == {"email": "[REDACTED]", "note": "call [REDACTED] back"}
    assert "[REDACTED]" in errors[0]
    assert "is not of type 'string'" in errors[0]  # still says what is wrong, and where
    assert "$.email" in errors[0]

    runner = CliRunner()
    env = {"TLM_REDACT": "email"}
    review_list = runner.invoke(main, ["review", "--data-dir", str(data_dir), "list", "--json"],
                                env=env)  # fmt: skip
    assert review_list.exit_code == 0, review_list.output
    review_id = json.loads(review_list.output.splitlines()[0])["id"]
    shown = runner.invoke(main, ["review", "--data-dir", str(data_dir), "show", review_id],
                          env=env)  # fmt: skip
    exported = runner.invoke(main, ["export", "--data-dir", str(data_dir)])
    finetune = runner.invoke(main, ["export", "--finetune", "--data-dir", str(data_dir)])
    assert exported.exit_code == 0, exported.output
    assert len(exported.output.splitlines()) == 7  # every execution is recorded
    assert finetune.exit_code == 0, finetune.output
    assert finetune.output.strip()  # the verified execution is a fine-tuning example

    outputs = [review_list.output, shown.output, exported.output, finetune.output]
    logs = [record.getMessage() for record in caplog.records] + [caplog.text]
    for secret in (SECRET, NO_AT, LONG, LONG[:40], KEY):
        assert not leaks_in_files(data_dir, secret), secret
        _assert_nowhere(secret, _span_texts(exporter), "span attributes")
        _assert_nowhere(secret, logs, "logs")
        _assert_nowhere(secret, errors, "error messages")
        _assert_nowhere(secret, outputs, "CLI output")
        _assert_nowhere(secret, [raw.decode() for raw in endpoint.raw], "the verifier request")


async def test_a_verifier_the_user_trusts_receives_the_redacted_fields(tmp_path: Path) -> None:
    async with (
        recording_endpoint(verdict(True)) as endpoint,
        FakeOpenAIServer() as server,
    ):
        task = contact_task(
            verification={
                "method": "external",
                "parameters": {"endpoint": f"{endpoint.url}/check", "retries": 0},
                "fallback_strategy": "fail",
            }
        )
        definitions, catalog = write_project(tmp_path, server.base_url, task)
        config = EngineConfig(
            definitions_dir=definitions,
            catalog_path=catalog,
            data_dir=tmp_path / "data",
            models=(MODEL,),
            redact=("email",),
            external_unredacted=("127.0.0.1",),
            env={KEY_ENV: KEY},
        )
        server.push(json.dumps({"summary": "ok"}))
        async with Engine(config) as engine:
            result = await engine.execute("contact_summary", {"email": SECRET, "note": "n"})
    assert result.status == "verified"
    assert json.loads(endpoint.raw[0])["input"]["email"] == SECRET
    assert not leaks_in_files(tmp_path / "data", SECRET)


def test_redaction_is_configured_from_tlm_toml_and_the_environment(tmp_path: Path) -> None:
    from tlm.engine.config import load_config

    toml = tmp_path / "tlm.toml"
    toml.write_text(
        '[tlm]\nredact = ["email", "phone"]\nexternal_hosts = ["verify.example.com"]\n'
        'external_env = ["MY_TOKEN"]\nexternal_unredacted = ["verify.example.com"]\n',
        encoding="utf-8",
    )
    config = load_config(toml, env={})
    assert config.redact == ("email", "phone")
    assert config.external_hosts == ("verify.example.com",)
    assert config.external_env == ("MY_TOKEN",)
    assert config.external_unredacted == ("verify.example.com",)
    from_env = load_config(toml, env={"TLM_REDACT": "ssn", "TLM_EXTERNAL_ENV": "A, B"})
    assert from_env.redact == ("ssn",)
    assert from_env.external_env == ("A", "B")

    toml.write_text('[tlm]\nexternal_hosts = "x"\nredact = [1]\n', encoding="utf-8")
    from tlm.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="redact must be a list of strings"):
        load_config(toml, env={})


def test_export_masks_records_kept_before_redaction_was_configured(tmp_path: Path) -> None:
    from tlm.store import ExecutionStore, default_db_path
    from tlm.telemetry.records import ExecutionRecord, Performance

    data_dir = tmp_path / "data"
    record = ExecutionRecord(
        execution_id="e1",
        task_id="t",
        task_version="1.0.0",
        input={"email": SECRET, "note": "n"},
        output={"summary": "s", "token": "sk-live-0123456789abcdef"},
        models_used=(MODEL,),
        verification_results=None,
        performance=Performance(execution_time=0.1, tokens_used=3, cost=0.0),
        timestamp="2026-01-01T00:00:00.000000Z",
    )
    with ExecutionStore(default_db_path(data_dir)) as store:
        store.write(record)
    exported = CliRunner().invoke(
        main, ["export", "--data-dir", str(data_dir)], env={"TLM_REDACT": "email"}
    )
    assert exported.exit_code == 0, exported.output
    line = json.loads(exported.output)
    assert line["input"] == {"email": "[REDACTED]", "note": "n"}
    assert line["output"]["token"] == "***"
    assert SECRET not in exported.output


def _echo_email(body: dict[str, Any]) -> str:
    """The model's reply: the summary repeats the email its own prompt carries."""
    prompt = str(body["messages"][-1]["content"])
    email = prompt.split("for ", 1)[1].split(":", 1)[0]
    return json.dumps({"summary": f"mail {email}"})


async def test_map_records_nothing_redacted_either(tmp_path: Path) -> None:
    async with FakeOpenAIServer(_echo_email, api_key=KEY) as server:
        definitions, catalog = write_project(tmp_path, server.base_url, contact_task())
        config = EngineConfig(
            definitions_dir=definitions,
            catalog_path=catalog,
            data_dir=tmp_path / "data",
            models=(MODEL,),
            redact=("email",),
            env={KEY_ENV: KEY},
        )
        secrets = [f"map-secret-{i:03d}@x.com" for i in range(12)]
        inputs: list[dict[str, object]] = [{"email": s, "note": f"for {s}"} for s in secrets]
        inputs[5] = {"email": [secrets[5]], "note": "x"}  # invalid: an error result, recorded
        async with Engine(config) as engine:
            async with engine.map("contact_summary", inputs, max_in_flight=4) as results:
                collected = [result async for result in results]
            engine.flush()
    assert len(collected) == 12
    failed = [r for r in collected if r.error is not None]
    assert len(failed) == 1
    first = next(r for r in collected if r.index == 0)  # map yields in completion order
    assert first.output == {"summary": f"mail {secrets[0]}"}
    assert secrets[5] not in str(failed[0].error)
    for secret in secrets:
        assert not leaks_in_files(tmp_path / "data", secret), secret
