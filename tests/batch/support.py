"""Shared parts of the batch tests: a catalog over the fake batch servers, a task, inputs."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from tests.engine.conftest import make_task
from tlm.catalog import Catalog
from tlm.definition.model import TaskDefinition
from tlm.definition.registry import DefinitionRegistry
from tlm.engine import Engine, EngineConfig
from tlm.testing import FakeAnthropicServer, FakeOpenAIServer, ReplyLike
from tlm.testing.replies import anthropic_error, openai_error, server_error

KEY = "sk-batch-test-0123456789"
PRICES = {"in": 2.0, "out": 8.0, "batch_in": 1.0, "batch_out": 4.0}


def catalog_data(
    api: str, base_url: str, *, provider: str | None = None, voter: bool = False
) -> dict[str, Any]:
    """One batchable model on ``api`` at ``base_url`` ($2/$8 standard, $1/$4 in a batch), and
    with ``voter`` a second model there without a batch API ($3/$3)."""
    models = [
        {
            "id": "batchable",
            "provider": provider or f"test-{api}",
            "api": api,
            "provider_model": f"{api}-model-1",
            "base_url": base_url,
            "api_key_env": "BATCH_TEST_KEY",
            "context_window": 32_768,
            "max_output_tokens": 512,
            "input_price_per_mtok": PRICES["in"],
            "output_price_per_mtok": PRICES["out"],
            "batch_input_price_per_mtok": PRICES["batch_in"],
            "batch_output_price_per_mtok": PRICES["batch_out"],
            "structured_output": "json_schema",
        }
    ]
    if voter:
        models.append(
            {
                "id": "voter",
                "provider": provider or f"test-{api}",
                "api": api,
                "provider_model": f"{api}-voter",
                "base_url": base_url,
                "api_key_env": "BATCH_TEST_KEY",
                "context_window": 32_768,
                "input_price_per_mtok": 3.0,
                "output_price_per_mtok": 3.0,
                "structured_output": "json_schema",
                "prior_quality": 0.1,
            }
        )
    return {"version": 1, "models": models}


def make_engine(
    data_dir: Path, catalog: Mapping[str, Any], *, task: TaskDefinition | None = None, **config: Any
) -> Engine:
    settings: dict[str, Any] = {
        "data_dir": data_dir,
        "models": ("batchable",),
        "env": {"BATCH_TEST_KEY": KEY},
        "cache": False,
    }
    settings.update(config)
    return Engine(
        EngineConfig(**settings),
        registry=DefinitionRegistry([task or make_task()]),
        catalog=Catalog.from_data(dict(catalog)),
    )


def write_inputs(path: Path, count: int, *, extra: Mapping[int, str] | None = None) -> Path:
    """``count`` postings, one JSON object a line (``extra`` replaces given 1-based lines)."""
    lines = [json.dumps({"posting": f"Posting {n}: Title{n} wanted"}) for n in range(1, count + 1)]
    for number, text in (extra or {}).items():
        lines[number - 1] = text
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


_TITLE = re.compile(r"Title\d+")


def _user_text(body: Mapping[str, Any]) -> str:
    users = [m["content"] for m in body.get("messages", []) if m.get("role") == "user"]
    return str(users[0]) if users else ""


def title_script(api: str) -> Callable[[dict[str, Any]], ReplyLike]:
    """Answers {"title": TitleN}; a posting saying BROKEN gets prose first (re-asked), one saying
    REJECT a 400, one saying FLAKY a 5xx the first time."""
    seen: set[str] = set()

    def answer(body: dict[str, Any]) -> ReplyLike:
        text = _user_text(body)
        reasked = (
            len(body.get("messages", [])) > 1
            and body["messages"][-1]["role"] == "user"
            and ("not acceptable" in str(body["messages"][-1]["content"]))
        )
        if "REJECT" in text:
            if api == "anthropic":
                return anthropic_error(400, "invalid_request_error", "bad request for REJECT")
            return openai_error(400, "bad request for REJECT")
        if "FLAKY" in text and text not in seen:
            seen.add(text)
            if api == "anthropic":
                return anthropic_error(529, "overloaded_error", "Overloaded")
            return server_error(500)
        if "BROKEN" in text and not reasked:
            return "I think the title is something"
        found = _TITLE.search(text)
        return json.dumps({"title": found.group(0) if found else "none"})

    return answer


def server_for(api: str, script: Any, **kwargs: Any) -> Any:
    from tlm.testing.batch_servers import FakeAnthropicBatchServer, FakeOpenAIBatchServer

    cls = FakeAnthropicBatchServer if api == "anthropic" else FakeOpenAIBatchServer
    return cls(script, api_key=KEY, **kwargs)


def base_url(server: FakeOpenAIServer | FakeAnthropicServer) -> str:
    return server.base_url


def read_output(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


async def no_sleep(seconds: float) -> None:
    """Polling back-off without waiting (the fake servers advance per status read)."""
    del seconds
