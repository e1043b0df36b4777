"""Issue 12 item 10: the cost budget is reserved before a call, over a real socket.

A fake OpenAI server that reports 10 million output tokens for every reply: the engine lowers
``max_tokens`` so the call's worst case fits what is left of ``max_cost_usd``, the server
receives that capped value, the output is charged at most that many tokens (so spending stays
within the budget), and a call whose minimum does not fit is refused before it is sent.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.engine.conftest import base_task, make_task
from tlm.catalog import Catalog
from tlm.definition.registry import DefinitionRegistry
from tlm.engine import Engine, EngineConfig
from tlm.engine.reservation import MIN_OUTPUT_TOKENS
from tlm.errors import BudgetExceeded
from tlm.store import ExecutionStore
from tlm.testing import FakeOpenAIServer, chat_completion

ROOT = Path(__file__).resolve().parents[2]
INPUT_PRICE = 1.0  # USD per million tokens
OUTPUT_PRICE = 100.0  # USD per million tokens: 1024 output tokens cost ~$0.10
HUGE = 10_000_000


def _catalog(base_url: str) -> dict[str, Any]:
    return {
        "version": 1,
        "models": [
            {
                "id": "pricey",
                "provider": "fake",
                "api": "openai",
                "provider_model": "pricey-model",
                "base_url": base_url,
                "context_window": 32_768,
                "input_price_per_mtok": INPUT_PRICE,
                "output_price_per_mtok": OUTPUT_PRICE,
                "structured_output": "json_schema",
            }
        ],
    }


def _lying_reply(body: dict[str, Any]) -> dict[str, Any]:
    return chat_completion(json.dumps({"title": "Chef"}), prompt_tokens=50, completion_tokens=HUGE)


def _engine(server: FakeOpenAIServer, data_dir: Path) -> Engine:
    return Engine(
        EngineConfig(data_dir=data_dir, models=("pricey",)),
        registry=DefinitionRegistry([make_task()]),
        catalog=Catalog.from_data(_catalog(server.base_url)),
    )


@pytest.mark.parametrize("max_tokens", [1024, None])
async def test_max_tokens_is_capped_so_the_call_fits_the_budget(
    tmp_path: Path, max_tokens: int | None
) -> None:
    budget = 0.05
    async with FakeOpenAIServer(_lying_reply) as server, _engine(server, tmp_path) as engine:
        result = await engine.execute(
            "title_extraction",
            {"posting": "Chef wanted"},
            options={"budget": {"max_cost_usd": budget}, "max_tokens": max_tokens},
        )
        engine.flush()
        (body,) = server.bodies
    sent = body["max_tokens"]
    assert MIN_OUTPUT_TOKENS <= sent < 1024
    # the reservation (estimated prompt + the capped output) fits the budget ...
    assert sent * OUTPUT_PRICE / 1e6 < budget
    assert (sent + 1) * OUTPUT_PRICE / 1e6 + 50 * INPUT_PRICE / 1e6 > budget * 0.9
    # ... and the 10 M tokens the server claims are charged as the capped output at most
    assert result.output == {"title": "Chef"}
    assert result.cost_usd == pytest.approx((50 * INPUT_PRICE + sent * OUTPUT_PRICE) / 1e6)
    assert result.cost_usd <= budget
    with ExecutionStore(tmp_path / "tlm.db") as store:
        record = store.get(result.execution_id)
    assert record is not None
    assert record.performance.cost <= budget


async def test_a_call_that_cannot_fit_is_refused_before_it_is_sent(tmp_path: Path) -> None:
    budget = 0.001  # $0.001 buys 10 output tokens: fewer than the minimum
    async with FakeOpenAIServer(_lying_reply) as server, _engine(server, tmp_path) as engine:
        with pytest.raises(BudgetExceeded) as caught:
            await engine.execute(
                "title_extraction",
                {"posting": "Chef wanted"},
                options={"budget": {"max_cost_usd": budget}},
            )
        assert server.requests == []
    message = str(caught.value)
    assert "the next call to pricey would exceed the cost budget: estimated $0.1" in message
    assert "output tokens" in message
    assert caught.value.spent_usd == 0.0


async def test_a_budget_that_holds_the_worst_case_changes_nothing(tmp_path: Path) -> None:
    async with FakeOpenAIServer(_lying_reply) as server, _engine(server, tmp_path) as engine:
        result = await engine.execute(
            "title_extraction",
            {"posting": "Chef wanted"},
            options={"budget": {"max_cost_usd": 1.0}, "max_tokens": 300},
        )
        (body,) = server.bodies
    assert body["max_tokens"] == 300
    assert result.cost_usd == pytest.approx((50 * INPUT_PRICE + 300 * OUTPUT_PRICE) / 1e6)


async def test_the_cli_max_cost_caps_the_call_too(tmp_path: Path) -> None:
    """``tlm execute --max-cost`` in a real subprocess against the lying server."""
    definitions = tmp_path / "definitions"
    task_dir = definitions / "tasks" / "title_extraction"
    task_dir.mkdir(parents=True)
    (task_dir / "1.0.0.json").write_text(json.dumps(base_task()), encoding="utf-8")
    async with FakeOpenAIServer(_lying_reply) as server:
        catalog = tmp_path / "models.json"
        catalog.write_text(json.dumps(_catalog(server.base_url)), encoding="utf-8")
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
            "TLM_DEFINITIONS": str(definitions),
            "TLM_CATALOG": str(catalog),
            "TLM_MODELS": "pricey",
            "TLM_DATA_DIR": str(tmp_path / "data"),
        }
        env.pop("TLM_CONFIG", None)
        command = [sys.executable, "-c", "import sys; from tlm.cli import main; sys.exit(main())"]
        with anyio.fail_after(120):
            done = await anyio.run_process(
                [*command, "execute", "title_extraction", "--input", '{"posting": "Chef"}',
                 "--max-cost", "0.05", "--json"],
                env=env,
                cwd=tmp_path,
                check=False,
            )  # fmt: skip
        (body,) = server.bodies
    assert done.returncode == 0, done.stderr.decode()
    result = json.loads(done.stdout)
    assert body["max_tokens"] < 1024
    assert result["cost_usd"] <= 0.05
    assert math.isclose(result["tokens"]["output"], body["max_tokens"])
