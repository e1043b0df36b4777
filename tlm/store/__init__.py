"""The embedded execution store: one SQLite file holding every execution record and its feedback."""

from tlm.store.feedback import record_feedback
from tlm.store.sqlite import DEFAULT_DB_NAME, ExecutionStore, default_db_path

__all__ = ("ExecutionStore", "record_feedback", "DEFAULT_DB_NAME", "default_db_path")
