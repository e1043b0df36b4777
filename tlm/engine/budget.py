"""The budget ledger now lives in :mod:`tlm.budget` (below the engine, so rollouts and workflows can
use it without importing the engine); this name stays for the imports in ``tlm.batch``."""

from tlm.budget import BudgetLedger, merge_budgets

__all__ = ("BudgetLedger", "merge_budgets")
