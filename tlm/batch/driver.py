"""The engine of a provider-batch run: planning, submission, polling, collection, cancelling.

A :class:`Driver` works from the run's saved state (:mod:`tlm.batch.state`) alone, so the same
loop serves a new run, a resumed one and a cancelled one. Each pass: submit what is pending
(split by the provider's request and byte limits), finish what is answered, poll the open
provider batches and download the ended ones, then wait with back-off while nothing changes.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import attrs

from tlm.batch.clients import BatchClient, LineResult, client_for, line_error
from tlm.batch.collect import CANCELLED, Collector
from tlm.batch.requests import (
    batch_model,
    parse_line,
    prepared_job,
    primary_request,
    request_sha,
    worst_case,
)
from tlm.batch.state import BatchState, Item, Run, Submission
from tlm.definition.model import Budget
from tlm.engine.budget import BudgetLedger
from tlm.engine.result import ExecutionResult, coerce_options
from tlm.errors import ProviderError

__all__ = ("PollPolicy", "BatchReport", "Driver")

_log = logging.getLogger(__name__)


@attrs.frozen
class PollPolicy:
    """How often to ask a provider about its batches: back-off while nothing changes.

    The wait after ``n`` polls without news is ``min(max_s, initial_s * factor**n)``, reset when a
    batch ends. Inject ``sleep`` in tests.
    """

    initial_s: float = 5.0
    max_s: float = 600.0
    factor: float = 2.0
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep

    def delay(self, quiet_polls: int) -> float:
        """The wait after ``quiet_polls`` polls in a row that found nothing new."""
        return min(self.max_s, self.initial_s * self.factor**quiet_polls)


@attrs.frozen
class BatchReport:
    """What a batch run did."""

    run_id: str
    status: str
    """``done``, ``cancelled`` (cancelled and finished) or ``running`` (stopped early)."""
    inputs: int
    finished: int
    ok: int
    failed: int
    cost_usd: float
    worst_case_usd: float
    """The worst case reserved before submission (prompt tokens + max_tokens, batch prices)."""
    batches: tuple[str, ...]
    """The provider batch ids submitted, resubmissions included."""
    output_path: str
    skipped: int = 0
    """Inputs not run again: their execution had already succeeded (counted in ``ok``)."""


class Driver:
    """One run's planning, submissions, polling and collection."""

    def __init__(
        self,
        engine: Any,
        state: BatchState,
        run: Run,
        max_in_flight: int,
        max_resubmits: int,
        max_requests_per_batch: int | None,
    ) -> None:
        self.engine = engine
        self.runtime = engine._require_open()
        self.task = engine.compiled(run.task_id, run.task_version)
        self.options = coerce_options(run.options)
        self.state = state
        self.run = run
        self.max_in_flight = max_in_flight
        self.max_resubmits = max_resubmits
        self.max_requests = max_requests_per_batch
        self.ledger = BudgetLedger(Budget(max_cost_usd=run.max_cost))
        self._clients: dict[str, BatchClient] = {}

    # -- planning ---------------------------------------------------------------------------

    async def plan(self) -> float:
        """Prepare every input; store it as pending (or direct); return the worst case."""
        run = self.run
        worst = 0.0
        chunk: list[Item] = []
        with open(run.input_path, encoding="utf-8") as lines:  # noqa: ASYNC230 - streamed
            for number, text in enumerate(lines, 1):
                if not text.strip():
                    continue
                item = await self._plan_line(number, text.rstrip("\n"))
                worst += item.estimate
                chunk.append(item)
                if len(chunk) >= 500:
                    self.state.add_items(run.run_id, chunk)
                    chunk = []
                    await anyio.lowlevel.checkpoint()
        self.state.add_items(run.run_id, chunk)
        return worst

    async def _plan_line(self, number: int, text: str) -> Item:
        parsed = parse_line(text, source=self.run.input_path, line=number)
        job = await prepared_job(self.runtime, self.task, parsed.value, self.options, line=number)
        if job.done or parsed.error is not None:
            return _item(number, job.execution_id, text, None, None, 0.0, "direct")
        model = batch_model(job)
        self._client(model)  # configuration errors (key, base URL) surface before anything runs
        request = primary_request(job, model)
        estimate = worst_case(request, self.runtime.card(model))
        sha = request_sha(request)
        return _item(number, job.execution_id, text, model, sha, estimate, "pending")

    def _client(self, model: str) -> BatchClient:
        card = self.runtime.card(model)
        client = self._clients.get(card.provider)
        if client is None:
            limits = self.runtime.catalog.batch_limits_for(card)
            client = client_for(card, limits, self.engine.config.env)
            self._clients[card.provider] = client
        return client

    # -- the loop ---------------------------------------------------------------------------

    async def drive(
        self,
        poll: PollPolicy,
        *,
        wait: bool,
        on_done: Callable[[ExecutionResult], None] | None,
    ) -> BatchReport:
        run = self.run
        spent, reserved = self.state.spent_and_reserved(run.run_id)
        self.ledger.spent_usd, self.ledger.reserved_usd = spent, reserved
        output = _open_output(Path(run.output_path), run.output_offset)
        collector = Collector(
            runtime=self.runtime,
            task=self.task,
            options=self.options,
            state=self.state,
            run=run,
            ledger=self.ledger,
            client_for=self._client,
            output=output,
            flush=self.engine.flush,
            max_in_flight=self.max_in_flight,
            on_done=on_done,
        )
        quiet = 0
        try:
            while True:
                if self.state.run(run.run_id).status == "cancelled":
                    self._cancel_pending()
                else:
                    await self._submit_pending()
                await collector.collect()
                counts = self.state.counts(run.run_id)
                unfinished = sum(n for s, n in counts.items() if s != "done")
                if not unfinished or not wait:
                    break
                news = await self._poll()
                if news:
                    quiet = 0
                    continue
                await poll.sleep(poll.delay(quiet))
                quiet += 1
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True):
                await self.cancel()
            raise
        finally:
            output.close()
            with anyio.CancelScope(shield=True):
                for client in self._clients.values():
                    await client.aclose()
        return self._report()

    def _report(self) -> BatchReport:
        run_id = self.run.run_id
        counts = self.state.counts(run_id)
        status = self.state.run(run_id).status
        unfinished = sum(n for s, n in counts.items() if s != "done")
        if not unfinished and status != "cancelled":
            self.state.set_run_status(run_id, "done")
            status = "done"
        finished, ok, cost, worst = self.state.summary(run_id)
        if unfinished and status != "cancelled":
            status = "running"
        return BatchReport(
            run_id=run_id,
            status=status,
            inputs=sum(counts.values()),
            finished=int(finished),
            ok=int(ok),
            failed=int(finished) - int(ok),
            cost_usd=float(cost),
            worst_case_usd=float(worst),
            batches=tuple(s.submission_id for s in self.state.submissions(run_id)),
            output_path=self.run.output_path,
        )

    # -- submission -------------------------------------------------------------------------

    async def _submit_pending(self) -> None:
        for model in self.state.pending_models(self.run.run_id):
            client = self._client(model)
            card = self.runtime.card(model)
            limit = client.limits.max_requests
            if self.max_requests is not None:
                limit = min(limit, self.max_requests)
            budget_bytes = client.limits.max_bytes - 64  # the envelope around the lines
            lines: list[bytes] = []
            ids: list[tuple[int, str, str | None]] = []
            size = 0
            for item in self.state.iter_items(self.run.run_id, "pending", model=model):
                job = await prepared_job(
                    self.runtime, self.task, parse_line(item.input, source="", line=0).value,
                    self.options, line=item.line, execution_id=item.execution_id,
                )  # fmt: skip
                if job.done:  # the input became a cache hit (or invalid): finish it directly
                    self._set_direct(item.line)
                    continue
                request = primary_request(job, model)
                custom_id = f"tlm-{item.line}-{item.resubmits}"
                line = client.line(custom_id, request, card)
                if lines and (len(lines) >= limit or size + len(line) + 1 > budget_bytes):
                    if not await self._submit(client, model, lines, ids):
                        return
                    lines, ids, size = [], [], 0
                lines.append(line)
                ids.append((item.line, custom_id, request_sha(request)))
                size += len(line) + 1
            if lines:
                await self._submit(client, model, lines, ids)

    def _set_direct(self, line: int) -> None:
        self.state.make_direct(self.run.run_id, line)

    async def _submit(
        self,
        client: BatchClient,
        model: str,
        lines: list[bytes],
        ids: list[tuple[int, str, str | None]],
    ) -> bool:
        """Submit one provider batch; ``False`` if the provider is unavailable for now (the lines
        stay pending and the next pass, after the poll back-off, tries again)."""
        try:
            batch_id, file_id = await client.submit(lines, model=model)
        except ProviderError as exc:
            if exc.retryable:
                _log.warning("submitting a provider batch failed, will retry: %s", exc)
                return False
            self._give_up_or_requeue([(line, None) for line, _, _ in ids], exc)
            return True
        submission = Submission(batch_id, self.run.run_id, model, file_id, "open", len(lines))
        self.state.submitted(self.run.run_id, submission, ids)
        return True

    def _give_up_or_requeue(self, lines: list[tuple[int, Any]], error: ProviderError | str) -> None:
        """Requeue lines that may be resubmitted; the rest keep ``error`` as their answer."""
        requeue: list[int] = []
        answers: list[tuple[int, Any]] = []
        resubmits = self.state.resubmits(self.run.run_id, [line for line, _ in lines])
        for line, _ in lines:
            if resubmits.get(line, 0) < self.max_resubmits:
                requeue.append(line)
            else:
                body = {"error": {"type": "api_error", "message": str(error)}}
                answers.append((line, LineResult("", "errored", body).to_json()))
        if requeue:
            self.state.requeue(self.run.run_id, requeue)
        if answers:
            self.state.answer(self.run.run_id, answers)

    # -- polling ----------------------------------------------------------------------------

    async def _poll(self) -> bool:
        """Check every open provider batch; collect the ended ones. Whether anything ended."""
        news = False
        for submission in self.state.submissions(self.run.run_id):
            if submission.status not in ("open", "cancelled"):
                continue
            client = self._client(submission.model)
            try:
                status = await client.status(submission.submission_id)
            except ProviderError as exc:
                if not exc.retryable:
                    raise
                _log.warning("polling provider batch %s failed: %s", submission.submission_id, exc)
                continue
            if status.state == "running":
                continue
            news = True
            waiting = {i.custom_id: i for i in self.state.still_submitted(submission.submission_id)}
            if status.state == "failed":
                self._give_up_or_requeue(
                    [(i.line, None) for i in waiting.values()],
                    f"provider batch {submission.submission_id} failed: {status.detail}",
                )
                self.state.set_submission_status(submission.submission_id, "failed")
                continue
            await self._download(client, status, waiting)
            self.state.set_submission_status(submission.submission_id, "collected")
        return news

    async def _download(
        self, client: BatchClient, status: Any, waiting: dict[str | None, Item]
    ) -> None:
        cancelled = self.state.run(self.run.run_id).status == "cancelled"
        answers: list[tuple[int, Any]] = []
        retry: list[tuple[int, Any]] = []
        async for result in client.results(status):
            item = waiting.pop(result.custom_id, None)
            if item is None:
                continue  # not ours, or already collected
            if result.kind in ("expired", "canceled") or _retryable(result, client, item):
                if cancelled:
                    answers.append((item.line, CANCELLED))
                else:
                    retry.append((item.line, result))
                continue
            answers.append((item.line, result.to_json()))
            if len(answers) >= 500:
                self.state.answer(self.run.run_id, answers)
                answers = []
        self.state.answer(self.run.run_id, answers)
        missing = [(i.line, None) for i in waiting.values()]  # no result line at all
        if cancelled:
            self.state.answer(self.run.run_id, [(line, CANCELLED) for line, _ in missing])
        elif retry or missing:
            why = f"expired or failed in provider batch {status.id}"
            self._give_up_or_requeue(retry + missing, why)

    # -- cancelling -------------------------------------------------------------------------

    async def cancel(self) -> None:
        """Cancel the open provider batches; no more resubmissions for this run."""
        self.state.set_run_status(self.run.run_id, "cancelled")
        for submission in self.state.submissions(self.run.run_id, status="open"):
            try:
                await self._client(submission.model).cancel(submission.submission_id)
            except ProviderError:
                pass  # it may have ended meanwhile; its results are still collected
            self.state.set_submission_status(submission.submission_id, "cancelled")

    def _cancel_pending(self) -> None:
        pending = list(self.state.iter_items(self.run.run_id, "pending"))
        self.state.answer(self.run.run_id, [(i.line, CANCELLED) for i in pending])


def _retryable(result: LineResult, client: BatchClient, item: Item) -> bool:
    """Whether an errored line may succeed if resubmitted (rate limit, overload, 5xx)."""
    if result.kind != "errored":
        return False
    return line_error(result, client.provider, item.model or "batch").retryable


def _item(
    line: int,
    execution_id: str,
    text: str,
    model: str | None,
    sha: str | None,
    estimate: float,
    state: Any,
) -> Item:
    return Item(line, execution_id, text, model, sha, estimate, state, None, None, None, 0)


def _open_output(path: Path, offset: int) -> Any:
    """The output file opened for appending after its committed ``offset`` bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "r+b" if path.exists() else "w+b")
    handle.truncate(offset)
    handle.seek(offset)
    return handle
