"""Compositions mypy must accept (checked by mypy, never run)."""

from __future__ import annotations

from typing import assert_type

from dsl.tasks import (
    JOB_DETAIL_EXTRACTION,
    SKILL_DECOMPOSITION,
    JobDetailExtractionInput,
    JobDetailExtractionOutput,
    SkillDecompositionInput,
    SkillDecompositionOutput,
)
from tlm.workflow import Step, Workflow, branch, gather, keep, map_each, step, task_step


async def requirements(job: JobDetailExtractionOutput) -> list[SkillDecompositionInput]:
    return [{"skill_name": r} for r in job["requirements"]]


async def count(items: list[SkillDecompositionOutput | None]) -> int:
    return len(items)


async def title(job: JobDetailExtractionOutput) -> str:
    return job["job_title"]


async def size(job: JobDetailExtractionOutput) -> int:
    return len(job["requirements"])


extract = task_step(JOB_DETAIL_EXTRACTION)
assert_type(extract, Step[JobDetailExtractionInput, JobDetailExtractionOutput])

flow = (
    extract | step(requirements) | map_each(task_step(SKILL_DECOMPOSITION).or_skip()) | step(count)
)
assert_type(flow, Step[JobDetailExtractionInput, int])
assert_type(extract.then(step(title)), Step[JobDetailExtractionInput, str])

both = extract | gather(step(title), step(size))
assert_type(both, Step[JobDetailExtractionInput, tuple[str, int]])

kept = keep(extract)
assert_type(
    kept, Step[JobDetailExtractionInput, tuple[JobDetailExtractionInput, JobDetailExtractionOutput]]
)

chosen = extract | branch(lambda job: bool(job["requirements"]), step(title), step(size))
assert_type(chosen, Step[JobDetailExtractionInput, str | int])

defaulted = extract.or_default(None)
assert_type(defaulted, Step[JobDetailExtractionInput, JobDetailExtractionOutput | None])

WORKFLOW = Workflow("good", flow)
assert_type(WORKFLOW, Workflow[JobDetailExtractionInput, int])
