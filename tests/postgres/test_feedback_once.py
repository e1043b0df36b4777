"""Feedback is written once per entry, on both backends, even when an insert is retried."""

from __future__ import annotations

import socket
import sqlite3
import threading
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest

from tests.postgres.conftest import StoreFactory
from tests.postgres.records import make_record
from tlm.errors import StoreError
from tlm.store.feedback import record_feedback
from tlm.store.postgres import PostgresExecutionStore
from tlm.store.sqlite import ExecutionStore


def _feedback_rows(store: object, backend: str | None) -> list[tuple[object, ...]]:
    sql = "SELECT execution_id, feedback_id, note FROM feedback ORDER BY id"
    if backend is None:
        assert isinstance(store, ExecutionStore)
        with sqlite3.connect(store.path) as conn:
            return conn.execute(sql).fetchall()
    with psycopg.connect(backend) as conn:
        return conn.execute(sql).fetchall()


def test_the_same_feedback_id_twice_writes_one_entry(
    open_backend: StoreFactory, backend: str | None
) -> None:
    store = open_backend()
    store.write(make_record(1))
    first = store.add_feedback("e1", correct=True, note="right", feedback_id="fb-1")
    again = store.add_feedback("e1", correct=True, note="right", feedback_id="fb-1")
    assert again.note == first.note == "right"
    store.add_feedback("e1", score=0.5)  # a new entry: a new id
    rows = _feedback_rows(store, backend)
    assert [r[0] for r in rows] == ["e1", "e1"]
    assert rows[0][1:] == ("fb-1", "right")
    assert isinstance(rows[1][1], str)
    assert len(rows[1][1]) == 32
    record = store.get("e1")
    assert record is not None
    assert [f.note for f in record.feedback] == ["right", None]


async def test_record_feedback_passes_the_id_through(
    open_backend: StoreFactory, backend: str | None
) -> None:
    store = open_backend()
    store.write(make_record(2))
    for _ in range(3):
        await record_feedback(store, "e2", score=1.0, feedback_id="from-a-queue-message")
    assert len(_feedback_rows(store, backend)) == 1


def test_unknown_executions_are_still_refused(open_backend: StoreFactory) -> None:
    store = open_backend()
    with pytest.raises(StoreError, match="no execution with id 'nope'"):
        store.add_feedback("nope", correct=False, feedback_id="fb-x")


class DroppingProxy:
    """A TCP proxy to PostgreSQL that, when armed, cuts the connection right after the server
    answered ``INSERT 0 1`` (the insert committed, its client never hears so)."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.armed = threading.Event()
        self.dropped = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            threading.Thread(target=self._pump, args=(client, server, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, True), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, from_server: bool) -> None:
        try:
            while data := src.recv(65536):
                if from_server and self.armed.is_set() and b"INSERT 0 1" in data:
                    self.armed.clear()
                    self.dropped += 1
                    break  # the answer is lost with the connection
                dst.sendall(data)
        except OSError:
            pass
        for sock in (src, dst):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def close(self) -> None:
        self.listener.close()


def test_a_connection_dropped_after_the_insert_committed_writes_it_once(
    pg_url: str, tmp_path: Path
) -> None:
    parts = urlsplit(pg_url)
    assert parts.hostname is not None
    assert parts.port is not None
    proxy = DroppingProxy(parts.hostname, parts.port)
    proxied = pg_url.replace(f":{parts.port}/", f":{proxy.port}/")
    store = PostgresExecutionStore(proxied, data_dir=tmp_path)
    try:
        store.write(make_record(3))
        store.flush()
        proxy.armed.set()
        feedback = store.add_feedback("e3", correct=True, note="once")  # retried after the drop
        assert proxy.dropped == 1
        assert feedback.note == "once"
        record = store.get("e3")
        assert record is not None
        assert [f.note for f in record.feedback] == ["once"]
    finally:
        store.close()
        proxy.close()
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM feedback").fetchone() == (1,)
