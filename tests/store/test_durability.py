"""The store never fails in silence: bad records, locks, damaged files (issue 12, items 1, 2, 6)."""

from __future__ import annotations

import json
import logging
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import attrs
import pytest

from tests.store.test_sqlite import make_record
from tlm.errors import StoreCorrupted
from tlm.store import ExecutionStore
from tlm.telemetry.records import ExecutionRecord

POISON = "bad \ud800 text"


def poisoned(i: int) -> ExecutionRecord:
    """A record with a lone surrogate in its input, output, prompt and error message."""
    return attrs.evolve(
        make_record(i),
        input={"text": POISON, POISON: [1, "\udfff"]},
        output={"value": POISON},
        prompt=f"Extract: {POISON}",
    )


def damage(path: Path) -> None:
    """Flip bytes in the b-tree page headers of every other page; the file header stays intact."""
    data = bytearray(path.read_bytes())
    page_size = int.from_bytes(data[16:18], "big")
    for page in range(2, len(data) // page_size + 1, 2):
        start = (page - 1) * page_size
        data[start + 3] ^= 0x5A  # number of cells
        data[start + 5] ^= 0x33  # start of the cell content area
    path.write_bytes(bytes(data))


def test_a_lone_surrogate_is_stored_escaped_and_spares_its_batch_mates(tmp_path: Path) -> None:
    with ExecutionStore(tmp_path / "tlm.db", batch_size=512) as store:
        for i in range(10):
            store.write(make_record(i))
        store.write(poisoned(10))
        for i in range(11, 111):
            store.write(make_record(i))
        assert store.flush(timeout=30)
        assert store.count() == 111
        assert store.lost == 0
        bad = store.get("e10")
        for i in range(111, 121):  # the writer is still alive for later records
            store.write(make_record(i))
        assert store.count() == 121
    assert bad is not None
    # JSON columns escape the surrogate the JSON way: the value reads back unchanged
    assert bad.input == {"text": POISON, POISON: [1, "\udfff"]}
    assert bad.output == {"value": POISON}
    # a plain-text column keeps it visible as an escape
    assert bad.prompt == "Extract: bad \\ud800 text"
    assert not (tmp_path / "unrecorded.jsonl").exists()


def test_a_value_json_cannot_hold_is_stored_as_a_marker(tmp_path: Path) -> None:
    circular: dict[str, object] = {}
    circular["self"] = circular
    with ExecutionStore(tmp_path / "tlm.db") as store:
        store.write(attrs.evolve(make_record(1), input=circular))
        store.write(make_record(2))
        record = store.get("e1")
        assert store.count() == 2
    assert record is not None
    assert isinstance(record.input, str)
    assert record.input.startswith("[unencodable: ValueError")


LOCKER = textwrap.dedent(
    """
    import sqlite3, sys, time
    conn = sqlite3.connect(sys.argv[1], isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    print("locked", flush=True)
    sys.stdin.readline()
    conn.execute("COMMIT")
    print("released", flush=True)
    """
)


def test_a_lock_held_past_the_busy_timeout_delays_records_and_drops_none(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "tlm.db"
    store = ExecutionStore(path, busy_timeout_s=0.05, linger_s=0.01)
    with subprocess.Popen(
        [sys.executable, "-c", LOCKER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as locker:
        assert locker.stdin is not None
        assert locker.stdout is not None
        assert locker.stdout.readline().strip() == "locked"
        with caplog.at_level(logging.WARNING, logger="tlm.store"):
            for i in range(50):
                store.write(make_record(i))
            # many busy timeouts pass while the other process holds the lock
            assert not store.flush(timeout=1.0)
            assert store.pending == 50
            locker.stdin.write("\n")
            locker.stdin.flush()
            assert locker.stdout.readline().strip() == "released"
            assert store.flush(timeout=30)
    assert "locked by another connection" in caplog.text
    assert "recording resumed" in caplog.text
    for i in range(50, 60):  # recording goes on after the lock
        store.write(make_record(i))
    assert store.count() == 60
    assert store.lost == 0
    store.close()


def test_a_damaged_file_with_an_intact_header_is_refused_at_open(tmp_path: Path) -> None:
    path = tmp_path / "tlm.db"
    with ExecutionStore(path) as store:
        for i in range(2000):
            store.write(make_record(i))
    damage(path)
    assert path.read_bytes()[:16] == b"SQLite format 3\x00"
    with pytest.raises(StoreCorrupted) as caught:
        ExecutionStore(path)
    message = str(caught.value)
    assert str(path) in message
    assert "corrupted" in message
    assert "mv " in message  # says what to do
    assert "\n" not in message


def test_damage_found_only_at_commit_keeps_the_records_in_the_fallback_file(
    tmp_path: Path,
) -> None:
    path = tmp_path / "tlm.db"
    with ExecutionStore(path) as store:
        for i in range(2000):
            store.write(make_record(i))
    damage(path)
    # no check at open (as when the file is larger than the check's time budget)
    store = ExecutionStore(path, check_budget_s=0)
    tickets = [store.expect(f"new{i}") for i in range(20)]
    for i in range(20):
        store.write(attrs.evolve(make_record(5000 + i), execution_id=f"new{i}"))
    assert store.flush(timeout=30)
    store.close()
    assert store.lost == 20
    assert all(t.error is not None and "malformed" in str(t.error) for t in tickets)
    assert all("unrecorded.jsonl" in str(t.error) for t in tickets)
    lines = (tmp_path / "unrecorded.jsonl").read_text().splitlines()
    kept = [ExecutionRecord.from_dict(json.loads(line)) for line in lines]
    assert [r.execution_id for r in kept] == [f"new{i}" for i in range(20)]
    assert kept[0].output == {"value": 5000}


def test_an_intact_store_opens_with_the_check_and_writes_do_not_block_for_tickets(
    tmp_path: Path,
) -> None:
    with ExecutionStore(tmp_path / "tlm.db", queue_size=1, batch_size=1) as store:
        gate = threading.Event()
        original = store._commit

        def slow(conn: sqlite3.Connection, records: list[ExecutionRecord]) -> None:
            gate.wait()
            original(conn, records)

        store._commit = slow  # type: ignore[method-assign]
        tickets = [store.expect(f"e{i}") for i in range(5)]
        for i in range(5):  # the queue holds 1, yet an expected record never blocks
            store.write(make_record(i))
        assert store.pending == 5
        assert all(t.seq is not None for t in tickets)
        gate.set()
        assert store.flush(timeout=30)
        assert store.count() == 5


def test_an_execution_whose_spans_make_no_record_is_still_recorded(tmp_path: Path) -> None:
    from opentelemetry.sdk.trace import TracerProvider

    from tlm.telemetry.processor import ExecutionRecordProcessor

    with ExecutionStore(tmp_path / "tlm.db") as store:
        provider = TracerProvider()
        provider.add_span_processor(ExecutionRecordProcessor(store))
        tracer = provider.get_tracer("test")
        # a root span without the execution id and version a record needs
        with tracer.start_as_current_span("tlm.execute broken", attributes={"tlm.task.id": "t"}):
            pass
        records = store.query()
    assert len(records) == 1
    assert records[0].task_id == "t"
    assert records[0].status == "error"
    assert records[0].error is not None
    assert records[0].error.type == "RecordBuildError"


def test_a_full_database_reports_sqlite_full_and_keeps_going_once_there_is_room(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = ExecutionStore(tmp_path / "tlm.db")
    # SQLite's own limit on the file's pages: a real SQLITE_FULL, as on a full disk
    pages = store._writer_conn.execute("PRAGMA page_count").fetchone()[0]
    store._writer_conn.execute(f"PRAGMA max_page_count = {pages}")
    big = "x" * 20_000
    tickets = [store.expect(f"full{i}") for i in range(5)]
    with caplog.at_level(logging.ERROR, logger="tlm.store"):
        for i in range(5):
            store.write(attrs.evolve(make_record(i), execution_id=f"full{i}", prompt=big))
        assert store.flush(timeout=30)
    assert store.lost == 5
    for ticket in tickets:
        assert ticket.error is not None
        assert "SQLITE_FULL" in str(ticket.error)
        assert "cannot rollback" not in str(ticket.error)
    assert "SQLITE_FULL" in caplog.text
    assert "cannot rollback" not in caplog.text
    store._writer_conn.execute("PRAGMA max_page_count = 1073741823")  # room again
    store.write(make_record(7))
    assert store.count() == 1  # the writer goes on
    store.close()
    saved = (tmp_path / "unrecorded.jsonl").read_text().splitlines()
    assert [json.loads(line)["execution_id"] for line in saved] == [f"full{i}" for i in range(5)]


def test_a_stored_lone_surrogate_exports_as_json_that_reads_back(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from tlm.cli import main

    data = tmp_path / "data"
    with ExecutionStore(data / "tlm.db") as store:
        store.write(make_record(1))
        store.write(poisoned(2))
    out = tmp_path / "export.jsonl"
    result = CliRunner().invoke(main, ["export", "--data-dir", str(data), "--out", str(out)])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(lines) == 2
    assert ExecutionRecord.from_dict(lines[1]).input == poisoned(2).input
    shown = CliRunner().invoke(main, ["executions", "show", "e2", "--data-dir", str(data)])
    assert shown.exit_code == 0, shown.output
    assert "\\ud800" in shown.output
