"""The console's start-up warm-up: sum every day of each task into the day cache file.

It runs as a separate, low-priority process (``python -m tlm.ui.warmup DB TASK...``): summing
tens of thousands of rows in a thread of the server would hold the interpreter lock and slow
every page while it runs. The server reads what it wrote from the file (see
:class:`tlm.ui.daycache.DayCache`); a first analysis page that comes before it is done sums the
missing days itself.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from tlm.ui.daycache import DAY_CACHE_FILE, DayCache
from tlm.ui.figures import day_sums

__all__ = ("start", "warm_up", "main")

_ROOT = str(Path(__file__).resolve().parents[2])
"""The directory holding this ``tlm`` package: the child imports the same copy."""
_PATH = os.environ.get("PYTHONPATH", "")


def warm_up(db_path: Path, task_ids: Sequence[str]) -> None:
    """Sum each task's days into ``DAY_CACHE_FILE`` beside ``db_path`` (days already there and
    unchanged are only checked)."""
    cache = DayCache(db_path.parent / DAY_CACHE_FILE)
    conn = sqlite3.connect(db_path, timeout=30.0)
    try:
        conn.execute("PRAGMA query_only=ON")
        for task_id in task_ids:
            day_sums(conn, task_id, cache=cache)
    finally:
        conn.close()
        cache.close()


def _lower_priority() -> None:  # pragma: no cover - runs in the child before exec
    os.nice(10)


def start(db_path: Path, task_ids: Sequence[str]) -> subprocess.Popen[bytes]:
    """Start the warm-up of ``task_ids`` in a child process (niced where the OS can)."""
    return subprocess.Popen(
        [sys.executable, "-m", "tlm.ui.warmup", str(db_path), *task_ids],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=_lower_priority if hasattr(os, "nice") else None,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (_ROOT, _PATH)))},
    )


def main(argv: Sequence[str]) -> int:
    """``python -m tlm.ui.warmup DB TASK...``; exit status 1 if the store cannot be read."""
    if not argv:
        print("usage: python -m tlm.ui.warmup DB TASK...", file=sys.stderr)
        return 2
    try:
        warm_up(Path(argv[0]), argv[1:])
    except sqlite3.Error as exc:
        print(f"{argv[0]}: warm-up failed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
