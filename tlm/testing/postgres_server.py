"""A throwaway PostgreSQL server for tests and benchmarks, from the system's binaries.

``initdb`` into a temporary directory, ``postgres`` on a free 127.0.0.1 port, stopped (and the
directory removed) on :meth:`PostgresServer.stop`. PostgreSQL refuses to run as root, so under
root (CI) the server runs as the unprivileged system user ``tlmtest`` (created with ``useradd``
if missing) through ``runuser``. The binaries are found under ``/usr/lib/postgresql/*/bin``
(Debian's ``postgresql`` package) or on ``PATH``.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import Final

__all__ = ("PostgresServer", "find_postgres_bin", "SERVER_USER")

SERVER_USER: Final = "tlmtest"


def find_postgres_bin() -> Path | None:
    """The directory holding ``initdb``, ``pg_ctl`` and ``postgres``, or ``None``."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: (
            int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0
        ),
    )
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PostgresServer:
    """One PostgreSQL cluster in a temporary directory (see the module docstring).

    Args:
        fsync: ``False`` (the default for tests) skips flushing to disk: a faster server that
            still keeps everything across a clean or immediate restart of the server.
    """

    def __init__(self, *, fsync: bool = False) -> None:
        bin_dir = find_postgres_bin()
        if bin_dir is None:
            raise FileNotFoundError(
                "no PostgreSQL binaries (initdb) under /usr/lib/postgresql/*/bin or on PATH: "
                "apt-get install postgresql"
            )
        self.bin_dir = bin_dir
        self.fsync = fsync
        self.port = _free_port()
        self.root = Path(tempfile.mkdtemp(prefix="tlm-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            self._ensure_user()
            shutil.chown(self.root, SERVER_USER)
            self._as_user = ["runuser", "-u", SERVER_USER, "--"]
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust",
                  "-E", "UTF8", "--no-sync", "--locale=C")  # fmt: skip
        self.start()

    @staticmethod
    def _ensure_user() -> None:
        probe = subprocess.run(["id", "-u", SERVER_USER], capture_output=True, check=False)
        if probe.returncode != 0:
            subprocess.run(
                ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                 SERVER_USER],
                check=True,
                capture_output=True,
            )  # fmt: skip

    def _run(self, tool: str, *args: str) -> None:
        cmd = [*self._as_user, str(self.bin_dir / tool), *args]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=self.root)
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(
                f"{tool} failed ({done.returncode}): {done.stderr.strip()}\n{log}".strip()
            )

    def start(self) -> None:
        """Start the server (waits until it accepts connections)."""
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
            f"-c fsync={'on' if self.fsync else 'off'} -c max_connections=200"
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w",
                  "start")  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``mode``: ``smart``, ``fast`` or ``immediate``)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def restart(self, mode: str = "fast") -> None:
        """Stop and start again (clients lose their connections)."""
        self.stop(mode)
        self.start()

    def url(self, dbname: str = "postgres") -> str:
        """The URL of database ``dbname`` on this server."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def create_database(self, name: str | None = None) -> str:
        """A new, empty database; its URL."""
        import psycopg

        name = name or f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"'.encode())
        return self.url(name)

    def close(self) -> None:
        """Stop the server and remove its directory."""
        try:
            if (self.data / "postmaster.pid").exists():
                self.stop("immediate")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
