"""Typed workflows of tasks: ``Step[InT, OutT]``, composition, compile-time checks, runs.

::

    from dsl.tasks import JOB_DETAIL_EXTRACTION, SKILL_DECOMPOSITION   # tlm codegen
    from tlm.workflow import Workflow, map_each, step, task_step

    flow = task_step(JOB_DETAIL_EXTRACTION) | step(requirements) | map_each(
        task_step(SKILL_DECOMPOSITION).or_skip(), limit=4
    )
    result = await Workflow("skills", flow).run(engine, {"job_posting": text})
"""

from tlm.workflow.record import StepRun, WorkflowRun
from tlm.workflow.runner import Observer, StepEvent
from tlm.workflow.step import (
    ErrorPolicy,
    Step,
    TaskRef,
    branch,
    gather,
    keep,
    map_each,
    passthrough,
    step,
    task_step,
)
from tlm.workflow.store import WorkflowStore
from tlm.workflow.workflow import CompiledWorkflow, Workflow, WorkflowResult

__all__ = (
    "Step",
    "TaskRef",
    "ErrorPolicy",
    "task_step",
    "step",
    "passthrough",
    "keep",
    "map_each",
    "branch",
    "gather",
    "Workflow",
    "CompiledWorkflow",
    "WorkflowResult",
    "WorkflowRun",
    "StepRun",
    "StepEvent",
    "Observer",
    "WorkflowStore",
)
