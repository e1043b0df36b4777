"""The providers' batch APIs on a real loopback socket, beside their synchronous endpoints.

:class:`FakeOpenAIBatchServer` serves OpenAI's Batch API (``POST /v1/files`` multipart with
``purpose=batch``, ``POST /v1/batches``, ``GET /v1/batches/{id}``, ``POST /v1/batches/{id}/cancel``,
``GET /v1/files/{id}/content``); :class:`FakeAnthropicBatchServer` serves Message Batches
(``POST /v1/messages/batches``, ``GET /v1/messages/batches/{id}``, ``GET .../results``,
``POST .../cancel``). Bodies are the providers' exact wire formats (the official SDK types parse
them; the test-suite checks).

Each request line is answered by the server's script, exactly as the synchronous endpoint would
answer it (a :class:`~tlm.testing.replies.Reply` with an error status becomes a per-line error).
A batch moves ``validating``/``in_progress`` → ended after ``polls_to_complete`` status reads.
Faults: :meth:`expire` makes given custom ids expire (once each) when their batch ends;
``fail_batches`` makes the next batches fail validation (OpenAI) or be refused (Anthropic);
``unavailable`` makes the next submissions meet a 503 / 529.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from tlm.testing.batch_state import _CUSTOM_ID, _DAY_S, FakeBatch, _BatchMixin, _ids, _iso
from tlm.testing.replies import Reply, anthropic_error, openai_error, overloaded, server_error
from tlm.testing.servers import FakeAnthropicServer, FakeOpenAIServer, RecordedRequest, Script

__all__ = ("FakeBatch", "FakeOpenAIBatchServer", "FakeAnthropicBatchServer")


class FakeOpenAIBatchServer(_BatchMixin, FakeOpenAIServer):
    """A fake OpenAI server with the Files and Batch APIs (plus chat completions, embeddings)."""

    def __init__(
        self,
        script: Script | None = None,
        *,
        polls_to_complete: int = 2,
        fail_batches: int = 0,
        latency_s: float = 0.0,
        api_key: str | None = None,
    ) -> None:
        super().__init__(script, latency_s=latency_s, api_key=api_key)
        self._init_batches(polls_to_complete, fail_batches)
        self.files: dict[str, tuple[str, str, bytes]] = {}
        """file id → (purpose, filename, content)."""

    def _routes(self, app: web.Application) -> None:
        super()._routes(app)
        app.router.add_post("/v1/files", self._upload)
        app.router.add_get("/v1/files/{file_id}", self._file)
        app.router.add_get("/v1/files/{file_id}/content", self._content)
        app.router.add_post("/v1/batches", self._create)
        app.router.add_get("/v1/batches/{batch_id}", self._retrieve)
        app.router.add_post("/v1/batches/{batch_id}/cancel", self._cancel)

    def _file_object(self, file_id: str) -> dict[str, Any]:
        purpose, filename, content = self.files[file_id]
        return {
            "id": file_id,
            "object": "file",
            "bytes": len(content),
            "created_at": int(time.time()),
            "filename": filename,
            "purpose": purpose,
            "status": "processed",
        }

    def _store_file(self, purpose: str, filename: str, content: bytes) -> str:
        file_id = f"file-{next(_ids):024d}"
        self.files[file_id] = (purpose, filename, content)
        return file_id

    async def _guard(self, request: web.Request, body: Any) -> web.StreamResponse | None:
        self.requests.append(RecordedRequest(request.path, dict(request.headers), body))
        denied = self._unauthorized(request)
        return None if denied is None else await self._send(request, denied)

    async def _upload(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        upload = form.get("file")
        purpose = str(form.get("purpose", ""))
        content = upload.file.read() if isinstance(upload, web.FileField) else b""
        filename = upload.filename if isinstance(upload, web.FileField) else "upload"
        denied = await self._guard(
            request, {"purpose": purpose, "filename": filename, "bytes": len(content)}
        )
        if denied is not None:
            return denied
        if self._take_unavailable():
            return await self._send(request, server_error(503))
        if not isinstance(upload, web.FileField) or purpose not in ("batch", "fine-tune"):
            return await self._send(
                request, openai_error(400, "'file' and a valid 'purpose' are required")
            )
        file_id = self._store_file(purpose, filename, content)
        return await self._send(request, Reply(body=self._file_object(file_id)))

    async def _file(self, request: web.Request) -> web.StreamResponse:
        file_id = request.match_info["file_id"]
        if file_id not in self.files:
            return await self._send(request, openai_error(404, f"No such File object: {file_id}"))
        return await self._send(request, Reply(body=self._file_object(file_id)))

    async def _content(self, request: web.Request) -> web.StreamResponse:
        file_id = request.match_info["file_id"]
        denied = await self._guard(request, None)
        if denied is not None:
            return denied
        if file_id not in self.files:
            return await self._send(request, openai_error(404, f"No such File object: {file_id}"))
        return web.Response(body=self.files[file_id][2], content_type="application/octet-stream")

    async def _create(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body = json.loads(raw or b"{}")
        denied = await self._guard(request, body)
        if denied is not None:
            return denied
        file_id = body.get("input_file_id")
        if file_id not in self.files:
            return await self._send(request, openai_error(400, f"No such File object: {file_id}"))
        if body.get("endpoint") != "/v1/chat/completions" or body.get("completion_window") != "24h":
            return await self._send(
                request, openai_error(400, "endpoint and completion_window '24h' are required")
            )
        batch = FakeBatch(
            id=f"batch_{next(_ids):024d}", lines=[], created_at=time.time(), input_file_id=file_id
        )
        errors: list[dict[str, Any]] = []
        seen: set[str] = set()
        for number, text in enumerate(self.files[file_id][2].decode().splitlines(), 1):
            try:
                line = json.loads(text)
                custom_id, line_body = line["custom_id"], line["body"]
                if line.get("method") != "POST" or line.get("url") != body["endpoint"]:
                    raise ValueError("method must be POST and url the batch's endpoint")
                if custom_id in seen:
                    raise ValueError(f"duplicate custom_id {custom_id!r}")
            except (ValueError, KeyError, TypeError) as exc:
                errors.append({"code": "invalid_request", "line": number, "message": str(exc)})
                continue
            seen.add(custom_id)
            batch.lines.append((custom_id, line_body))
        if len(batch.lines) > 50_000 or len(self.files[file_id][2]) > 200 * 1024 * 1024:
            errors.append({"code": "too_large", "line": None, "message": "batch too large"})
        if self._take_failure():
            errors.append({"code": "invalid_request", "line": 1, "message": "validation failed"})
        if errors:
            batch.status, batch.errors, batch.ended_at = "failed", errors, time.time()
        self.batches[batch.id] = batch
        return await self._send(request, Reply(body=self._batch_object(batch, body)))

    async def _retrieve(self, request: web.Request) -> web.StreamResponse:
        batch = self.batches.get(request.match_info["batch_id"])
        denied = await self._guard(request, None)
        if denied is not None:
            return denied
        if batch is None:
            return await self._send(request, openai_error(404, "No batch found"))
        await self._advance(batch)
        return await self._send(request, Reply(body=self._batch_object(batch)))

    async def _cancel(self, request: web.Request) -> web.StreamResponse:
        batch = self.batches.get(request.match_info["batch_id"])
        denied = await self._guard(request, None)
        if denied is not None:
            return denied
        if batch is None:
            return await self._send(request, openai_error(404, "No batch found"))
        if batch.status in ("validating", "in_progress", "finalizing"):
            batch.status, batch.cancelling = "cancelling", True
        return await self._send(request, Reply(body=self._batch_object(batch)))

    async def _advance(self, batch: FakeBatch) -> None:
        if batch.status in ("completed", "failed", "expired", "cancelled"):
            return
        batch.polls += 1
        if batch.cancelling:
            batch.status, batch.ended_at = "cancelled", time.time()
            return
        if batch.polls < self.polls_to_complete:
            batch.status = "in_progress"
            return
        output: list[bytes] = []
        failed: list[bytes] = []
        expired = False
        for custom_id, body in batch.lines:
            line_id = f"batch_req_{next(_ids):024d}"
            if self._expires(custom_id):
                expired = True
                error = {
                    "code": "batch_expired",
                    "message": "This request could not be executed before the completion "
                    "window expired.",
                }
                line: dict[str, Any] = {
                    "id": line_id,
                    "custom_id": custom_id,
                    "response": None,
                    "error": error,
                }
                failed.append(json.dumps(line).encode())
                batch.results.append(line)
                continue
            reply = await self._next_reply(body)
            if reply is None:
                reply = body["messages"][-1]["content"] if body.get("messages") else ""
            answer = self._as_reply(reply, body)
            line = {
                "id": line_id,
                "custom_id": custom_id,
                "response": {
                    "status_code": answer.status,
                    "request_id": f"req_{next(_ids):024d}",
                    "body": answer.body,
                },
                "error": None,
            }
            (output if answer.status < 400 else failed).append(json.dumps(line).encode())
            batch.results.append(line)
        if output:
            batch.output_file_id = self._store_file(
                "batch_output", "output.jsonl", b"\n".join(output) + b"\n"
            )
        if failed:
            batch.error_file_id = self._store_file(
                "batch_output", "errors.jsonl", b"\n".join(failed) + b"\n"
            )
        batch.status, batch.ended_at = ("expired" if expired else "completed"), time.time()

    def _batch_object(
        self, batch: FakeBatch, create: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        failed = sum(
            1
            for line in batch.results
            if line["error"] is not None or line["response"]["status_code"] >= 400
        )
        ended = batch.status in ("completed", "failed", "expired", "cancelled")
        return {
            "id": batch.id,
            "object": "batch",
            "endpoint": "/v1/chat/completions",
            "errors": {"object": "list", "data": batch.errors} if batch.errors else None,
            "input_file_id": batch.input_file_id,
            "completion_window": "24h",
            "status": batch.status,
            "output_file_id": batch.output_file_id,
            "error_file_id": batch.error_file_id,
            "created_at": int(batch.created_at),
            "in_progress_at": int(batch.created_at) if batch.polls else None,
            "expires_at": int(batch.created_at) + _DAY_S,
            "finalizing_at": None,
            "completed_at": int(batch.ended_at)
            if batch.status == "completed" and batch.ended_at
            else None,
            "failed_at": int(batch.ended_at)
            if batch.status == "failed" and batch.ended_at
            else None,
            "expired_at": int(batch.ended_at)
            if batch.status == "expired" and batch.ended_at
            else None,
            "cancelling_at": None,
            "cancelled_at": int(batch.ended_at)
            if batch.status == "cancelled" and batch.ended_at
            else None,
            "request_counts": {
                "total": len(batch.lines),
                "completed": len(batch.results) - failed if ended else 0,
                "failed": failed if ended else 0,
            },
            "metadata": dict((create or {}).get("metadata") or {}),
        }


class FakeAnthropicBatchServer(_BatchMixin, FakeAnthropicServer):
    """A fake Anthropic server with Message Batches (plus the Messages API)."""

    def __init__(
        self,
        script: Script | None = None,
        *,
        polls_to_complete: int = 2,
        fail_batches: int = 0,
        latency_s: float = 0.0,
        api_key: str | None = None,
    ) -> None:
        super().__init__(script, latency_s=latency_s, api_key=api_key)
        self._init_batches(polls_to_complete, fail_batches)

    def _routes(self, app: web.Application) -> None:
        super()._routes(app)
        app.router.add_post("/v1/messages/batches", self._create)
        app.router.add_get("/v1/messages/batches/{batch_id}", self._retrieve)
        app.router.add_get("/v1/messages/batches/{batch_id}/results", self._results)
        app.router.add_post("/v1/messages/batches/{batch_id}/cancel", self._cancel)

    async def _guard(self, request: web.Request, body: Any) -> web.StreamResponse | None:
        self.requests.append(RecordedRequest(request.path, dict(request.headers), body))
        if self.api_key is not None and self.api_key not in (
            request.headers.get("x-api-key"),
            request.headers.get("Authorization", "").removeprefix("Bearer "),
        ):
            return await self._send(
                request, anthropic_error(401, "authentication_error", "invalid x-api-key")
            )
        return None

    def _invalid(self, message: str) -> Reply:
        return anthropic_error(400, "invalid_request_error", message)

    async def _create(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body = json.loads(raw or b"{}")
        requests_seen = len(body.get("requests") or [])
        denied = await self._guard(request, {"requests": requests_seen, "bytes": len(raw)})
        if denied is not None:
            return denied
        if self._take_unavailable():
            return await self._send(request, overloaded())
        requests = body.get("requests")
        if not isinstance(requests, list) or not requests:
            return await self._send(request, self._invalid("requests: at least one required"))
        if len(requests) > 100_000 or len(raw) > 256 * 1024 * 1024:
            return await self._send(request, self._invalid("requests: too many or too large"))
        if self._take_failure():
            return await self._send(request, self._invalid("requests.0.params: invalid"))
        seen: set[str] = set()
        lines: list[tuple[str, dict[str, Any]]] = []
        for index, item in enumerate(requests):
            custom_id = item.get("custom_id") if isinstance(item, Mapping) else None
            params = item.get("params") if isinstance(item, Mapping) else None
            if not isinstance(custom_id, str) or not _CUSTOM_ID.match(custom_id):
                return await self._send(request, self._invalid(f"requests.{index}.custom_id"))
            if custom_id in seen:
                return await self._send(
                    request, self._invalid(f"requests.{index}: duplicate custom_id {custom_id}")
                )
            if not isinstance(params, dict) or "max_tokens" not in params:
                return await self._send(request, self._invalid(f"requests.{index}.params"))
            seen.add(custom_id)
            lines.append((custom_id, params))
        batch = FakeBatch(id=f"msgbatch_{next(_ids):024d}", lines=lines, created_at=time.time())
        batch.status = "in_progress"
        self.batches[batch.id] = batch
        return await self._send(request, Reply(body=self._batch_object(batch)))

    async def _retrieve(self, request: web.Request) -> web.StreamResponse:
        batch = self.batches.get(request.match_info["batch_id"])
        denied = await self._guard(request, None)
        if denied is not None:
            return denied
        if batch is None:
            return await self._send(request, anthropic_error(404, "not_found_error", "no batch"))
        await self._advance(batch)
        return await self._send(request, Reply(body=self._batch_object(batch)))

    async def _cancel(self, request: web.Request) -> web.StreamResponse:
        batch = self.batches.get(request.match_info["batch_id"])
        denied = await self._guard(request, None)
        if denied is not None:
            return denied
        if batch is None:
            return await self._send(request, anthropic_error(404, "not_found_error", "no batch"))
        if batch.status == "in_progress":
            batch.status, batch.cancelling = "canceling", True
        return await self._send(request, Reply(body=self._batch_object(batch)))

    async def _results(self, request: web.Request) -> web.StreamResponse:
        batch = self.batches.get(request.match_info["batch_id"])
        denied = await self._guard(request, None)
        if denied is not None:
            return denied
        if batch is None or batch.status != "ended":
            return await self._send(
                request, anthropic_error(404, "not_found_error", "results not available")
            )
        data = b"".join(json.dumps(line).encode() + b"\n" for line in batch.results)
        return web.Response(body=data, content_type="application/binary")

    async def _advance(self, batch: FakeBatch) -> None:
        if batch.status == "ended":
            return
        batch.polls += 1
        if not batch.cancelling and batch.polls < self.polls_to_complete:
            return
        for custom_id, params in batch.lines:
            result: dict[str, Any]
            if batch.cancelling:
                result = {"type": "canceled"}
            elif self._expires(custom_id):
                result = {"type": "expired"}
            else:
                reply = await self._next_reply(params)
                if reply is None:
                    reply = params["messages"][-1]["content"] if params.get("messages") else ""
                answer = self._as_reply(reply, params)
                if answer.status < 400:
                    result = {"type": "succeeded", "message": answer.body}
                else:
                    error = dict(answer.body)
                    error.setdefault("request_id", f"req_{next(_ids):024d}")
                    result = {"type": "errored", "error": error}
            batch.results.append({"custom_id": custom_id, "result": result})
        batch.status, batch.ended_at = "ended", time.time()

    def _batch_object(self, batch: FakeBatch) -> dict[str, Any]:
        counts = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        if batch.status == "ended":
            for line in batch.results:
                counts[str(line["result"]["type"])] += 1
        else:
            counts["processing"] = len(batch.lines)
        created = datetime.fromtimestamp(batch.created_at, UTC)
        return {
            "id": batch.id,
            "type": "message_batch",
            "processing_status": batch.status,
            "request_counts": counts,
            "ended_at": _iso(batch.ended_at),
            "created_at": _iso(batch.created_at),
            "expires_at": (created + timedelta(days=1)).isoformat().replace("+00:00", "Z"),
            "archived_at": None,
            "cancel_initiated_at": _iso(batch.created_at) if batch.cancelling else None,
            "results_url": f"{self.root_url}/v1/messages/batches/{batch.id}/results"
            if batch.status == "ended"
            else None,
        }
