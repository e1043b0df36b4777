"""Run a fake model server as a process: ``python -m tlm.testing.serve [--port 0] [--reply TEXT]``.

Starts :class:`~tlm.testing.FakeOpenAIServer` (or, with ``--api anthropic``,
:class:`~tlm.testing.FakeAnthropicServer`) on 127.0.0.1, prints its base URL on one line of
standard output once it is listening (``http://127.0.0.1:PORT/v1`` for OpenAI), and serves until
it gets SIGTERM or SIGINT. Every chat request is answered with ``--reply`` (default: an echo of
the last user message). Point a project's catalog at it to run tasks without a model (as
``.ci/run`` does), e.g. ``definitions/models.json``::

    {"version": 1, "models": [{"id": "qwen2.5-coder-0.5b-instruct", "provider": "fake",
                               "base_url": "http://127.0.0.1:PORT/v1"}]}
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from typing import Any

import anyio

from tlm.testing.servers import FakeAnthropicServer, FakeOpenAIServer

__all__ = ("main", "serve")


async def serve(
    *, port: int = 0, reply: str | None = None, latency_s: float = 0.0, api: str = "openai"
) -> None:
    """Serve until SIGTERM or SIGINT; prints the base URL once listening."""

    def answer(body: dict[str, Any]) -> str:
        return reply or ""

    script = answer if reply is not None else None  # None: the server's default echo
    server: FakeOpenAIServer | FakeAnthropicServer
    if api == "anthropic":
        server = FakeAnthropicServer(script, latency_s=latency_s, port=port)
    else:
        server = FakeOpenAIServer(script, latency_s=latency_s, port=port)
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with server:
            sys.stdout.write(f"{server.base_url}\n")
            sys.stdout.flush()
            async for _ in signals:
                break


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; see the module docstring."""
    parser = argparse.ArgumentParser(prog="python -m tlm.testing.serve", description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: a free one)")
    parser.add_argument("--reply", default=None, help="the reply text to every chat request")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="delay before each reply")
    parser.add_argument("--api", choices=("openai", "anthropic"), default="openai")
    args = parser.parse_args(argv)
    anyio.run(
        lambda: serve(
            port=args.port, reply=args.reply, latency_s=args.latency_ms / 1000, api=args.api
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
