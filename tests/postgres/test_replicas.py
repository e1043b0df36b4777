"""Many processes, one PostgreSQL: migrations without races, every record exactly once, restarts."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.postgres.records import make_record
from tlm.errors import StoreError
from tlm.store.pg_schema import PG_MIGRATIONS, schema_version
from tlm.store.postgres import PostgresExecutionStore
from tlm.testing.postgres_server import PostgresServer

ROOT = Path(__file__).resolve().parents[2]

WRITER = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, sys.argv[4])
    from tests.postgres.records import make_record
    from tlm.store.backend import open_store

    url, proc, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    store = open_store(sys.argv[5], url)
    for i in range(count):
        store.write(make_record(f"{proc}-{i}", minute=i % 1000))
        if i % 100 == 0:  # records every replica writes: each must be stored once
            store.write(make_record(f"shared-{i}", minute=i % 1000))
    store.close()
    assert store.lost == 0, store.lost
    """
)


def test_replicas_starting_together_migrate_once(pg_url: str) -> None:
    errors: list[BaseException] = []
    stores: list[PostgresExecutionStore] = []
    gate = threading.Barrier(6)

    def open_one() -> None:
        gate.wait()
        try:
            stores.append(PostgresExecutionStore(pg_url, data_dir="/nonexistent-unused"))
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in stores:
        s.close()
    assert errors == []
    with psycopg.connect(pg_url) as conn:
        assert schema_version(conn) == len(PG_MIGRATIONS)
        assert conn.execute("SELECT count(*) FROM tlm_schema").fetchone() == (1,)


def test_a_newer_schema_is_refused(pg_url: str, tmp_path: Path) -> None:
    PostgresExecutionStore(pg_url, data_dir=tmp_path).close()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE tlm_schema SET version = 99")
    with pytest.raises(StoreError, match="schema version 99 is newer"):
        PostgresExecutionStore(pg_url, data_dir=tmp_path)


def test_four_processes_record_every_execution_exactly_once(pg_url: str, tmp_path: Path) -> None:
    per_process = 2000
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                WRITER,
                pg_url,
                str(p),
                str(per_process),
                str(ROOT),
                str(tmp_path / f"d{p}"),
            ],
            cwd=ROOT,
        )
        for p in range(4)
    ]
    assert [p.wait(timeout=300) for p in procs] == [0, 0, 0, 0]
    with psycopg.connect(pg_url) as conn:
        total, distinct = conn.execute(
            "SELECT count(*), count(DISTINCT execution_id) FROM executions"
        ).fetchone() or (0, 0)
        shared = conn.execute(
            "SELECT count(*) FROM executions WHERE execution_id LIKE 'eshared-%'"
        ).fetchone()
    assert shared == (per_process // 100,)
    assert total == distinct == 4 * per_process + per_process // 100
    for p in range(4):
        assert not (tmp_path / f"d{p}" / "unrecorded.jsonl").exists()


@pytest.fixture
def own_server() -> Iterator[PostgresServer]:
    server = PostgresServer()  # its own: restarting it must not disturb other tests
    try:
        yield server
    finally:
        server.close()


def test_a_restart_mid_stream_loses_no_record(
    own_server: PostgresServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = own_server.create_database()
    store = PostgresExecutionStore(url, data_dir=tmp_path, batch_size=50, linger_s=0.01)
    tickets = []
    restarted = threading.Event()

    def restart() -> None:
        own_server.restart("fast")
        restarted.set()

    def write(i: int) -> None:
        tickets.append(store.expect(f"e{i}"))
        store.write(make_record(i, minute=i % 1000))
        store.commit_now()

    i = 0
    for i in range(500):
        write(i)
    threading.Thread(target=restart).start()
    while not restarted.is_set():  # the stream goes on while the server is down
        i += 1
        write(i)
        time.sleep(0.001)
    first, last = i + 1, i + 500
    for n in range(first, last + 1):
        write(n)
    assert store.flush(timeout=120)
    assert "is unavailable" in caplog.text  # the writer did see the server go away
    assert store.lost == 0
    assert [t.error for t in tickets if t.error is not None] == []
    assert store.count() == len(tickets) == last + 1
    store.close()
    assert not (tmp_path / "unrecorded.jsonl").exists()


def test_a_database_gone_for_good_saves_records_to_the_fallback_file(
    own_server: PostgresServer, tmp_path: Path
) -> None:
    url = own_server.create_database()
    store = PostgresExecutionStore(url, data_dir=tmp_path, unavailable_timeout_s=1.0)
    store.write(make_record(0))
    assert store.flush(10)
    own_server.stop("fast")
    try:
        ticket = store.expect("e1")
        store.write(make_record(1))
        store.commit_now()
        assert store.flush(30)
        assert store.lost == 1
        assert ticket.error is not None
        assert "unrecorded.jsonl" in str(ticket.error)
        assert "e1" in (tmp_path / "unrecorded.jsonl").read_text()
    finally:
        own_server.start()
        store.close()
