"""Mapping over something that is not a list: mypy must reject it."""

from __future__ import annotations

from dsl.tasks import JOB_DETAIL_EXTRACTION, SKILL_DECOMPOSITION
from tlm.workflow import map_each, task_step

wrong = task_step(JOB_DETAIL_EXTRACTION) | map_each(task_step(SKILL_DECOMPOSITION))
