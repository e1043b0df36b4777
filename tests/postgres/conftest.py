"""A real PostgreSQL for the session (Debian's package), and both backends side by side."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.postgres.proxy import PausableProxy
from tlm.store.backend import open_store
from tlm.store.base import ExecutionLog
from tlm.testing.postgres_server import PostgresServer, find_postgres_bin


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    if find_postgres_bin() is None:
        reason = "PostgreSQL binaries missing (apt-get install postgresql; .ci/run does)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}: the PostgreSQL tests may not be skipped in CI")
        pytest.skip(reason)
    server = PostgresServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def pg_url(postgres_server: PostgresServer) -> str:
    """A fresh database on the session's server."""
    return postgres_server.create_database()


StoreFactory = Callable[..., ExecutionLog]


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> str | None:
    """``None`` for SQLite in ``tmp_path``, else the URL of a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return None
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def open_backend(backend: str | None, tmp_path: Path) -> Iterator[StoreFactory]:
    """Opens stores on the test's backend (every store opened is closed at the end)."""
    opened: list[ExecutionLog] = []

    def make(**options: object) -> ExecutionLog:
        store = open_store(tmp_path / "data", backend, **options)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


@pytest.fixture
def proxy(pg_url: str) -> Iterator[PausableProxy]:
    """A TCP proxy in front of the session's PostgreSQL that can cut or pause it."""
    proxy = PausableProxy(pg_url)
    try:
        yield proxy
    finally:
        proxy.resume()
        proxy.close()
