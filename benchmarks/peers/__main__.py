"""``python -m benchmarks.peers PEER BASE_URL CALLS IN_FLIGHT``: one peer's run, printed as JSON.

``PEER`` is the peer's name or its module here (``openai_sdk``, ``dspy_predict``, ...).

Each peer runs in a fresh process so that its imports and global settings (LiteLLM's callbacks,
DSPy's cache, LangChain's environment) neither touch nor slow the other clients.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence

import anyio

from benchmarks.peers import PEERS

__all__ = ("main",)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the named peer; the last line of standard output is the run as JSON."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 4:
        sys.stderr.write(__doc__ or "")
        return 2
    name, base_url, calls, in_flight = args
    peer = next((p for p in PEERS if name in (p.name, p.module)), None)
    if peer is None:
        sys.stderr.write(f"unknown peer {name!r}; known: {', '.join(p.name for p in PEERS)}\n")
        return 2
    run = anyio.run(peer.runner(), base_url, int(calls), int(in_flight))
    sys.stdout.write(
        json.dumps({"wall_s": run.wall_s, "cpu_s": run.cpu_s, "latencies_s": run.latencies_s})
        + "\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
