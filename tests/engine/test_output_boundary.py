"""A model's reply that no JSON consumer could keep is invalid output, never a raw exception.

Nested too deep for the parser (``RecursionError``), NaN, lone surrogates and over-long integers
in a reply become located output problems: re-asked, then a recorded ``OutputInvalid``.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.engine.conftest import ScriptedModels
from tlm.engine import Engine
from tlm.errors import OutputInvalid
from tlm.json_reply import parse_json_reply

REPLIES = [
    ('{"title": ' + "[" * 5000 + "]" * 5000 + "}", "$", "nested too deeply"),
    ('{"title": "x", "skills": ' + "[" * 300 + "]" * 300 + "}", "$.skills[0]", "nested deeper"),
    ('{"title": NaN}', "$.title", "not a JSON number"),
    ('{"title": "Chef", "skills": [Infinity]}', "$.skills[0]", "not a JSON number"),
    ('{"title": "a\\ud800"}', "$.title", "lone surrogate"),
    ('{"title": "x", "n": ' + "9" * 5000 + "}", "$", "4300 digits"),
]


@pytest.mark.parametrize(("text", "path", "message"), REPLIES)
async def test_unkeepable_replies_are_invalid_output(
    engine_factory: Callable[..., Engine],
    models: ScriptedModels,
    text: str,
    path: str,
    message: str,
) -> None:
    models.handlers["*"] = lambda request: text
    async with engine_factory() as engine:
        with pytest.raises(OutputInvalid) as caught:
            await engine.execute("title_extraction", {"posting": "Chef wanted"})
        engine.flush()
        assert engine.store is not None
        record = engine.store.get(caught.value.execution_id or "")
    (problem,) = caught.value.problems
    assert problem.path.startswith(path)
    assert message in problem.message
    assert models.calls() == 3  # the first answer and two re-asks
    assert record is not None
    assert record.status == "error"


def test_parsing_a_reply_too_deep_to_read_fails_cleanly() -> None:
    parsed = parse_json_reply("```json\n" + "[" * 100_000 + "\n```")
    assert not parsed.ok
    assert parsed.error is not None
