"""Where learned rankings are kept: ``<data_dir>/rankings.json`` or the shared PostgreSQL database.

:class:`RankingsStore` is what ``tlm update-rankings``, the engine and the console use of either:
``save`` the rankings, ``load`` the newest, and ``version``, a cheap token that changes with every
save (the file's modification time, size and inode; a counter in PostgreSQL) so that running
engines notice new rankings without reading them (:mod:`tlm.learn.live`).
:func:`open_rankings` picks the backend from the same configuration as the execution log.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol, runtime_checkable

from tlm.learn.rankings import RANKINGS_FILE, Rankings

__all__ = ("RankingsStore", "RankingsFile", "open_rankings")


@runtime_checkable
class RankingsStore(Protocol):
    """The newest learned rankings, shared by every engine reading them."""

    @property
    def where(self) -> str:
        """Where they are kept (a path, or a URL with its password masked)."""
        ...

    def version(self) -> str | None:
        """A token that changes whenever new rankings are saved (``None``: none saved yet)."""
        ...

    def load(self) -> Rankings | None:
        """The newest rankings (``None``: none saved yet)."""
        ...

    def save(self, rankings: Rankings) -> str:
        """Replace the rankings (atomically); returns :attr:`where`."""
        ...

    def close(self) -> None: ...


class RankingsFile:
    """Rankings in a JSON file (``tlm update-rankings`` writes it atomically)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    @property
    def where(self) -> str:
        return str(self.path)

    def version(self) -> str | None:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return None
        return f"{stat.st_mtime_ns}:{stat.st_size}:{stat.st_ino}"

    def load(self) -> Rankings | None:
        """The file's rankings.

        Raises:
            ConfigurationError: unreadable or malformed (with the file and JSON path).
        """
        if not self.path.is_file():
            return None
        return Rankings.load(self.path)

    def save(self, rankings: Rankings) -> str:
        return str(rankings.save(self.path))

    def close(self) -> None:
        pass


def open_rankings(data_dir: str | os.PathLike[str], database: str | None = None) -> RankingsStore:
    """The rankings of ``database`` (a PostgreSQL URL), else ``<data_dir>/rankings.json``.

    Raises:
        ConfigurationError: ``database`` is not a PostgreSQL URL, or psycopg is missing.
        StoreError: The database cannot be reached or migrated.
    """
    from tlm.store.backend import check_database_url, require_psycopg

    if check_database_url(database) is not None:
        assert database is not None
        require_psycopg()
        from tlm.learn.rankings_pg import PostgresRankings

        return PostgresRankings(database)
    return RankingsFile(Path(data_dir) / RANKINGS_FILE)
