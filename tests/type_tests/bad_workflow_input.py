"""Running a workflow on an input of the wrong type: mypy must reject it."""

from __future__ import annotations

from dsl.tasks import JOB_DETAIL_EXTRACTION
from tlm.engine import Engine
from tlm.workflow import Workflow, task_step

WORKFLOW = Workflow("w", task_step(JOB_DETAIL_EXTRACTION))


async def main(engine: Engine) -> None:
    await WORKFLOW.run(engine, {"skill_name": "Python"})  # not a job_detail_extraction input
