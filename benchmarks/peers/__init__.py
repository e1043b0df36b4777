"""The frameworks users would pick instead of TLM, measured beside it (extra ``bench-peers``).

One module per peer, each with ``run(base_url, calls, in_flight) -> Run`` doing the same
job-extraction work as TLM's throughput scenario: render the prompt, call the model at the fake
server, parse and validate the JSON against the output schema (or its pydantic model). A peer's
framework is imported only when it runs, so the harness works without the extra; a peer whose
framework is missing is listed by :func:`missing` and left out of the run. The harness runs each
peer in a fresh process (:meth:`Peer.isolated`, ``python -m benchmarks.peers``).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import json
import os
import sys
from collections.abc import Iterable

import anyio
import attrs

from benchmarks.fixtures import REPO
from benchmarks.peers.base import Run, Runner

__all__ = ("Peer", "PEERS", "available", "missing", "versions", "Run", "Runner")


@attrs.frozen
class Peer:
    """A peer framework: its label, its module here, what it needs installed, what stays on."""

    name: str
    module: str
    """The module under ``benchmarks.peers`` with the ``run`` runner."""
    imports: tuple[str, ...]
    """Top-level modules that must be importable."""
    distribution: str
    """The PyPI distribution whose version the report gives."""
    left_on: str = ""
    """What could not be switched off (per-call bookkeeping, hooks), for the report."""

    def installed(self) -> bool:
        """Whether every module it needs can be imported (found without importing it)."""
        try:
            return all(importlib.util.find_spec(name) is not None for name in self.imports)
        except (ImportError, ValueError):
            return False

    def runner(self) -> Runner:
        """The peer's runner (importing its module here, not its framework)."""
        runner: Runner = importlib.import_module(f"benchmarks.peers.{self.module}").run
        return runner

    def isolated(self) -> Runner:
        """A runner doing the same in a fresh ``python -m benchmarks.peers`` process.

        The child inherits this process's CPU affinity; its CPU time is its own.
        """

        async def run(base_url: str, calls: int, in_flight: int) -> Run:
            env = {
                **os.environ,
                "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
            }
            command = [sys.executable, "-m", "benchmarks.peers", self.module, base_url]
            completed = await anyio.run_process(
                [*command, str(calls), str(in_flight)], env=env, cwd=REPO, check=False
            )
            if completed.returncode != 0:
                tail = completed.stderr.decode(errors="replace").strip().splitlines()[-5:]
                raise RuntimeError(f"peer {self.name} failed: " + " | ".join(tail))
            found = json.loads(completed.stdout.decode().strip().splitlines()[-1])
            return Run(found["wall_s"], found["cpu_s"], tuple(found["latencies_s"]))

        return run

    def version(self) -> str:
        """The installed version of its distribution, or ``"not installed"``."""
        try:
            return importlib.metadata.version(self.distribution)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"


PEERS: tuple[Peer, ...] = (
    Peer("openai SDK", "openai_sdk", ("openai", "jsonschema"), "openai"),
    Peer(
        "LangChain",
        "langchain_chain",
        ("langchain_core", "langchain_openai", "pydantic"),
        "langchain-openai",
        "its callback manager, run on every call (tracing itself is off)",
    ),
    Peer(
        "DSPy",
        "dspy_predict",
        ("dspy", "litellm", "pydantic"),
        "dspy",
        "LiteLLM's per-call logging object and cost bookkeeping (DSPy also writes its own "
        "instructions around the prompt and sends no response_format)",
    ),
    Peer(
        "LiteLLM",
        "litellm_completion",
        ("litellm", "jsonschema"),
        "litellm",
        "its per-call logging object and cost bookkeeping (callbacks and telemetry are off)",
    ),
    Peer("Instructor", "instructor_client", ("instructor", "openai", "pydantic"), "instructor"),
    Peer("Pydantic AI", "pydantic_ai_agent", ("pydantic_ai", "openai"), "pydantic-ai-slim"),
)
"""Every peer, in report order."""


def available(peers: Iterable[Peer] = PEERS, *, isolated: bool = True) -> dict[str, Runner]:
    """Name -> runner of the peers whose frameworks are installed (each in its own process)."""
    return {
        peer.name: peer.isolated() if isolated else peer.runner()
        for peer in peers
        if peer.installed()
    }


def missing(peers: Iterable[Peer] = PEERS) -> dict[str, str]:
    """Name -> why it is left out, for the peers whose frameworks are not installed."""
    return {
        peer.name: f"not installed (`pip install .[bench-peers]` brings {peer.distribution})"
        for peer in peers
        if not peer.installed()
    }


def versions(peers: Iterable[Peer] = PEERS) -> dict[str, str]:
    """Distribution -> installed version, for the report."""
    return {peer.distribution: peer.version() for peer in peers}
