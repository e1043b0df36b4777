"""TLM's storage layer: the execution log (SQLite by default, or PostgreSQL) and the other
repositories (result cache, review queue, batch state), opened and migrated through one SQLite
base (:mod:`tlm.store.sqlite_base`) and one PostgreSQL base (:mod:`tlm.store.pg_base`); every
repository and its schemas are listed in :mod:`tlm.store.registry`."""

from tlm.store.backend import open_store
from tlm.store.base import ExecutionLog
from tlm.store.feedback import record_feedback
from tlm.store.sqlite import DEFAULT_DB_NAME, ExecutionStore, default_db_path

__all__ = (
    "ExecutionStore",
    "ExecutionLog",
    "open_store",
    "record_feedback",
    "DEFAULT_DB_NAME",
    "default_db_path",
)
