"""One llama.cpp server subprocess serving one model on a free loopback port.

:class:`LocalModelServer` runs ``python -m llama_cpp.server`` (llama-cpp-python's OpenAI-compatible
server) with the current interpreter, waits until ``/v1/models`` answers, and stops the process on
:meth:`~LocalModelServer.aclose` (terminate, then kill after a grace period, always reaped). Its
output goes to a log file whose tail becomes the error message when the server fails to start.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import aiohttp
import anyio
import anyio.abc

from tlm.errors import ConfigurationError

__all__ = ("LocalModelServer", "child_environment")

# Variables the child may inherit. llama-cpp-python's settings read arbitrary environment variables
# (HOST, PORT, MODEL, API_KEY, N_CTX, ...), so the child gets only what a Python process needs.
_INHERITED = frozenset(
    {
        "PATH",
        "HOME",
        "USER",
        "LANG",
        "LANGUAGE",
        "TMPDIR",
        "TEMP",
        "TMP",
        "SYSTEMROOT",
        "LD_LIBRARY_PATH",
        "DYLD_LIBRARY_PATH",
        "PYTHONPATH",
        "PYTHONHOME",
        "VIRTUAL_ENV",
        "OMP_WAIT_POLICY",
        "OMP_NUM_THREADS",
    }
)

# Runs the server module (or script) named by its first argument; on Linux the child first asks
# for SIGKILL when its parent dies, so a crashed engine leaves no orphan server behind (on SIGTERM,
# uvicorn would finish the generation in flight first, for nobody). Request
# access logging is off, so the log holds start-up and error output only. With a prompt cache,
# llama-cpp-python's disk cache is replaced by TLM's compact one (loaded by path: the child
# imports nothing from TLM).
_LAUNCHER = """\
import os, sys
if sys.platform.startswith("linux"):
    import ctypes, signal
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)
    except Exception:
        pass
    if str(os.getppid()) != os.environ.get("TLM_PARENT_PID", str(os.getppid())):
        sys.exit(0)
import functools, runpy
try:
    import uvicorn
    uvicorn.run = functools.partial(uvicorn.run, access_log=False)
except ImportError:
    pass
cache_dir = os.environ.get("TLM_PROMPT_CACHE_DIR")
if cache_dir:
    import importlib.util, llama_cpp
    spec = importlib.util.spec_from_file_location(
        "tlm_prompt_cache", os.environ["TLM_PROMPT_CACHE_SOURCE"]
    )
    cache_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cache_module)
    llama_cpp.LlamaDiskCache = functools.partial(cache_module.PromptStateCache, cache_dir)
    llama_cpp.Llama.save_state = cache_module.save_state
target = sys.argv.pop(1)
if target.endswith(".py"):
    runpy.run_path(target, run_name="__main__")
else:
    runpy.run_module(target, run_name="__main__", alter_sys=True)
"""

_TAIL_CHARS = 3000
_LOG_MAX_BYTES = 10 << 20


def child_environment(env: Mapping[str, str]) -> dict[str, str]:
    """The environment for a server child: a safe subset of ``env`` plus threading defaults.

    ``OMP_WAIT_POLICY=PASSIVE`` stops idle OpenMP threads from busy-waiting, which on a shared
    machine costs more than it gains.
    """
    child = {k: v for k, v in env.items() if k in _INHERITED or k.startswith("LC_")}
    child.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    child["PYTHONUNBUFFERED"] = "1"
    child["TLM_PARENT_PID"] = str(os.getpid())
    return child


class LocalModelServer:
    """A llama.cpp server process for one GGUF model, reachable at :attr:`base_url`.

    Call :meth:`start` once, then send OpenAI-compatible requests to :attr:`base_url`; call
    :meth:`aclose` to stop it (also safe when it never started). Not reusable after close.
    """

    def __init__(
        self,
        *,
        model_path: Path,
        alias: str,
        log_path: Path,
        n_ctx: int = 4096,
        n_threads: int = 1,
        env: Mapping[str, str] | None = None,
        startup_timeout_s: float = 180.0,
        stop_grace_s: float = 5.0,
        server: str = "llama_cpp.server",
        server_args: Sequence[str] = (),
        command: Sequence[str] | None = None,
        prompt_cache: Path | None = None,
        prompt_cache_bytes: int = 256 << 20,
    ) -> None:
        """Describe the server; nothing starts until :meth:`start`.

        Args:
            model_path: The verified GGUF file to serve.
            alias: The model name the server answers to (the catalog id).
            log_path: Where the server's stdout and stderr go (appended).
            n_ctx: Context window in tokens.
            n_threads: CPU threads for generation and prompt processing; 1 is right on a busy
                machine, 2 only with ``OMP_WAIT_POLICY=PASSIVE`` (the default here).
            env: The environment to derive the child's from (default ``os.environ``).
            startup_timeout_s: How long to wait for the server to answer before giving up.
            stop_grace_s: How long :meth:`aclose` waits after SIGTERM before SIGKILL.
            server: The module (or ``.py`` script) to run; it gets llama.cpp's server flags.
            server_args: Extra flags appended to the command line (e.g. ``--chat_format``).
            command: Replaces the whole command line (for tests); ``{port}`` is substituted.
            prompt_cache: A directory for this model's prompt states (see
                :mod:`tlm.providers._prompt_cache`), so a restarted server does not evaluate a
                prompt prefix it has seen before again; ``None``: no cache across restarts.
            prompt_cache_bytes: The most that directory may hold.
        """
        self.model_path = model_path
        self.alias = alias
        self.log_path = log_path
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self._env = child_environment(os.environ if env is None else env)
        self._startup_timeout_s = startup_timeout_s
        self._stop_grace_s = stop_grace_s
        self._server = server
        self._server_args = tuple(server_args)
        self._command = tuple(command) if command is not None else None
        self.prompt_cache = prompt_cache
        self._prompt_cache_bytes = prompt_cache_bytes
        if prompt_cache is not None:
            self._env["TLM_PROMPT_CACHE_DIR"] = str(prompt_cache)
            self._env["TLM_PROMPT_CACHE_SOURCE"] = str(Path(__file__).with_name("_prompt_cache.py"))
        self._process: anyio.abc.Process | None = None
        self._port: int | None = None
        self._closed = False

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible base URL, ``http://127.0.0.1:PORT/v1``."""
        if self._port is None:
            raise RuntimeError("the local model server has not been started")
        return f"http://127.0.0.1:{self._port}/v1"

    @property
    def pid(self) -> int | None:
        """The server process id while it runs."""
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        """Whether the process was started and has not exited."""
        return self._process is not None and self._process.returncode is None

    def command_line(self, port: int) -> list[str]:
        """The command that starts the server on ``port``."""
        if self._command is not None:
            return [part.replace("{port}", str(port)) for part in self._command]
        return [
            sys.executable,
            "-c",
            _LAUNCHER,
            self._server,
            "--model",
            str(self.model_path),
            "--model_alias",
            self.alias,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            str(self.n_ctx),
            "--n_threads",
            str(self.n_threads),
            "--n_threads_batch",
            str(self.n_threads),
            "--n_gpu_layers",
            "0",
            "--logits_all",  # logits for the last token only: prompt processing ~30% faster
            "false",
            "--verbose",
            "false",
            *self._cache_flags(),
            *self._server_args,
        ]

    def _cache_flags(self) -> list[str]:
        if self.prompt_cache is None:
            return []
        size = str(self._prompt_cache_bytes)
        return ["--cache", "true", "--cache_type", "disk", "--cache_size", size]

    async def start(self) -> None:
        """Start the process and wait until it answers ``GET /v1/models``.

        Raises:
            ConfigurationError: the process exited or did not answer in time; the message holds
                the tail of its log.
        """
        if self._closed:
            raise RuntimeError("the local model server was closed and cannot be restarted")
        if self._process is not None:
            raise RuntimeError("the local model server is already started")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        _rotate(self.log_path)
        port = _free_port()
        with self.log_path.open("ab") as log:
            offset = log.tell()
            log.write(f"--- starting {self.alias} on 127.0.0.1:{port}\n".encode())
            log.flush()
            self._process = await anyio.open_process(
                self.command_line(port),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=self._env,
            )
        self._port = port
        try:
            await self._wait_ready(offset)
        except BaseException:
            await self.aclose()
            raise

    async def _wait_ready(self, log_offset: int) -> None:
        process = self._process
        assert process is not None
        url = f"{self.base_url}/models"
        delay = 0.05
        timeout = aiohttp.ClientTimeout(total=5)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            with anyio.move_on_after(self._startup_timeout_s) as scope:
                while True:
                    if process.returncode is not None:
                        raise self._failure(
                            f"exited with status {process.returncode} while starting",
                            log_offset,
                        )
                    with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                        async with session.get(url) as resp:
                            if resp.status == 200:
                                return
                    await anyio.sleep(delay)
                    delay = min(delay * 1.5, 0.5)
        if scope.cancelled_caught:
            raise self._failure(f"did not answer within {self._startup_timeout_s:g}s", log_offset)

    def _failure(self, what: str, log_offset: int) -> ConfigurationError:
        tail = _read_tail(self.log_path, log_offset)
        return ConfigurationError(
            f"the local model server for {self.alias!r} {what}; its log is {self.log_path}"
            + (f", ending with:\n{tail}" if tail else " (empty)")
        )

    async def wait(self) -> int | None:
        """Wait until the process exits on its own; its exit status (``None`` if never started)."""
        process = self._process
        return None if process is None else await process.wait()

    async def aclose(self) -> None:
        """Stop the process: SIGTERM, then SIGKILL after the grace period; always reaped."""
        self._closed = True
        process, self._process = self._process, None
        if process is None:
            return
        with anyio.CancelScope(shield=True):
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.terminate()
                with anyio.move_on_after(self._stop_grace_s):
                    await process.wait()
                if process.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        process.kill()
                    await process.wait()
            await process.aclose()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _rotate(path: Path) -> None:
    """Keep the log bounded: past ``_LOG_MAX_BYTES`` it becomes ``NAME.1`` (replacing the old)."""
    try:
        if path.stat().st_size > _LOG_MAX_BYTES:
            os.replace(path, path.with_name(path.name + ".1"))
    except FileNotFoundError:
        pass


def _read_tail(path: Path, offset: int) -> str:
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            end = f.tell()
            f.seek(max(offset, end - _TAIL_CHARS))
            data = f.read()
    except OSError:
        return ""
    text = data.decode("utf-8", errors="replace").strip()
    return "\n".join(text.splitlines()[-30:])
