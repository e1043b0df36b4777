"""Versions in production: replay a new task version against history, then canary it.

:mod:`~tlm.rollout.replay` re-runs recorded inputs through a new version and compares the outputs
with trusted references (:mod:`~tlm.rollout.references`, :mod:`~tlm.rollout.report`);
:mod:`~tlm.rollout.router` splits live traffic between two versions by a stable hash of the input
and judges the canary with :mod:`~tlm.rollout.decide`'s sequential test; :mod:`~tlm.rollout.state`
keeps rollouts, decisions and evaluation runs in a store every replica shares.
"""

from tlm.rollout.state import Decision, EvalItem, EvalRun, Rollout, RolloutStore

__all__ = ("RolloutStore", "Rollout", "Decision", "EvalRun", "EvalItem")
