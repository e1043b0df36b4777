"""The default embedded models do the README's job: the extraction verifies by consensus.

One real run (the ``local`` extra, marked ``local_model``): the README's example posting through
the engine with no configuration but a temporary data directory.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tlm import Engine
from tlm.engine.config import DEFAULT_LOCAL_MODELS, EngineConfig

pytestmark = pytest.mark.local_model

EXAMPLE = (
    Path(__file__).resolve().parents[2] / "definitions/examples/job_posting_backend_engineer.json"
)


async def test_the_default_pair_verifies_the_readme_example(tmp_path: Path) -> None:
    config = EngineConfig(data_dir=tmp_path, store=False, cache=False)
    assert config.models == DEFAULT_LOCAL_MODELS
    posting = json.loads(EXAMPLE.read_text(encoding="utf-8"))
    async with Engine(config) as engine:
        result = await engine.execute("job_detail_extraction", posting)
    assert result.prompt_variant == "worked_example"
    assert result.verdict is not None
    assert result.verdict.passed, result.verdict.details
    assert set(result.models_used) == set(DEFAULT_LOCAL_MODELS)
    output = result.output
    assert "Backend Engineer" in output["job_title"]
    # one item per requirement, not five joined into one string
    assert len(output["requirements"]) >= 4
    assert any("PostgreSQL" in r for r in output["requirements"])
    assert "Remote" in output.get("location", "")
