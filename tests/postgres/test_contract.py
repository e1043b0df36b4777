"""One contract, both backends: every test runs on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import attrs
import pytest

from tests.postgres.conftest import StoreFactory
from tests.postgres.records import T0, make_record
from tlm.engine.config import EngineConfig
from tlm.errors import StoreError
from tlm.store import open_store
from tlm.store.base import ExecutionLog
from tlm.store.postgres import PostgresExecutionStore
from tlm.store.sqlite import ExecutionStore


def test_the_factory_picks_the_backend(open_backend: StoreFactory, backend: str | None) -> None:
    store = open_backend()
    assert isinstance(store, ExecutionLog)
    expected = ExecutionStore if backend is None else PostgresExecutionStore
    assert type(store) is expected


def test_records_read_back_as_written(open_backend: StoreFactory) -> None:
    store = open_backend()
    records = [make_record(i, minute=i) for i in range(20)]
    for record in records:
        store.write(record)
    got = store.get("e7")
    assert got is not None
    assert got.to_dict() == records[7].to_dict()
    assert store.get("missing") is None
    assert store.count() == 20


def test_queries_filter_order_and_limit(open_backend: StoreFactory) -> None:
    store = open_backend()
    for i in range(10):
        store.write(make_record(i, task_id="a" if i % 2 else "b", minute=i))
    assert [r.execution_id for r in store.query(task_id="a")] == ["e1", "e3", "e5", "e7", "e9"]
    assert store.count(task_id="b") == 5
    window = store.query(since=T0 + timedelta(minutes=2), until=T0 + timedelta(minutes=5))
    assert [r.execution_id for r in window] == ["e2", "e3", "e4"]
    newest = store.query(limit=3, newest_first=True)
    assert [r.execution_id for r in newest] == ["e9", "e8", "e7"]
    assert [r.execution_id for r in store.iter_query(version="1.0.0", limit=2)] == ["e0", "e1"]


def test_a_record_written_twice_is_kept_once_with_its_feedback(
    open_backend: StoreFactory,
) -> None:
    store = open_backend()
    store.write(make_record(1))
    store.add_feedback("e1", correct=True, note="fine")
    store.write(attrs.evolve(make_record(1), status="error"))
    assert store.count() == 1
    got = store.get("e1")
    assert got is not None
    assert got.status == "error"
    assert [(f.correct, f.note) for f in got.feedback] == [(True, "fine")]


def test_feedback_is_attached_validated_and_refused_for_unknown_ids(
    open_backend: StoreFactory,
) -> None:
    store = open_backend()
    store.write(make_record(1))
    store.add_feedback("e1", score=0.25, source="system")
    store.add_feedback("e1", correct=False, note="wrong title")
    got = store.get("e1")
    assert got is not None
    assert [(f.source, f.score, f.correct) for f in got.feedback] == [
        ("system", 0.25, None),
        ("human", None, False),
    ]
    with pytest.raises(StoreError, match="no execution with id 'nope'"):
        store.add_feedback("nope", correct=True)
    with pytest.raises(ValueError, match="needs a score"):
        store.add_feedback("e1")
    [listed] = store.query()
    assert len(listed.feedback) == 2


def test_text_the_database_cannot_hold_reads_back_unchanged(open_backend: StoreFactory) -> None:
    store = open_backend()
    record = make_record(1)
    odd = {"text": "nul \x00 and lone \ud800 surrogate", "ok": "caf\u00e9 \U0001f600"}
    store.write(attrs.evolve(record, input=odd))
    got = store.get("e1")
    assert got is not None
    assert got.input == odd
    assert store.lost == 0


def test_an_awaited_record_is_committed_when_its_ticket_is_settled(
    open_backend: StoreFactory,
) -> None:
    store = open_backend(linger_s=30.0)  # only the commit request may commit it
    ticket = store.expect("e1")
    store.write(make_record(1))
    assert ticket.seq == 1
    store.commit_now()
    done = threading.Event()
    store.add_listener(lambda processed: done.set() if processed >= 1 else None)
    assert done.wait(10), "commit_now did not commit the awaited record"
    assert ticket.error is None
    reader = open_backend()  # another connection (process-like) sees it
    assert reader.count() == 1


def test_reopening_keeps_records_and_the_schema(open_backend: StoreFactory) -> None:
    first = open_backend()
    for i in range(5):
        first.write(make_record(i, minute=i))
    first.close()
    again = open_backend()
    assert again.count() == 5
    again.write(make_record(9))
    assert again.count() == 6


def test_a_closed_store_refuses_writes(open_backend: StoreFactory) -> None:
    store = open_backend()
    store.close()
    store.close()  # idempotent
    with pytest.raises(StoreError, match="closed"):
        store.write(make_record(1))


def test_open_store_takes_an_engine_configuration(backend: str | None, tmp_path: Path) -> None:
    config = EngineConfig(data_dir=tmp_path / "cfg", database=backend)
    store = open_store(config)
    try:
        store.write(make_record(1))
        assert store.count() == 1
        assert (tmp_path / "cfg" / "tlm.db").exists() == (backend is None)
    finally:
        store.close()
