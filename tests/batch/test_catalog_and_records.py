"""Batch prices and limits in the catalog; batch ids in the records, migrating older stores."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tlm.catalog import DEFAULT_BATCH_LIMITS, BatchLimits, Catalog
from tlm.errors import TaskSchemaError
from tlm.providers.base import Usage
from tlm.store.sqlite import MIGRATIONS, ExecutionStore
from tlm.telemetry.records import ExecutionRecord, Performance

ROOT = Path(__file__).resolve().parents[2]


def _card(**fields: Any) -> dict[str, Any]:
    card = {
        "id": "m",
        "provider": "p",
        "api": "anthropic",
        "provider_model": "m-1",
        "base_url": "http://127.0.0.1:9",
        "context_window": 1000,
        "input_price_per_mtok": 3.0,
        "output_price_per_mtok": 15.0,
        "cached_input_price_per_mtok": 0.3,
    }
    card.update(fields)
    return card


def test_the_shipped_catalog_halves_the_hosted_prices_in_a_batch() -> None:
    catalog = Catalog.packaged()
    usage = Usage(input_tokens=1_000_000, output_tokens=1_000_000)
    batchable = [card for card in catalog if card.batchable]
    assert {card.id for card in batchable} >= {"gpt-4o-mini", "claude-3-5-haiku"}
    for card in batchable:
        assert card.cost(usage, batch=True) == pytest.approx(card.cost(usage) / 2)
    assert catalog.batch_limits["openai"] == BatchLimits(50_000, 200 * 1024 * 1024)
    assert catalog.batch_limits["anthropic"] == BatchLimits(100_000, 256 * 1024 * 1024)
    local = catalog.get("qwen2.5-coder-0.5b-instruct")
    assert not local.batchable
    with pytest.raises(ValueError, match="no batch prices"):
        local.cost(usage, batch=True)


def test_batch_prices_come_in_pairs_and_limits_default_per_wire_format() -> None:
    with pytest.raises(TaskSchemaError, match="batch_output_price_per_mtok"):
        Catalog.from_data({"version": 1, "models": [_card(batch_input_price_per_mtok=1.5)]})
    catalog = Catalog.from_data(
        {
            "version": 1,
            "batch_limits": {"p": {"max_requests": 10}},
            "models": [_card(batch_input_price_per_mtok=1.5, batch_output_price_per_mtok=7.5)],
        }
    )
    card = catalog.get("m")
    assert catalog.batch_limits_for(card) == BatchLimits(
        10, DEFAULT_BATCH_LIMITS["anthropic"].max_bytes
    )
    # cached input in a batch: the lower of the cached and the batch input price
    usage = Usage(input_tokens=1_000_000, output_tokens=0, cached_input_tokens=500_000)
    assert card.cost(usage, batch=True) == pytest.approx(0.5 * 1.5 + 0.5 * 0.3)
    plain = Catalog.from_data({"version": 1, "models": [_card(api="openai")]})
    assert plain.batch_limits_for(plain.get("m")) == DEFAULT_BATCH_LIMITS["openai"]


def test_an_older_store_gains_the_batch_columns_and_keeps_its_records(tmp_path: Path) -> None:
    path = tmp_path / "tlm.db"
    conn = sqlite3.connect(path)
    for statement in MIGRATIONS[0]:
        conn.execute(statement)
    conn.execute("PRAGMA user_version = 1")
    conn.execute(
        "INSERT INTO executions (execution_id, task_id, task_version, timestamp, status, input, "
        "models_used, execution_time, tokens_used, cost, attempts, cache_hit) "
        "VALUES ('old', 't', '1.0.0', '2026-01-01T00:00:00.000000Z', 'ok', '{}', '[]', 1, 2, 0.1, "
        "1, 0)"
    )
    conn.commit()
    conn.close()
    record = ExecutionRecord(
        execution_id="new",
        task_id="t",
        task_version="1.0.0",
        input={},
        output={"x": 1},
        models_used=("m",),
        verification_results=None,
        performance=Performance(1.0, 3, 0.2),
        timestamp="2026-01-02T00:00:00.000000Z",
        batch_id="batch_1",
        batch_custom_id="tlm-7-0",
    )
    with ExecutionStore(path) as store:
        store.write(record)
        old, new = store.get("old"), store.get("new")
    assert old is not None
    assert old.batch_id is None
    assert new is not None
    assert (new.batch_id, new.batch_custom_id) == ("batch_1", "tlm-7-0")
    assert ExecutionRecord.from_json(new.to_json()) == new
