"""Learned rankings in the shared PostgreSQL database: one row every engine reads.

``tlm update-rankings`` replaces the row and bumps its version in one statement, then announces
the version on the ``tlm_rankings`` channel (``NOTIFY``); engines compare the version (a primary
key lookup) at most every few seconds and reload the rankings only when it moved
(:mod:`tlm.learn.live`). The schema (:data:`PG_RANKINGS_SCHEMA`) is migrated on open and reported
by ``tlm db status``.
"""

from __future__ import annotations

import json
from typing import Final

from tlm.learn.rankings import Rankings
from tlm.store.pg_repo import PgRepository
from tlm.store.shared_schemas import PG_RANKINGS_SCHEMA

__all__ = ("PG_RANKINGS_SCHEMA", "RANKINGS_CHANNEL", "PostgresRankings")

RANKINGS_CHANNEL: Final = "tlm_rankings"
"""The NOTIFY channel a save is announced on (payload: the new version)."""
_NAME: Final = "rankings"


class PostgresRankings:
    """Rankings in PostgreSQL; thread-safe.

    Raises:
        StoreError: The database cannot be reached or migrated.
    """

    def __init__(self, url: str) -> None:
        self._db = PgRepository(url, (PG_RANKINGS_SCHEMA,), what="the rankings")

    @property
    def where(self) -> str:
        return f"{self._db.where} (rankings)"

    def version(self) -> str | None:
        with self._db.statements() as db:
            row = db.execute("SELECT version FROM rankings WHERE name = ?", (_NAME,)).fetchone()
        return None if row is None else str(row["version"])

    def load(self) -> Rankings | None:
        """The saved rankings.

        Raises:
            ConfigurationError: the stored rankings are malformed (with the JSON path).
        """
        with self._db.statements() as db:
            row = db.execute("SELECT body FROM rankings WHERE name = ?", (_NAME,)).fetchone()
        if row is None:
            return None
        return Rankings.from_dict(json.loads(row["body"]), source=self.where)

    def save(self, rankings: Rankings) -> str:
        body = json.dumps(rankings.to_dict())
        with self._db.statements() as db:
            row = db.execute(
                "INSERT INTO rankings (name, version, generated_at, body) VALUES (?, 1, ?, ?)"
                " ON CONFLICT (name) DO UPDATE SET version = rankings.version + 1,"
                " generated_at = excluded.generated_at, body = excluded.body RETURNING version",
                (_NAME, rankings.generated_at, body),
            ).fetchone()
            assert row is not None  # RETURNING always gives the row
            db.execute("SELECT pg_notify(?, ?)", (RANKINGS_CHANNEL, str(row["version"])))
        return self.where

    def close(self) -> None:
        self._db.close()
