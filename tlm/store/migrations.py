"""A repository's versioned schema: the ordered migration steps both backends apply.

Each repository (execution log, result cache, review queue, batch state...) declares one
:class:`Schema` per backend; :mod:`tlm.store.sqlite_base` applies it to a SQLite file (version in
``PRAGMA user_version``) and :mod:`tlm.store.pg_base` to a PostgreSQL database (version in the
``tlm_schema`` table, one row per schema name). Step ``i`` (0-based) takes the version from ``i``
to ``i + 1``; a database whose version is newer than the steps known is refused.
"""

from __future__ import annotations

import attrs

from tlm.errors import StoreError

__all__ = ("Schema", "newer_schema")


@attrs.frozen
class Schema:
    """The migrations of one repository on one backend.

    Attributes:
        name: What the schema holds (``"executions"``, ``"result cache"``...): the key of its
            version row on PostgreSQL and the word used in messages.
        steps: Step ``i`` is the statements taking the schema from version ``i`` to ``i + 1``.
    """

    name: str
    steps: tuple[tuple[str, ...], ...]

    @property
    def version(self) -> int:
        """The newest version this TLM knows."""
        return len(self.steps)


def newer_schema(source: str, schema: Schema, found: int) -> StoreError:
    """The error for a database migrated by a newer TLM than this one."""
    return StoreError(
        f"{source}: schema version {found} is newer than this TLM knows for the "
        f"{schema.name} ({schema.version}); upgrade TLM"
    )
