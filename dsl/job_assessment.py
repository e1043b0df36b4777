"""Job assessment: a job posting becomes a skill map, and a candidate is matched against it.

::

    job posting ──► job_detail_extraction
                ──► skill_decomposition of every requirement (fan-out)
                ──► merged skill map
                ──► requirement_skill_matching of every requirement  ┐ concurrently
                    self_assessment_feedback of every self-assessment ┘
                ──► report

Run it with ``tlm run-workflow dsl/job_assessment.py --input dsl/examples/job_assessment.json``.
A requirement whose decomposition or match fails is skipped (and shows as ``skipped`` in the
run's record) rather than failing the whole assessment.
"""

from __future__ import annotations

from typing import NotRequired, TypedDict

from dsl.tasks import (
    JOB_DETAIL_EXTRACTION,
    REQUIREMENT_SKILL_MATCHING,
    SELF_ASSESSMENT_FEEDBACK,
    SKILL_DECOMPOSITION,
    JobDetailExtractionInput,
    JobDetailExtractionOutput,
    RequirementSkillMatchingInput,
    RequirementSkillMatchingInputCandidateSkillsItem,
    RequirementSkillMatchingOutput,
    SelfAssessmentFeedbackInput,
    SelfAssessmentFeedbackOutput,
    SkillDecompositionInput,
    SkillDecompositionOutput,
)
from tlm.workflow import Step, Workflow, gather, keep, map_each, passthrough, step, task_step

__all__ = (
    "JOB_ASSESSMENT",
    "SKILL_MAP",
    "JobAssessmentInput",
    "SelfAssessment",
    "SkillMap",
    "RequirementSkills",
    "Assessment",
    "RequirementMatch",
    "CalibrationFeedback",
)

FAN_OUT = 2
"""Concurrent model calls per fan-out (the embedded local model serves one or two at a time)."""


class SelfAssessment(TypedDict):
    """The candidate's own account of one requirement."""

    requirement: str
    self_rating: int
    self_assessment: str
    evidence: NotRequired[list[str]]


class JobAssessmentInput(TypedDict):
    """A job posting and, optionally, a candidate to assess against it."""

    job_posting: str
    candidate_skills: NotRequired[list[RequirementSkillMatchingInputCandidateSkillsItem]]
    self_assessments: NotRequired[list[SelfAssessment]]


class RequirementSkills(TypedDict):
    requirement: str
    elementary_skills: list[str]


class SkillMap(TypedDict):
    """Every requirement of the posting with the elementary skills it takes."""

    job_title: str
    requirements: list[RequirementSkills]
    skills: dict[str, list[str]]
    """Elementary skill → the requirements that need it."""
    undecomposed: list[str]


class RequirementMatch(TypedDict):
    requirement: str
    match: RequirementSkillMatchingOutput | None


class CalibrationFeedback(TypedDict):
    requirement: str
    feedback: SelfAssessmentFeedbackOutput | None


class Assessment(TypedDict):
    skill_map: SkillMap
    matches: list[RequirementMatch]
    self_assessment_feedback: list[CalibrationFeedback]
    overall_score: float | None


# --- the skill map ------------------------------------------------------------------------------


async def posting(data: JobAssessmentInput) -> JobDetailExtractionInput:
    """The extraction task's input."""
    return {"job_posting": data["job_posting"]}


async def requirements_to_decompose(
    job: JobDetailExtractionOutput,
) -> list[SkillDecompositionInput]:
    """One decomposition per requirement, in the role's context."""
    return [{"skill_name": r, "context": job["job_title"]} for r in job["requirements"]]


async def merge_skill_map(
    data: tuple[JobDetailExtractionOutput, list[SkillDecompositionOutput | None]],
) -> SkillMap:
    """Requirements with their elementary skills; each skill with the requirements needing it."""
    job, decompositions = data
    requirements: list[RequirementSkills] = []
    skills: dict[str, list[str]] = {}
    undecomposed: list[str] = []
    for requirement, decomposition in zip(job["requirements"], decompositions, strict=True):
        if decomposition is None:
            undecomposed.append(requirement)
            continue
        elementary = list(dict.fromkeys(s.strip() for s in decomposition["elementary_skills"]))
        requirements.append({"requirement": requirement, "elementary_skills": elementary})
        for skill in elementary:
            skills.setdefault(skill, []).append(requirement)
    return {
        "job_title": job["job_title"],
        "requirements": requirements,
        "skills": dict(sorted(skills.items(), key=lambda kv: kv[0].lower())),
        "undecomposed": undecomposed,
    }


SKILL_MAP = (
    step(posting)
    | task_step(JOB_DETAIL_EXTRACTION)
    | keep(
        step(requirements_to_decompose)
        | map_each(task_step(SKILL_DECOMPOSITION).or_skip(), limit=FAN_OUT)
    )
    | step(merge_skill_map)
)
"""Job assessment input → skill map."""


# --- matching the candidate ---------------------------------------------------------------------


async def matching_inputs(
    data: tuple[JobAssessmentInput, SkillMap],
) -> list[RequirementSkillMatchingInput]:
    """One match per requirement of the map, when the candidate listed skills."""
    candidate, skill_map = data
    skills = candidate.get("candidate_skills", [])
    if not skills:
        return []
    return [
        {
            "requirement": r["requirement"],
            "candidate_skills": skills,
            "job_title": skill_map["job_title"],
        }
        for r in skill_map["requirements"]
    ]


async def feedback_inputs(
    data: tuple[JobAssessmentInput, SkillMap],
) -> list[SelfAssessmentFeedbackInput]:
    """One calibration per self-assessment the candidate wrote."""
    candidate, _ = data
    inputs: list[SelfAssessmentFeedbackInput] = []
    for item in candidate.get("self_assessments", []):
        entry: SelfAssessmentFeedbackInput = {
            "requirement": item["requirement"],
            "self_rating": item["self_rating"],
            "self_assessment": item["self_assessment"],
            "tone": "encouraging",
        }
        if item.get("evidence"):
            entry["evidence"] = item["evidence"]
        inputs.append(entry)
    return inputs


async def report(
    data: tuple[
        tuple[JobAssessmentInput, SkillMap],
        list[RequirementSkillMatchingOutput | None],
        list[SelfAssessmentFeedbackOutput | None],
    ],
) -> Assessment:
    """The assessment: the map, a match per requirement, feedback per self-assessment."""
    (candidate, skill_map), matches, feedback = data
    paired: list[RequirementMatch] = [
        {"requirement": r["requirement"], "match": m}
        for r, m in zip(skill_map["requirements"], matches, strict=False)
    ]
    assessed = candidate.get("self_assessments", [])
    scores = [m["score"] for m in matches if m is not None]
    return {
        "skill_map": skill_map,
        "matches": paired,
        "self_assessment_feedback": [
            {"requirement": a["requirement"], "feedback": f}
            for a, f in zip(assessed, feedback, strict=True)
        ],
        "overall_score": round(sum(scores) / len(scores), 3) if scores else None,
    }


_both: Step[tuple[JobAssessmentInput, SkillMap], tuple[JobAssessmentInput, SkillMap]] = (
    passthrough()
)

ASSESS = gather(
    _both,
    step(matching_inputs)
    | map_each(task_step(REQUIREMENT_SKILL_MATCHING).or_skip(), limit=FAN_OUT),
    step(feedback_inputs) | map_each(task_step(SELF_ASSESSMENT_FEEDBACK).or_skip(), limit=FAN_OUT),
    name="assess",
)
"""(candidate, skill map) → (the same, matches, self-assessment feedback), concurrently."""

JOB_ASSESSMENT = Workflow(
    "job_assessment",
    keep(SKILL_MAP, name="skill_map") | ASSESS | step(report),
    description="Job posting → skill map → candidate matched and self-assessments calibrated.",
)
