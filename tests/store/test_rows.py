"""Records as rows: every column from the right field, NULLs as NULL, batches in few statements."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from tlm.store import ExecutionStore
from tlm.store.schema import COLUMNS, from_row, row_chunks, to_row, upsert_rows
from tlm.telemetry.records import (
    ErrorInfo,
    ExecutionRecord,
    Performance,
    VerificationResults,
)

FULL = ExecutionRecord(
    execution_id="e-full",
    task_id="extract",
    task_version="1.2.3",
    input={"text": "ünïcode in", "n": 1},
    output={"value": [1, 2.5, None]},
    models_used=("m1", "m2"),
    verification_results=VerificationResults("consensus", False, 0.25, {"votes": 1}),
    performance=Performance(0.5, 30, 0.002),
    timestamp="2025-03-01T12:00:00.000000Z",
    prompt_variant="terse",
    attempts=3,
    error=ErrorInfo("SchemaViolation", "bad output"),
    status="error",
    cache_hit=True,
    fallback="cheapest",
    trace_id="a" * 32,
    prompt="Extract: ünïcode in",
    system_prompt="Reply in JSON.",
    queue_wait_ms=12.5,
    batch_id="batch-1",
    batch_custom_id="custom-7",
    session_id="s-1",
    user_id="u-1",
    tags=("nightly", "eu"),
    metadata={"team": "search"},
    selection={"chosen": "m1"},
    spans=({"name": "tlm.execute extract", "parent": None, "attributes": {"k": 1}},),
)
"""A record with every field set, each to a value no other column holds."""

EXPECTED = {
    "execution_id": "e-full",
    "task_id": "extract",
    "task_version": "1.2.3",
    "timestamp": "2025-03-01T12:00:00.000000Z",
    "status": "error",
    "input": '{"text":"ünïcode in","n":1}',
    "output": '{"value":[1,2.5,null]}',
    "models_used": '["m1","m2"]',
    "verification_method": "consensus",
    "passed": 0,
    "confidence": 0.25,
    "verification_details": '{"votes":1}',
    "execution_time": 0.5,
    "tokens_used": 30,
    "cost": 0.002,
    "prompt_variant": "terse",
    "attempts": 3,
    "error_type": "SchemaViolation",
    "error_message": "bad output",
    "cache_hit": 1,
    "fallback": "cheapest",
    "trace_id": "a" * 32,
    "prompt": "Extract: ünïcode in",
    "system_prompt": "Reply in JSON.",
    "queue_wait_ms": 12.5,
    "batch_id": "batch-1",
    "batch_custom_id": "custom-7",
    "session_id": "s-1",
    "user_id": "u-1",
    "tags": '["nightly","eu"]',
    "metadata": '{"team":"search"}',
    "selection": '{"chosen":"m1"}',
    "spans": '[{"name":"tlm.execute extract","parent":null,"attributes":{"k":1}}]',
}


def minimal(execution_id: str, **changes: Any) -> ExecutionRecord:
    record = ExecutionRecord(
        execution_id=execution_id,
        task_id="extract",
        task_version="1.0.0",
        input={"text": execution_id},
        output=None,
        models_used=(),
        verification_results=None,
        performance=Performance(0.1, 0, 0.0),
        timestamp="2025-03-01T12:00:00.000000Z",
    )
    return attrs.evolve(record, **changes)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ExecutionStore]:
    s = ExecutionStore(tmp_path / "tlm.db")
    yield s
    s.close()


def raw_rows(store: ExecutionStore, columns: str = "*") -> list[sqlite3.Row]:
    conn = sqlite3.connect(store.path)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(f"SELECT {columns} FROM executions ORDER BY execution_id").fetchall()
    finally:
        conn.close()


def test_every_column_holds_its_own_field() -> None:
    row = to_row(FULL)
    assert len(row) == len(COLUMNS)
    assert dict(zip(COLUMNS, row, strict=True)) == EXPECTED
    assert from_row(row, ()) == FULL


def test_a_stored_record_reads_back_as_written_with_nulls_as_sql_null(
    store: ExecutionStore,
) -> None:
    bare = minimal("e-bare")
    store.write(FULL)
    store.write(bare)
    assert store.flush(10)
    assert store.get("e-full") == FULL
    assert store.get("e-bare") == bare
    (stored,) = [r for r in raw_rows(store) if r["execution_id"] == "e-full"]
    assert {c: stored[c] for c in COLUMNS} == EXPECTED
    typeof = ", ".join(f"typeof({c})" for c in COLUMNS)
    kinds = dict(zip(COLUMNS, raw_rows(store, typeof)[0], strict=True))  # e-bare sorts first
    for column in ("output", "verification_method", "passed", "error_type", "tags", "spans"):
        assert kinds[column] == "null", column
    assert kinds["input"] == "text"
    assert kinds["execution_time"] == "real"


@pytest.mark.parametrize("count", [1, 2, 3, 63, 64, 65, 130, 200])
def test_a_batch_is_written_in_chunks_that_cover_every_row_once(count: int) -> None:
    rows = [to_row(minimal(f"e{i:03d}")) for i in range(count)]
    chunks = list(row_chunks(rows))
    params = [value for _, chunk in chunks for value in chunk]
    assert params == [value for row in rows for value in row]
    for statement, chunk in chunks:
        size = len(chunk) // len(COLUMNS)
        assert statement == upsert_rows(size)
        assert size <= 64
        assert size & (size - 1) == 0
    assert len({statement for statement, _ in chunks}) <= 7


def test_a_large_batch_commits_every_record_and_the_last_write_of_an_id_wins(
    tmp_path: Path,
) -> None:
    store = ExecutionStore(tmp_path / "tlm.db", batch_size=512, linger_s=60)
    try:
        records = [minimal(f"e{i:03d}", attempts=i) for i in range(150)]
        records.append(minimal("e007", attempts=999, prompt="rewritten"))
        for record in records:
            store.write(record)
        assert store.flush(10)
        assert store.count() == 150
        assert store.get("e007") == records[-1]
        assert store.get("e149") == records[149]
    finally:
        store.close()


def test_a_bad_record_in_a_large_batch_spares_the_others(tmp_path: Path) -> None:
    store = ExecutionStore(tmp_path / "tlm.db", batch_size=512, linger_s=60)
    try:
        records = [minimal(f"e{i:03d}") for i in range(100)]
        records[70] = minimal("e070", prompt="lone \ud800 surrogate")
        for record in records:
            store.write(record)
        assert store.flush(10)
        assert store.count() == 100
        assert store.lost == 0
        stored = store.get("e070")
        assert stored is not None
        assert stored.prompt == "lone \\ud800 surrogate"
    finally:
        store.close()
