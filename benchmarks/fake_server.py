"""tlm.testing's FakeOpenAIServer in its own process, answering every chat with a valid extraction.

``python -m benchmarks.fake_server --latency-ms 50 [--core 1]`` prints ``PORT <n>`` once listening
and serves until its standard input closes. :func:`serve_in_subprocess` does all of that.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import anyio
import anyio.to_thread

from benchmarks.fixtures import OUTPUT_TEXT, REPO
from tlm.testing import FakeOpenAIServer

__all__ = ("serve_in_subprocess", "main")


def _reply(body: dict[str, Any]) -> str:
    return OUTPUT_TEXT


async def _serve(latency_s: float) -> None:
    async with FakeOpenAIServer(_reply, latency_s=latency_s) as server:
        port = server.root_url.rsplit(":", 1)[1]
        sys.stdout.write(f"PORT {port}\n")
        sys.stdout.flush()
        await anyio.to_thread.run_sync(sys.stdin.read)


@contextmanager
def serve_in_subprocess(latency_ms: float, core: int | None) -> Iterator[str]:
    """Start the server process; yields its ``/v1`` base URL; stops it on exit."""
    command = [sys.executable, "-m", "benchmarks.fake_server", "--latency-ms", str(latency_ms)]
    if core is not None:
        command += ["--core", str(core)]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    process = subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=REPO
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.startswith("PORT "):
            raise RuntimeError(f"the fake server did not start: {line!r}")
        yield f"http://127.0.0.1:{int(line.split()[1])}/v1"
    finally:
        if process.stdin is not None:
            process.stdin.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until standard input closes."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fake_server")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--core", type=int, default=None, help="pin to this CPU core")
    args = parser.parse_args(argv)
    if args.core is not None and hasattr(os, "sched_setaffinity"):
        try:
            os.sched_setaffinity(0, {args.core})
        except OSError:
            pass
    anyio.run(_serve, args.latency_ms / 1000)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
