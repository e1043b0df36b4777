"""A task whose output lacks the next task's required input: mypy must reject it."""

from __future__ import annotations

from dsl.tasks import JOB_DETAIL_EXTRACTION, SKILL_DECOMPOSITION
from tlm.workflow import task_step

extract = task_step(JOB_DETAIL_EXTRACTION)
decompose = task_step(SKILL_DECOMPOSITION)
wrong = extract.then(decompose)  # job details are not a skill_decomposition input
