"""The engine: definitions compiled once, executed inline or streamed through stage actors.

Use it as an async context manager; it owns the provider pool, the execution store, the result
cache, the review queue and the tracer provider, and closes them all on exit::

    async with tlm.Engine() as engine:
        result = await engine.execute("job_detail_extraction", {"job_posting": text})
        async with engine.map("skill_decomposition", skills, max_in_flight=32) as results:
            async for result in results:
                ...
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterable, Callable, Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

import anyio
from opentelemetry import trace

from tlm.budget import BudgetLedger
from tlm.catalog import Catalog
from tlm.definition.model import TaskDefinition
from tlm.definition.registry import DefinitionRegistry, default_definitions_dir
from tlm.engine.cache import close_cache, flush_cache, open_cache
from tlm.engine.compiled import CompiledTask, compile_task
from tlm.engine.config import EngineConfig, load_config
from tlm.engine.execution import new_job, run_inline
from tlm.engine.learned import Learned, close_followers, open_learned
from tlm.engine.mapping import MapSource, ResultStream, stream_results
from tlm.engine.resources import EngineResources
from tlm.engine.result import ExecutionResult, Options, coerce_options
from tlm.engine.runtime import (
    ManagedProvider,
    Runtime,
    configured_redaction,
    open_tracing,
)
from tlm.engine.verifiers import TaskHistories, VerifierParts, build_verifier
from tlm.errors import ConfigurationError, TLMError
from tlm.estimates import ModelEstimate
from tlm.numbers import check_int
from tlm.providers.base import Provider
from tlm.rules import RuleRegistry, default_registry
from tlm.verify.base import Verdict

if TYPE_CHECKING:
    import aiohttp
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.sdk.trace import SpanProcessor

    from tlm.engine.recording import Recorder
    from tlm.learn.coldstart import VerificationPolicy
    from tlm.learn.updates import LearningSink
    from tlm.providers.pool import ProviderPool
    from tlm.providers.retry import RetryPolicy
    from tlm.rollout.router import RolloutRouter
    from tlm.similarity import MetricRegistry
    from tlm.store.base import ExecutionLog
    from tlm.verify.review_queue import ReviewQueue

__all__ = ("Engine", "ResultStream")  # ResultStream: from tlm.engine.mapping


class Engine:
    """Executes task definitions; one per long-lived process (or per test).

    Args:
        config: Settings; default :func:`tlm.engine.config.load_config` (``tlm.toml``, env).
        registry: Task definitions; default loaded from the configured definitions directory.
        catalog: The model catalog; default ``models.json`` beside the definitions.
        providers: Providers per model id, used before the catalog's own (tests, benchmarks).
        tracer_provider: An OpenTelemetry tracer provider; default the cheapest one serving the
            store, the OTLP exporter (when configured) and ``span_processors``.
        span_processors: More span processors for the default tracer provider.
        rules: The validation-rule registry; default the built-ins and entry-point plug-ins.
        functions: Async functions for ``external`` verification, by registered name.
        metrics: Similarity metrics consensus may name; default the built-ins (``semantic``
            needs one: ``tlm.similarity.default_metrics(embeddings=..., embedding_model=...)``).
        estimates: Learned per-task model estimates, ``task_id -> {model_id: estimate}``.
        retry: The retry policy of the provider pool (attempts, backoff, injectable sleep).
        meter_provider: Where the GenAI client metrics and TLM's own go; default an OTLP
            exporter when an endpoint is configured (``OTEL_METRICS_EXPORTER=none`` turns it
            off), else none (no measurement is taken).
        verification_policy: Cold-start and risk-based verification from the task's history
            (``tlm.learn.coldstart.VerificationPolicy``); default one when the configuration
            says ``adaptive_verification = true``, else none (the definition's method always).
        clock: Monotonic seconds (tests inject one).
    """

    def __init__(
        self,
        config: EngineConfig | None = None,
        *,
        registry: DefinitionRegistry | None = None,
        catalog: Catalog | None = None,
        providers: Mapping[str, Provider] | None = None,
        tracer_provider: trace.TracerProvider | None = None,
        span_processors: Iterable[SpanProcessor] = (),
        rules: RuleRegistry | None = None,
        functions: Mapping[str, Callable[..., Any]] | None = None,
        metrics: MetricRegistry | None = None,
        estimates: Callable[[str], Mapping[str, ModelEstimate]] | None = None,
        retry: RetryPolicy | None = None,
        verification_policy: VerificationPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        self.config = config if config is not None else load_config()
        self._registry = registry
        self._catalog = catalog
        self._providers = dict(providers or {})
        self._tracer_provider = tracer_provider
        self._owns_tracer_provider = tracer_provider is None
        self._span_processors = tuple(span_processors)
        self._meter_provider = meter_provider
        self._owns_meter_provider = False
        self._rules = rules
        self._functions = dict(functions or {})
        self._metrics = metrics
        self._estimates = estimates
        self._clock = clock
        self._retry = retry
        self._verification_policy = verification_policy
        self._histories = TaskHistories(lambda: self._store, clock)
        self._cascade_plans: Mapping[str, Any] = {}
        self._learning_sink: LearningSink | None = None
        self._compiled: dict[tuple[str, str], CompiledTask] = {}
        self._runtime: Runtime | None = None
        self._pool: ProviderPool | None = None
        self._store: ExecutionLog | None = None
        self._recorder: Recorder | None = None
        self._closed = False
        self._opening = anyio.Lock()
        self._session: aiohttp.ClientSession | None = None
        self._rollouts: RolloutRouter | None = None
        self._learned: Learned | None = None
        self.resources = EngineResources()  # what other packages keep per engine

    # --- lifecycle ----------------------------------------------------------------------------

    async def __aenter__(self) -> Engine:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def open(self) -> None:
        """Load definitions and catalog, open the store, cache and providers (idempotent).

        If opening fails part-way, whatever was opened is closed again before the error.
        """
        async with self._opening:  # concurrent first calls open the engine once
            if self._runtime is not None:
                return
            if self._closed:
                raise TLMError("this engine is closed; create a new one")
            try:
                await self._open()
            except BaseException:
                await self.aclose()
                raise

    async def _open(self) -> None:
        from tlm.providers.pool import ProviderPool
        from tlm.verify.human import edited_output_check
        from tlm.verify.review_queue import feedback_hook, open_review_queue

        config = self.config
        definitions_dir = config.definitions_dir
        if definitions_dir is None and self._registry is None:
            definitions_dir = default_definitions_dir()  # no project: says where it looked
        if self._catalog is None:
            beside = None if definitions_dir is None else definitions_dir / "models.json"
            overlay = config.catalog_path or (beside if beside and beside.is_file() else None)
            self._catalog = Catalog.layered(overlay)
        if self._rules is None:
            self._rules = default_registry()
        if self._registry is None:
            assert definitions_dir is not None
            self._registry = DefinitionRegistry.from_directory(definitions_dir, rules=self._rules)
        data_dir = Path(config.data_dir)
        await anyio.Path(data_dir).mkdir(parents=True, exist_ok=True)
        self._open_telemetry(data_dir)
        learned = await open_learned(
            data_dir,
            self.config,
            catalog=self._catalog,
            registry=self._registry,
            estimates=self._estimates,
            policy=self._verification_policy,
            sink=self._learning_sink,
        )
        self._learned, self._verification_policy = learned, learned.policy
        self._estimates, self._cascade_plans = learned.estimates, learned.cascade_plans
        self._pool = ProviderPool(
            self._catalog,
            env=config.env,
            data_dir=data_dir,
            retry=self._retry,
            max_response_bytes=config.max_response_bytes,
            provider_limits=config.provider_limits,
            model_limits=config.model_limits,
            models=config.models,
        )
        review_queue = open_review_queue(
            data_dir,
            config.database,
            on_decision=feedback_hook(self._store) if self._store is not None else None,
            redact=config.redact,
            output_check=edited_output_check(self._registry, self._rules),
        )
        tracing, self._meter_provider, self._owns_meter_provider = open_tracing(
            config, self._tracer_provider, self._meter_provider,
            redaction=configured_redaction(config, self._catalog, self._providers.values()),
        )  # fmt: skip
        self._runtime = Runtime(
            config=config,
            catalog=self._catalog,
            tracing=tracing,
            pool=self._pool,
            providers=self._providers,
            cache=open_cache(data_dir, config.database, env=config.env) if config.cache else None,
            review_queue=review_queue,
            estimates=self._estimates,
            clock=self._clock,
            recorder=self._recorder,
        )
        from tlm.rollout.router import RolloutRouter

        registry = self._registry
        self._rollouts = RolloutRouter(
            data_dir, executions=self._store, database=config.database,
            has_version=lambda task_id, version: version in registry.versions(task_id),
        )  # fmt: skip

    def _open_telemetry(self, data_dir: Path) -> None:
        """The execution store and the cheapest tracer provider serving every consumer."""
        if self.config.store:
            from tlm.engine.recording import Recorder
            from tlm.store.backend import open_store

            self._store = open_store(data_dir, self.config.database)
            self._recorder = Recorder(self._store, self.config.durability)
        if self._tracer_provider is None:
            from tlm.telemetry.setup import create_execution_tracer_provider

            selects = hasattr(self._estimates, "observe") or (data_dir / "selector.json").is_file()
            if selects and self._store is not None:
                from tlm.learn.updates import LearningSink  # the selector learns as it runs

                self._learning_sink = LearningSink(self._store)
            self._tracer_provider = create_execution_tracer_provider(
                store=self._learning_sink or self._store,
                otlp_endpoint=self.config.otlp_endpoint,
                extra_processors=self._span_processors,
                dialects=self.config.telemetry_compat,
            )

    async def aclose(self) -> None:
        """Close providers, flush and close the store; always releases, even after errors."""
        if self._closed:
            return
        self._closed = True
        runtime, self._runtime = self._runtime, None
        try:
            with anyio.CancelScope(shield=True):
                if self._session is not None:
                    await self._session.close()
                if self._pool is not None:
                    await self._pool.aclose()
        finally:
            try:
                provider = self._tracer_provider
                if isinstance(provider, ManagedProvider) and self._owns_tracer_provider:
                    with anyio.CancelScope(shield=True):  # it flushes the store: off the loop
                        await anyio.to_thread.run_sync(provider.shutdown)
                meters = self._meter_provider
                if self._owns_meter_provider and isinstance(meters, ManagedProvider):
                    meters.shutdown()
            finally:
                if self._recorder is not None:
                    self._recorder.close()
                if self._store is not None:  # off the loop: a locked or silent database waits
                    with anyio.CancelScope(shield=True):
                        await anyio.to_thread.run_sync(self._store.close)
                close_cache(runtime)
                await close_followers(self._learned, self._rollouts, self.resources)

    def flush(self) -> None:
        """Block until every finished execution is durably recorded."""
        if isinstance(self._tracer_provider, ManagedProvider):
            self._tracer_provider.force_flush()
        if self._store is not None:
            self._store.flush()
        flush_cache(self._runtime)  # cached outputs visible to every engine sharing the cache

    # --- definitions --------------------------------------------------------------------------

    @property
    def registry(self) -> DefinitionRegistry:
        """The task definitions this engine executes."""
        self._require_open()
        assert self._registry is not None
        return self._registry

    @property
    def store(self) -> ExecutionLog | None:
        """The execution store, when recording is on."""
        return self._store

    @property
    def tracer_provider(self) -> trace.TracerProvider | None:
        """The tracer provider executions are traced with (set once the engine is open)."""
        return self._tracer_provider

    @property
    def rollouts(self) -> RolloutRouter | None:
        """Canary rollouts: which version unpinned executions get (set once the engine is open)."""
        return self._rollouts

    @property
    def metrics(self) -> MetricRegistry:
        """The similarity metrics verification and replay evaluations score with."""
        if self._metrics is None:
            from tlm.similarity import default_metrics

            return default_metrics()
        return self._metrics

    @property
    def review_queue(self) -> ReviewQueue | None:
        """The human review queue."""
        return self._runtime.review_queue if self._runtime else None

    def definition(self, task_id: str, version: str | None = None) -> TaskDefinition:
        """The definition of ``task_id`` (latest, exact version or semver range)."""
        return self.registry.get(task_id, version)

    def compiled(self, task: str | TaskDefinition, version: str | None = None) -> CompiledTask:
        """``task`` compiled for execution; each version is compiled once per engine."""
        runtime = self._require_open()
        definition = task if isinstance(task, TaskDefinition) else self.definition(task, version)
        key = (definition.id, definition.version)
        compiled = self._compiled.get(key)
        if compiled is None or compiled.definition is not definition:
            verifier, voters = build_verifier(
                definition,
                VerifierParts(
                    metrics=self._metrics,
                    functions=self._functions,
                    review_queue=runtime.review_queue,
                    http_session=self._http_session,
                    config=self.config,
                    cascade_plans=self._cascade_plans,
                    policy=self._verification_policy if self._store is not None else None,
                    history=self._histories.get,
                ),
            )
            assert self._rules is not None
            compiled = compile_task(
                definition,
                rules=self._rules,
                verifier=verifier,
                voters=voters,
                redact=self.config.redact,
            )
            self._compiled[key] = compiled
        return compiled

    # --- execution ----------------------------------------------------------------------------

    async def execute(
        self,
        task: str | TaskDefinition,
        input: Any,
        *,
        version: str | None = None,
        options: Options = None,
        budget: BudgetLedger | None = None,
    ) -> ExecutionResult:
        """Execute ``task`` on ``input`` inline (no actors) and return its result.

        Raises:
            InputInvalid: the input violates the schema or rules (no model was called).
            BudgetExceeded: cost, deadline or attempts ran out (``.partial`` may hold an output).
            VerificationFailed, OutputInvalid: and the fallback strategy was ``fail``.
            ProviderError: every model failed.
        Every execution, failed ones included, is recorded.
        """
        runtime = await self._opened_runtime()
        rollouts = None
        if version is None and isinstance(task, str) and self._rollouts is not None:
            rollouts = self._rollouts
            version = await rollouts.version_for(task, input)
        compiled = self.compiled(task, version)
        job = new_job(runtime, compiled, input, coerce_options(options), parent_ledger=budget)
        try:
            return await run_inline(job)
        finally:
            if rollouts is not None:  # unpinned traffic is the canary's evidence
                await rollouts.after_execution(compiled.definition.id)

    def map(
        self,
        task: str | TaskDefinition,
        inputs: Iterable[Any] | AsyncIterable[Any],
        *,
        version: str | None = None,
        options: Options = None,
        ordered: bool = False,
        max_in_flight: int = 16,
        budget: BudgetLedger | None = None,
    ) -> ResultStream:
        """Stream ``inputs`` through the task's stage actors; results arrive as they complete.

        At most ``max_in_flight`` executions are in progress (or waiting to be consumed) at once,
        so memory stays bounded for inputs of any length. A failed execution yields a result
        whose ``error`` is set (``result.unwrap()`` raises it) instead of ending the stream.
        Use ``async with engine.map(...) as results:`` so the actors stop when you stop reading.
        """
        check_int("max_in_flight", max_in_flight, minimum=1)
        source = MapSource(
            open_runtime=self._opened_runtime,
            compile=self.compiled,
            rollouts=self._rollouts if version is None and isinstance(task, str) else None,
        )
        return ResultStream(
            lambda stream: stream_results(
                source, stream, task, inputs, version, coerce_options(options), ordered,
                max_in_flight, budget,
            )
        )  # fmt: skip

    async def _opened_runtime(self) -> Runtime:
        """The runtime, opening the engine first if needed."""
        if self._runtime is None:
            await self.open()
        return self._require_open()

    # --- feedback and review --------------------------------------------------------------------

    async def feedback(
        self,
        execution_id: str,
        *,
        score: float | None = None,
        correct: bool | None = None,
        note: str | None = None,
        source: Literal["human", "system"] = "human",
    ) -> None:
        """Record feedback on an execution (linked to its record, with source and time)."""
        if self._store is None:
            raise ConfigurationError("feedback needs the execution store (store = true)")
        from tlm.store import record_feedback

        await record_feedback(
            self._store, execution_id, score=score, correct=correct, note=note, source=source
        )

    async def wait_for_review(
        self, result: ExecutionResult, *, timeout_s: float | None = None
    ) -> ExecutionResult:
        """Wait for the human decision on a pending result and return the decided result."""
        runtime = self._require_open()
        if result.status != "pending" or result.verdict is None:
            return result
        review_id = result.verdict.details.get("review_id")
        if review_id is None or runtime.review_queue is None:
            return result
        from tlm.verify.human import await_decision

        verdict: Verdict = await await_decision(runtime.review_queue, review_id, timeout_s)
        return result.decided(verdict)

    def _http_session(self) -> aiohttp.ClientSession:
        """One pooled HTTP session for external verifiers, opened on first need."""
        if self._session is None:
            from tlm.verify.factory import external_policy

            self._session = external_policy(self.config).session()  # answers checked
        return self._session

    def _require_open(self) -> Runtime:
        if self._runtime is None:
            raise TLMError("the engine is not open: use `async with Engine() as engine:`")
        return self._runtime
