"""Issue 12 item 9 for workflows: a workflow-wide budget is checked before anything runs."""

from __future__ import annotations

import math

import pytest

from tests.engine.conftest import ScriptedModels
from tlm.definition.model import Budget
from tlm.engine import Engine
from tlm.errors import InvalidArgument
from tlm.workflow import Workflow, task_step

from .conftest import SHOUT


@pytest.mark.parametrize(
    ("budget", "field"),
    [
        (Budget(max_cost_usd=math.nan), "budget.max_cost_usd"),
        (Budget(max_cost_usd=-1.0), "budget.max_cost_usd"),
        (Budget(deadline_s=math.inf), "budget.deadline_s"),
        (Budget(deadline_s=-2.0), "budget.deadline_s"),
        (Budget(max_attempts=0), "budget.max_attempts"),
    ],
)
async def test_a_bad_workflow_budget_is_refused_before_any_step(
    engine: Engine, scripted: ScriptedModels, budget: Budget, field: str
) -> None:
    with pytest.raises(InvalidArgument) as caught:
        await Workflow("checked", task_step(SHOUT)).run(engine, {"title": "x"}, budget=budget)
    assert caught.value.argument == field
    assert scripted.calls() == 0
