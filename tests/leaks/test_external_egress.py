"""Issue 12 item 16: the external verifier is no exfiltration channel.

Headers expand only allowed environment variables, endpoints must be on allowed hosts (loopback
always is; link-local and metadata addresses only when named exactly), redirects are followed only
within the same origin, and ``tlm validate-task`` warns about all of it with JSON paths.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import attrs
import pytest
from aiohttp import web
from click.testing import CliRunner

from tests.leaks.support import (
    KEY_ENV,
    MODEL,
    contact_task,
    recording_endpoint,
    verdict,
    write_project,
)
from tlm.cli import main
from tlm.definition.loader import parse_definition
from tlm.definition.model import ExternalParams
from tlm.engine import Engine
from tlm.engine.config import load_config
from tlm.testing import FakeOpenAIServer
from tlm.verify import ExternalVerifier
from tlm.verify.base import Candidate, VerificationContext
from tlm.verify.egress import EgressRefused, ExternalPolicy, egress_warnings

CLOUD_KEY = "sk-cloud-AAAA1111BBBB2222CCCC"


def context() -> VerificationContext:
    definition = parse_definition(json.dumps(contact_task()))

    async def unused(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("not called")

    return VerificationContext(
        task=definition,
        input={"email": "a@example.com", "note": "n"},
        primary=Candidate(MODEL, {"summary": "s"}),
        ranked_models=(MODEL,),
        source=unused,
        ask=unused,
        execution_id="e1",
    )


def verifier(endpoint: str, policy: ExternalPolicy, **params: Any) -> ExternalVerifier:
    return ExternalVerifier(
        ExternalParams(endpoint=endpoint, retries=0, timeout_s=5, **params),
        policy=policy,
        backoff_s=0,
    )


async def test_headers_expand_only_allowed_variables() -> None:
    environ = {"OPENAI_API_KEY": CLOUD_KEY, "MY_VERIFIER_TOKEN": "tok-allowed-123"}
    async with recording_endpoint(verdict(True)) as endpoint:
        stealing = verifier(
            f"{endpoint.url}/v",
            ExternalPolicy(env={"MY_VERIFIER_TOKEN"}, environ=environ),
            headers={"X-Steal": "${OPENAI_API_KEY}"},
        )
        refused = await stealing.verify(context())
        allowed = verifier(
            f"{endpoint.url}/v",
            ExternalPolicy(env={"MY_VERIFIER_TOKEN"}, environ=environ),
            headers={"Authorization": "Bearer ${MY_VERIFIER_TOKEN}"},
        )
        accepted = await allowed.verify(context())
    assert refused.passed is False
    assert not refused.decisive
    assert "OPENAI_API_KEY" in refused.details["error"]
    assert "external_env" in refused.details["error"]
    assert CLOUD_KEY not in repr(refused)
    assert accepted.passed is True
    assert len(endpoint.raw) == 1  # the refused check sent nothing
    assert endpoint.headers[0]["Authorization"] == "Bearer tok-allowed-123"
    assert all(CLOUD_KEY not in json.dumps(h) for h in endpoint.headers)


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://[::ffff:169.254.169.254]/",
        "http://[fe80::1]/",
        "https://verifier.example.com/check",
        "ftp://127.0.0.1/x",
    ],
)
async def test_hosts_outside_the_allow_list_are_refused(endpoint: str) -> None:
    # "*" allows any host, but never a metadata address: those need to be named exactly
    verdict_ = await verifier(endpoint, ExternalPolicy(hosts=["*.other.example"])).verify(context())
    assert verdict_.passed is False
    assert not verdict_.decisive
    assert "refused" in verdict_.details["error"]
    star = await verifier(endpoint, ExternalPolicy(hosts=["*"])).verify(context())
    if "example.com" not in endpoint:
        assert "refused" in star.details["error"]


def test_host_rules() -> None:
    policy = ExternalPolicy(hosts=["verify.example.com", "*.corp.example:8443", "10.0.0.0/8"])
    assert policy.host_problem("http://127.0.0.1:5000/x") is None  # loopback is allowed
    assert policy.host_problem("http://localhost/x") is None
    assert policy.host_problem("http://[::1]:9/x") is None
    assert policy.host_problem("https://verify.example.com/x") is None
    assert policy.host_problem("https://VERIFY.example.com./x") is None
    assert policy.host_problem("https://a.corp.example:8443/x") is None
    assert policy.host_problem("https://a.corp.example/x") is not None  # wrong port
    assert policy.host_problem("http://10.1.2.3/x") is None
    assert policy.host_problem("http://verify.example.com.evil.net/x") is not None
    assert policy.host_problem("http://169.254.169.254/") is not None
    explicit = ExternalPolicy(hosts=["169.254.169.254"])
    assert explicit.host_problem("http://169.254.169.254/latest") is None
    assert explicit.host_problem("http://169.254.169.253/latest") is not None
    assert ExternalPolicy(hosts=["169.254.0.0/16"]).host_problem("http://169.254.1.1/") is not None


async def test_redirects_stay_on_the_same_origin() -> None:
    async with recording_endpoint(verdict(True)) as elsewhere:

        def redirect(request: web.Request, body: bytes) -> web.StreamResponse:
            if request.path == "/away":
                raise web.HTTPTemporaryRedirect(f"{elsewhere.url}/stolen")
            if request.path == "/moved":
                raise web.HTTPPermanentRedirect("/new-home")
            return web.json_response({"passed": True})

        async with recording_endpoint(redirect) as origin:
            policy = ExternalPolicy(env={"TOKEN"}, environ={"TOKEN": "tok-secret-999"})
            headers = {"X-Token": "${TOKEN}"}
            away = await verifier(f"{origin.url}/away", policy, headers=headers).verify(context())
            moved = await verifier(f"{origin.url}/moved", policy, headers=headers).verify(context())
    assert away.passed is False
    assert "redirected to another origin" in away.details["error"]
    assert elsewhere.raw == []  # neither the body nor the token went to the other host
    assert moved.passed is True
    assert origin.paths == ["/away", "/moved", "/new-home"]
    assert json.loads(origin.raw[-1])["execution_id"] == "e1"  # the body followed the move


async def test_the_engine_reads_the_allow_lists_from_tlm_toml(tmp_path: Path) -> None:
    async with (
        recording_endpoint(verdict(True)) as endpoint,
        FakeOpenAIServer() as server,
    ):
        task = contact_task(
            verification={
                "method": "external",
                "parameters": {
                    "endpoint": f"{endpoint.url}/check",
                    "retries": 0,
                    "headers": {"Authorization": "Bearer ${MY_VERIFIER_TOKEN}"},
                },
                "fallback_strategy": "fail",
            }
        )
        definitions, catalog = write_project(tmp_path, server.base_url, task)
        toml = tmp_path / "tlm.toml"
        toml.write_text(
            f'[tlm]\ndefinitions = "{definitions}"\ncatalog = "{catalog}"\n'
            f'data_dir = "{tmp_path / "data"}"\nmodels = ["{MODEL}"]\n'
            'external_env = ["MY_VERIFIER_TOKEN"]\n',
            encoding="utf-8",
        )
        env = {"MY_VERIFIER_TOKEN": "tok-from-env-42", KEY_ENV: "unused"}
        server.push(json.dumps({"summary": "ok"}))
        async with Engine(load_config(toml, env=env)) as engine:
            result = await engine.execute("contact_summary", {"email": "a@b.c", "note": "n"})
    assert result.status == "verified"
    assert endpoint.headers[0]["Authorization"] == "Bearer tok-from-env-42"
    records = (tmp_path / "data" / "tlm.db").read_bytes()
    assert b"tok-from-env-42" not in records


def test_validate_task_warns_with_json_paths(tmp_path: Path) -> None:
    step = {
        "method": "external",
        "parameters": {
            "endpoint": "http://169.254.169.254/latest/meta-data/",
            "headers": {"X-Key": "${AWS_SECRET_ACCESS_KEY}"},
        },
    }
    chained = {
        "method": "chain",
        "parameters": {
            "steps": [
                {"method": "external", "parameters": {"endpoint": "https://collector.example/x"}},
                step,
            ]
        },
        "fallback_strategy": "fail",
    }
    task = contact_task(verification=chained)
    path = tmp_path / "task.json"
    path.write_text(json.dumps(task), encoding="utf-8")
    runner = CliRunner()
    result = runner.invoke(main, ["validate-task", str(path)], env={"TLM_CONFIG": "none.toml"})
    assert result.exit_code == 0, result.output  # warnings, not problems
    at = "$.verification.parameters.steps"
    assert f"{at}[0].parameters.endpoint: host collector.example is not allowed" in result.output
    assert f"{at}[1].parameters.endpoint: 169.254.169.254 is a link-local" in result.output
    assert f"{at}[1].parameters.headers.X-Key: expands environment variable " in result.output
    assert "AWS_SECRET_ACCESS_KEY" in result.output

    toml = tmp_path / "tlm.toml"
    toml.write_text(
        '[tlm]\nexternal_hosts = ["collector.example", "169.254.169.254"]\n'
        'external_env = ["AWS_SECRET_ACCESS_KEY"]\n',
        encoding="utf-8",
    )
    allowed = runner.invoke(main, ["validate-task", str(path)], env={"TLM_CONFIG": str(toml)})
    assert allowed.exit_code == 0
    assert "warning" not in allowed.output
    definition = parse_definition(json.dumps(task))
    assert egress_warnings(definition, ExternalPolicy()) != []


def test_names_resolving_to_metadata_addresses_are_refused() -> None:
    policy = ExternalPolicy(hosts=["verify.example.com", "*.corp.example"])
    policy.check_addresses("verify.example.com", 443, ["10.0.0.1", "::1"])
    for host in ("verify.example.com", "a.corp.example", "localhost"):
        with pytest.raises(EgressRefused, match=r"resolves to 169\.254\.169\.254"):
            policy.check_addresses(host, 443, ["10.0.0.1", "169.254.169.254"])
    with pytest.raises(EgressRefused):
        policy.check_addresses("a.corp.example", 80, ["fe80::1%eth0"])
    named = ExternalPolicy(hosts=["verify.example.com", "169.254.169.254"])
    named.check_addresses("verify.example.com", 443, ["169.254.169.254"])
    google = ExternalPolicy(hosts=["metadata.google.internal"])
    google.check_addresses("metadata.google.internal", 80, ["169.254.169.254"])


async def test_the_verifiers_own_session_checks_every_dns_answer() -> None:
    @attrs.frozen
    class RefuseEverything(ExternalPolicy):
        def check_addresses(self, host: str, port: int, addresses: Iterable[str]) -> None:
            raise EgressRefused(f"host {host} resolves to a refused address")

    async with recording_endpoint(verdict(True)) as endpoint:
        port = endpoint.url.rsplit(":", 1)[1]
        by_name = f"http://localhost:{port}/v"
        accepted = await verifier(by_name, ExternalPolicy()).verify(context())
        refused = await verifier(by_name, RefuseEverything()).verify(context())
    assert accepted.passed is True
    assert refused.passed is False
    assert "resolves to a refused address" in refused.details["error"]
    assert len(endpoint.raw) == 1
