"""Prompt suggestions from failure patterns; rewrites parsed, checked and written for review."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.engine.conftest import base_task
from tests.learn.records import record
from tlm.definition.loader import load_definition
from tlm.errors import DefinitionError
from tlm.learn.analysis import analyze
from tlm.learn.suggestions import parse_rewrite, rewrite_request, suggest, write_new_version
from tlm.telemetry.records import ExecutionRecord

MISSING = ("OutputInvalid", "invalid output:\n  output: $: 'location' is a required property")


def records() -> list[ExecutionRecord]:
    found = [record(variant="structured", verified=False, error=MISSING) for _ in range(3)]
    found += [record(variant="structured", passed=True) for _ in range(7)]
    found += [record(variant="standard", verified=False, error=MISSING)]  # 1 of 10: too rare
    found += [record(variant="standard", passed=True) for _ in range(9)]
    found += [record(variant="standard", passed=False, details={"clusters": [["a"], ["b"]]})
              for _ in range(2)]  # fmt: skip
    found += [record(variant="standard", verified=False, error=("ProviderTimeout", "slow"))
              for _ in range(5)]  # fmt: skip
    return found


def test_suggestions_per_variant() -> None:
    analysis = analyze(records(), task_id="title_extraction")
    suggestions = suggest(analysis, min_rate=0.1)
    texts = [s.text for s in suggestions]
    assert texts[0].startswith(
        "a required field `location` is missing in 30% of runs of variant structured"
    )
    assert suggestions[0].count == 3
    assert len(suggestions[0].examples) == 3
    assert any(s.kind == "consensus" and s.variant == "standard" for s in suggestions)
    assert not any(s.variant == "standard" and s.kind == "schema" for s in suggestions)
    assert not any("ProviderTimeout" in t for t in texts)  # operations, not prompts
    assert suggest(analysis, min_rate=0.5) == []


def test_rewrite_request_and_parse() -> None:
    from tlm.definition.loader import parse_definition

    definition = parse_definition(base_task(), source="test")
    analysis = analyze(records(), task_id="title_extraction")
    request = rewrite_request(definition, "standard", suggest(analysis))
    assert "Extract the job title from: {{posting}}" in request
    assert "models disagree" in request
    good = '```json\n{"text": "Job title only, from: {{posting}}", "rationale": "r"}\n```'
    assert parse_rewrite(good, variables=("posting",)) == "Job title only, from: {{posting}}"
    with pytest.raises(DefinitionError, match="variables"):
        parse_rewrite({"text": "From {{post}}"}, variables=("posting",))
    with pytest.raises(DefinitionError, match="not JSON"):
        parse_rewrite("sure! here it is", variables=("posting",))


def test_new_minor_version_written_beside_and_loadable(tmp_path: Path) -> None:
    folder = tmp_path / "tasks" / "title_extraction"
    folder.mkdir(parents=True)
    (folder / "1.0.0.json").write_text(json.dumps(base_task()))
    definition = load_definition(folder / "1.0.0.json")
    target = write_new_version(definition, "standard", "Only the title of: {{posting}}")
    assert target == folder / "1.1.0.json"
    written = load_definition(target)
    assert written.version == "1.1.0"
    new = written.prompt("standard_v1")
    assert new.text == "Only the title of: {{posting}}"
    assert not new.is_default  # never applied silently
    assert written.default_prompt.id == "standard"
    with pytest.raises(DefinitionError, match="already exists"):
        write_new_version(definition, "standard", "again {{posting}}")
    with pytest.raises(DefinitionError, match="no prompt variant"):
        write_new_version(written, "nope", "x {{posting}}")
