"""The embedded execution store: one SQLite file holding every execution record and its feedback."""

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
