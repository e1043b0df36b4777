"""The local model server's process lifecycle, and LocalProvider on top of it, with a fake server.

The fake is a real process speaking a sliver of the OpenAI-compatible API on a real loopback port,
so start, readiness, failure, stop and restart are exercised exactly as with llama.cpp's server.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from tlm.catalog import Catalog
from tlm.errors import ConfigurationError
from tlm.providers._local_server import LocalModelServer, child_environment
from tlm.providers.base import ChatRequest, Provider
from tlm.providers.local import LocalProvider, ModelPart

FAKE_SERVER = r"""
import json, signal, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
if "--starts" in args:
    with open(args["--starts"], "a") as f:
        f.write("start\n")
if "--ignore-term" in args:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("fake server: loading", args.get("--model"), file=sys.stderr, flush=True)

class Handler(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass
    def _send(self, obj):
        data = json.dumps(obj).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def do_GET(self):
        self._send({"object": "list", "data": [{"id": "m", "object": "model"}]})
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self._send({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": body["model"],
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": json.dumps(body)}}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8},
        })

ThreadingHTTPServer(("127.0.0.1", int(args["--port"])), Handler).serve_forever()
"""


@pytest.fixture
def fake_script(tmp_path: Path) -> Path:
    path = tmp_path / "fake_server.py"
    path.write_text(FAKE_SERVER)
    return path


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _server(tmp_path: Path, command: list[str], **kwargs: Any) -> LocalModelServer:
    return LocalModelServer(
        model_path=tmp_path / "m.gguf",
        alias="m",
        log_path=tmp_path / "logs" / "m.log",
        command=command,
        **kwargs,
    )


async def test_server_starts_answers_and_stops_without_orphans(
    tmp_path: Path, fake_script: Path
) -> None:
    server = _server(tmp_path, [sys.executable, str(fake_script), "--port", "{port}"])
    await server.start()
    pid = server.pid
    assert pid is not None
    assert server.running
    assert server.base_url.startswith("http://127.0.0.1:")
    assert server.base_url.endswith("/v1")
    await server.aclose()
    assert not server.running
    assert server.pid is None
    assert _gone(pid)
    with pytest.raises(RuntimeError, match="closed"):
        await server.start()


async def test_large_log_is_rotated_on_start(tmp_path: Path, fake_script: Path) -> None:
    log = tmp_path / "logs" / "m.log"
    log.parent.mkdir()
    log.write_bytes(b"x" * (10 * 2**20 + 1))
    server = _server(tmp_path, [sys.executable, str(fake_script), "--port", "{port}"])
    await server.start()
    await server.aclose()
    assert (tmp_path / "logs" / "m.log.1").stat().st_size == 10 * 2**20 + 1
    assert log.read_text().startswith("--- starting m on 127.0.0.1:")


async def test_server_ignoring_sigterm_is_killed_after_grace(
    tmp_path: Path, fake_script: Path
) -> None:
    cmd = [sys.executable, str(fake_script), "--port", "{port}", "--ignore-term", "1"]
    server = _server(tmp_path, cmd, stop_grace_s=0.3)
    await server.start()
    pid = server.pid
    assert pid is not None
    await server.aclose()
    assert _gone(pid)


async def test_start_failure_becomes_error_with_log_tail(tmp_path: Path) -> None:
    script = (
        "import sys; print('llama_model_load: error loading model: bad magic', file=sys.stderr);"
        " sys.exit(3)"
    )
    server = _server(tmp_path, [sys.executable, "-c", script])
    with pytest.raises(ConfigurationError) as info:
        await server.start()
    message = str(info.value)
    assert "exited with status 3 while starting" in message
    assert "error loading model: bad magic" in message
    assert str(tmp_path / "logs" / "m.log") in message
    assert not server.running


async def test_server_that_never_answers_times_out_and_is_stopped(tmp_path: Path) -> None:
    script = "import sys, time; print('stuck', file=sys.stderr, flush=True); time.sleep(60)"
    server = _server(tmp_path, [sys.executable, "-c", script], startup_timeout_s=0.5)
    with pytest.raises(ConfigurationError, match=r"did not answer within 0\.5s") as info:
        await server.start()
    assert "stuck" in str(info.value)
    assert server.pid is None


PARENT = r"""
import sys
from pathlib import Path
import anyio
from tlm.providers._local_server import LocalModelServer

async def main():
    server = LocalModelServer(
        model_path=Path("m.gguf"), alias="m", log_path=Path(sys.argv[2]), server=sys.argv[1]
    )
    await server.start()
    print(server.pid, flush=True)
    await anyio.sleep(3600)

anyio.run(main)
"""


def _dead_or_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


@pytest.mark.skipif(sys.platform != "linux", reason="parent-death signal is Linux-only")
async def test_server_dies_with_a_crashed_parent(tmp_path: Path, fake_script: Path) -> None:
    parent_script = tmp_path / "parent.py"
    parent_script.write_text(PARENT)
    cmd = [sys.executable, str(parent_script), str(fake_script), str(tmp_path / "log")]
    async with await anyio.open_process(cmd, stdin=subprocess.DEVNULL) as parent:
        assert parent.stdout is not None
        with anyio.fail_after(30):
            line = await parent.stdout.receive()
        child = int(line.decode().strip())
        assert not _dead_or_zombie(child)
        parent.kill()
        await parent.wait()
    try:
        for _ in range(1000):
            if _dead_or_zombie(child):
                break
            await anyio.sleep(0.01)
        assert _dead_or_zombie(child)
    finally:
        if not _dead_or_zombie(child):
            os.kill(child, signal.SIGKILL)


def test_child_environment_drops_settings_and_secrets() -> None:
    env = {
        "PATH": "/usr/bin",
        "HOME": "/root",
        "LC_ALL": "C.UTF-8",
        "PORT": "8080",
        "HOST": "0.0.0.0",
        "API_KEY": "sk-secret",
        "OPENAI_API_KEY": "sk-secret",
        "MODEL": "/elsewhere.gguf",
    }
    child = child_environment(env)
    assert child["PATH"] == "/usr/bin"
    assert child["LC_ALL"] == "C.UTF-8"
    assert child["OMP_WAIT_POLICY"] == "PASSIVE"
    assert not {"PORT", "HOST", "API_KEY", "OPENAI_API_KEY", "MODEL"} & child.keys()
    assert child_environment({"OMP_WAIT_POLICY": "ACTIVE"})["OMP_WAIT_POLICY"] == "ACTIVE"


def test_default_command_runs_llama_cpp_server_with_one_thread(tmp_path: Path) -> None:
    server = LocalModelServer(model_path=tmp_path / "m.gguf", alias="m", log_path=tmp_path / "l")
    cmd = server.command_line(1234)
    assert cmd[0] == sys.executable
    assert cmd[3] == "llama_cpp.server"
    flags = dict(zip(cmd[4::2], cmd[5::2], strict=True))
    assert flags["--model"] == str(tmp_path / "m.gguf")
    assert flags["--host"] == "127.0.0.1"
    assert flags["--port"] == "1234"
    assert flags["--n_threads"] == flags["--n_threads_batch"] == "1"
    assert flags["--logits_all"] == "false"


# --- LocalProvider over the fake server -------------------------------------------------------

MODEL_BYTES = b"GGUF fake model"


def _catalog() -> Catalog:
    return Catalog.from_data(
        {
            "version": 1,
            "models": [
                {
                    "id": "fake-local",
                    "provider": "local",
                    "api": "openai",
                    "provider_model": "fake-local-alias",
                    "context_window": 2048,
                    "structured_output": "json_object_schema",
                    "provenance": {
                        "source": "test",
                        "license": "MIT",
                        "file": "fake.gguf",
                        "sha256": hashlib.sha256(MODEL_BYTES).hexdigest(),
                        "size_bytes": len(MODEL_BYTES),
                    },
                },
                {
                    "id": "remote",
                    "provider": "openai",
                    "api": "openai",
                    "provider_model": "gpt",
                    "base_url": "https://example.invalid/v1",
                    "context_window": 1000,
                },
            ],
        }
    )


def _provider(tmp_path: Path, fake_script: Path, **env: str) -> LocalProvider:
    chunk = tmp_path / "chunk.bin"
    chunk.write_bytes(MODEL_BYTES)
    return LocalProvider(
        catalog=_catalog(),
        data_dir=tmp_path / "models",
        env={"PATH": os.environ.get("PATH", ""), **env},
        packaged={"fake-local": (ModelPart("pkg", "chunk.bin", "pkg"),)},
        locate=lambda part: chunk,
        server=str(fake_script),
        server_args=["--starts", str(tmp_path / "starts.txt")],
    )


@pytest.fixture
def provider(tmp_path: Path, fake_script: Path) -> LocalProvider:
    return _provider(tmp_path, fake_script)


@pytest.mark.parametrize(
    ("env", "n_ctx", "threads"),
    [({}, 2048, 1), ({"TLM_LOCAL_N_CTX": "512", "TLM_LOCAL_THREADS": "2"}, 512, 2)],
    ids=["card-window", "env-caps"],
)
async def test_server_settings_come_from_card_and_env(
    tmp_path: Path, fake_script: Path, env: dict[str, str], n_ctx: int, threads: int
) -> None:
    async with _provider(tmp_path, fake_script, **env) as provider:
        await provider.start("fake-local")
        server = provider.server("fake-local")
        assert server is not None
        assert (server.n_ctx, server.n_threads) == (n_ctx, threads)


async def test_provider_starts_server_once_for_concurrent_first_requests(
    provider: LocalProvider, tmp_path: Path
) -> None:
    assert isinstance(provider, Provider)
    assert provider.name == "local"
    assert provider.models() == ("fake-local",)
    replies: list[Any] = []

    async def ask() -> None:
        replies.append(await provider.complete(ChatRequest.from_prompt("fake-local", "hi")))

    async with provider:
        async with anyio.create_task_group() as tg:
            for _ in range(5):
                tg.start_soon(ask)
        server = provider.server("fake-local")
        assert server is not None
        pid = server.pid
        assert pid is not None
    assert (tmp_path / "starts.txt").read_text() == "start\n"
    assert len(replies) == 5
    assert {r.provider for r in replies} == {"local"}
    assert json.loads(replies[0].text)["model"] == "fake-local-alias"
    assert replies[0].usage.output_tokens == 5
    assert replies[0].cost_usd == 0.0
    assert _gone(pid)
    assert (tmp_path / "models" / "fake.gguf.verified.json").is_file()  # one part: used in place


async def test_greedy_requests_disable_prompt_cache_and_schema_goes_to_response_format(
    provider: LocalProvider,
) -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    async with provider:
        greedy = await provider.complete(
            ChatRequest.from_prompt("fake-local", "hi", temperature=0, output_schema=schema)
        )
        warm = await provider.complete(ChatRequest.from_prompt("fake-local", "hi", temperature=0.7))
    body = json.loads(greedy.text)
    assert body["cache_prompt"] is False
    assert body["response_format"] == {"type": "json_object", "schema": schema}
    assert "cache_prompt" not in json.loads(warm.text)


async def test_prepare_verifies_the_file_without_starting_a_server(
    provider: LocalProvider, tmp_path: Path
) -> None:
    async with provider:
        path = await provider.prepare("fake-local")
        assert path.read_bytes() == MODEL_BYTES
        assert provider.server("fake-local") is None
        with pytest.raises(ConfigurationError, match="served by provider 'openai'"):
            await provider.prepare("remote")
    assert not (tmp_path / "starts.txt").exists()


async def test_cancelled_first_request_still_leaves_the_server_started(
    provider: LocalProvider, tmp_path: Path
) -> None:
    async with provider:
        with anyio.move_on_after(0.05):
            await provider.complete(ChatRequest.from_prompt("fake-local", "hi"))
        server = provider.server("fake-local")
        assert server is not None
        assert server.running
        await provider.complete(ChatRequest.from_prompt("fake-local", "again"))
        assert provider.server("fake-local") is server
    assert (tmp_path / "starts.txt").read_text() == "start\n"


async def test_dead_server_is_restarted_on_next_request(
    provider: LocalProvider, tmp_path: Path
) -> None:
    async with provider:
        await provider.complete(ChatRequest.from_prompt("fake-local", "hi"))
        first = provider.server("fake-local")
        assert first is not None
        first_pid = first.pid
        assert first_pid is not None
        os.kill(first_pid, signal.SIGKILL)
        with anyio.fail_after(10):
            assert await first.wait() == -signal.SIGKILL
        assert not first.running
        await provider.complete(ChatRequest.from_prompt("fake-local", "again"))
        second = provider.server("fake-local")
        assert second is not None
        assert second.pid not in (None, first_pid)
    assert (tmp_path / "starts.txt").read_text() == "start\nstart\n"


async def test_provider_refuses_other_providers_models_and_use_after_close(
    provider: LocalProvider,
) -> None:
    with pytest.raises(ConfigurationError, match="served by provider 'openai'"):
        await provider.complete(ChatRequest.from_prompt("remote", "hi"))
    with pytest.raises(ConfigurationError, match="unknown model 'nope'"):
        await provider.complete(ChatRequest.from_prompt("nope", "hi"))
    await provider.aclose()
    await provider.aclose()  # idempotent
    with pytest.raises(ConfigurationError, match="closed"):
        await provider.complete(ChatRequest.from_prompt("fake-local", "hi"))


async def test_card_without_checksum_is_refused(tmp_path: Path) -> None:
    catalog = Catalog.from_data(
        {
            "version": 1,
            "models": [
                {
                    "id": "unverified",
                    "provider": "local",
                    "api": "openai",
                    "provider_model": "u",
                    "context_window": 100,
                    "provenance": {"source": "somewhere", "license": "MIT", "sha256": None},
                }
            ],
        }
    )
    async with LocalProvider(catalog=catalog, data_dir=tmp_path) as provider:
        with pytest.raises(ConfigurationError, match=r"needs provenance\.file, provenance\.sha256"):
            await provider.complete(ChatRequest.from_prompt("unverified", "hi"))


def test_thread_and_context_settings_come_from_env(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="TLM_LOCAL_THREADS must be an integer"):
        LocalProvider(catalog=_catalog(), data_dir=tmp_path, env={"TLM_LOCAL_THREADS": "two"})
    with pytest.raises(ConfigurationError, match="TLM_LOCAL_N_CTX must be at least 1"):
        LocalProvider(catalog=_catalog(), data_dir=tmp_path, env={"TLM_LOCAL_N_CTX": "0"})


@pytest.mark.parametrize(("env", "on"), [({}, True), ({"TLM_LOCAL_PROMPT_CACHE_MB": "0"}, False)])
async def test_prompt_cache_directory_is_per_model_file_and_context(
    tmp_path: Path, fake_script: Path, env: dict[str, str], on: bool
) -> None:
    async with _provider(tmp_path, fake_script, **env) as provider:
        await provider.start("fake-local")
        server = provider.server("fake-local")
        assert server is not None
        line = server.command_line(1234)
    if not on:
        assert server.prompt_cache is None
        assert "--cache" not in line
        return
    assert server.prompt_cache is not None
    assert server.prompt_cache.parent == tmp_path / "models" / "prompt-cache"
    name = server.prompt_cache.name
    assert name.startswith("fake-local-" + hashlib.sha256(MODEL_BYTES).hexdigest()[:12])
    assert "-ctx2048-" in name
    flags = line[line.index("--cache") :]
    assert flags[:6] == ["--cache", "true", "--cache_type", "disk", "--cache_size", str(256 << 20)]


def test_a_negative_prompt_cache_size_is_refused(tmp_path: Path, fake_script: Path) -> None:
    with pytest.raises(ConfigurationError, match="TLM_LOCAL_PROMPT_CACHE_MB must be at least 0"):
        _provider(tmp_path, fake_script, TLM_LOCAL_PROMPT_CACHE_MB="-1")
