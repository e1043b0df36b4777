"""Arize Phoenix in its own virtualenv (never a TLM dependency), installed once and served.

``python tests/interop/phoenix_env.py install`` creates the virtualenv named by
``TLM_PHOENIX_VENV`` (default ``~/.cache/tlm/phoenix-<version>``) and pip-installs
``arize-phoenix==PHOENIX_VERSION`` into it, unless it is already there (CI starts this early, in the
background). :func:`serve` starts ``phoenix serve`` on 127.0.0.1 with free ports and a working
directory of its own, and waits until it answers ``/healthz``. Standard library only.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

__all__ = ("PHOENIX_VERSION", "venv_path", "ensure_installed", "serve")

PHOENIX_VERSION = "20.26.1"
_INSTALL_TIMEOUT_S = 1800
_START_TIMEOUT_S = 240


def venv_path() -> Path:
    """Where Phoenix's virtualenv lives (``TLM_PHOENIX_VENV``, else a per-user cache)."""
    named = os.environ.get("TLM_PHOENIX_VENV")
    if named:
        return Path(named)
    return Path.home() / ".cache" / "tlm" / f"phoenix-{PHOENIX_VERSION}"


def _installed(venv: Path) -> bool:
    marker = venv / f".arize-phoenix-{PHOENIX_VERSION}"
    return marker.is_file() and (venv / "bin" / "phoenix").is_file()


def ensure_installed(venv: Path | None = None) -> Path:
    """The ``phoenix`` executable, installing Phoenix into ``venv`` first if needed.

    Raises:
        RuntimeError: the virtualenv or the install failed (pip's output is in the message).
    """
    venv = venv or venv_path()
    if not _installed(venv):
        venv.parent.mkdir(parents=True, exist_ok=True)
        steps = (
            [sys.executable, "-m", "venv", str(venv)],
            [
                str(venv / "bin" / "python"),
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                f"arize-phoenix=={PHOENIX_VERSION}",
            ],
        )
        for step in steps:
            done = subprocess.run(
                step, capture_output=True, text=True, timeout=_INSTALL_TIMEOUT_S, check=False
            )
            if done.returncode != 0:
                raise RuntimeError(
                    f"{' '.join(step)} failed ({done.returncode}):\n{done.stdout[-3000:]}"
                    f"\n{done.stderr[-3000:]}"
                )
        (venv / f".arize-phoenix-{PHOENIX_VERSION}").write_text(PHOENIX_VERSION + "\n")
    return venv / "bin" / "phoenix"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=2) as reply:
            return bool(reply.status == 200)
    except OSError:
        return False


@contextlib.contextmanager
def serve(working_dir: Path, venv: Path | None = None) -> Iterator[str]:
    """Run ``phoenix serve`` on 127.0.0.1 until the block ends; yields its base URL.

    Raises:
        RuntimeError: Phoenix exited or did not answer within the start timeout (its log is in
            the message).
    """
    executable = ensure_installed(venv)
    working_dir.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    env = {
        **os.environ,
        "PHOENIX_HOST": "127.0.0.1",
        "PHOENIX_PORT": str(port),
        "PHOENIX_GRPC_PORT": str(_free_port()),
        "PHOENIX_WORKING_DIR": str(working_dir),
        "PHOENIX_TELEMETRY_ENABLED": "false",
    }
    for name in list(env):  # Phoenix must not export its own spans into anything
        if name.startswith("OTEL_"):
            del env[name]
    log_path = working_dir / "phoenix.log"
    url = f"http://127.0.0.1:{port}"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [str(executable), "serve"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            deadline = time.monotonic() + _START_TIMEOUT_S
            while not _healthy(url):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"Phoenix did not start:\n{log_path.read_text()[-4000:]}")
                time.sleep(0.5)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


if __name__ == "__main__":
    if sys.argv[1:] != ["install"]:
        sys.exit("usage: python tests/interop/phoenix_env.py install")
    print(ensure_installed())
