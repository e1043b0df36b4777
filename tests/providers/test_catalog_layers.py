"""The packaged catalog, read from inside the package, and a project's catalog layered over it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import tlm
from tlm.catalog import Catalog
from tlm.errors import ConfigurationError, TaskSchemaError
from tlm.providers.base import Usage
from tlm.testing import FakeOpenAIServer

from .support import card

QWEN = "qwen2.5-coder-0.5b-instruct"


def overlay(tmp_path: Path, *models: dict[str, Any]) -> Path:
    path = tmp_path / "models.json"
    path.write_text(json.dumps({"version": 1, "models": list(models)}))
    return path


def test_the_packaged_catalog_needs_no_checkout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no definitions/ here or above
    monkeypatch.delenv("TLM_DEFINITIONS", raising=False)
    monkeypatch.delenv("TLM_CONFIG", raising=False)
    packaged = Catalog.packaged()
    assert QWEN in packaged
    assert "gpt-4o-mini" in packaged
    assert Catalog.load().ids() == packaged.ids()  # no project: the packaged catalog alone
    assert Catalog.layered(None).ids() == packaged.ids()


def test_a_project_entry_changes_only_the_fields_it_gives(tmp_path: Path) -> None:
    packaged = Catalog.packaged().get("gpt-4o-mini")
    catalog = Catalog.layered(overlay(tmp_path, {"id": "gpt-4o-mini", "input_price_per_mtok": 0.1}))
    mini = catalog.get("gpt-4o-mini")
    assert mini.input_price_per_mtok == 0.1
    assert mini.output_price_per_mtok == packaged.output_price_per_mtok
    assert mini.base_url == packaged.base_url
    assert mini.cost(Usage(1_000_000, 0)) == pytest.approx(0.1)
    assert catalog.ids() == Catalog.packaged().ids()  # same models, same order


def test_a_project_adds_a_model_and_points_one_at_its_own_server(tmp_path: Path) -> None:
    catalog = Catalog.layered(
        overlay(
            tmp_path,
            card("house-model", base_url="http://10.0.0.5:8000/v1"),
            {"id": "vllm/qwen2.5-7b-instruct", "base_url": "http://gpu-box:8000/v1"},
            {"id": QWEN, "provider": "lab", "base_url": "http://127.0.0.1:9/v1"},
        )
    )
    assert catalog.ids()[-1] == "house-model"
    vllm = catalog.get("vllm/qwen2.5-7b-instruct")
    assert vllm.base_url == "http://gpu-box:8000/v1"
    assert vllm.base_url_env is None  # one choice: the project's base_url replaced the variable
    assert vllm.resolve_base_url({}) == "http://gpu-box:8000/v1"
    qwen = catalog.get(QWEN)
    assert (qwen.provider, qwen.base_url, qwen.structured_output) == (
        "lab",
        "http://127.0.0.1:9/v1",
        "json_object_schema",
    )


def test_null_removes_and_objects_merge(tmp_path: Path) -> None:
    catalog = Catalog.layered(
        overlay(
            tmp_path,
            {"id": "gpt-4o", "cached_input_price_per_mtok": None, "limits": {"max_in_flight": 8}},
        )
    )
    gpt = catalog.get("gpt-4o")
    assert gpt.cached_input_price_per_mtok is None
    assert gpt.cost(Usage(1_000_000, 0, cached_input_tokens=1_000_000)) == pytest.approx(2.5)
    assert gpt.limits == {"max_in_flight": 8}
    packaged = Catalog.packaged().get(QWEN).provenance
    assert packaged is not None
    merged = Catalog.layered(overlay(tmp_path, {"id": QWEN, "provenance": {"sha256": None}}))
    provenance = merged.get(QWEN).provenance  # an object merges key by key
    assert provenance is not None
    assert provenance.sha256 is None
    assert (provenance.file, provenance.license) == (packaged.file, packaged.license)


def test_problems_are_located_in_the_project_file(tmp_path: Path) -> None:
    path = overlay(
        tmp_path,
        {"id": "gpt-4o", "input_price_per_mtok": -1},
        {"id": "new-model", "api": "openai"},
        {"id": "gpt-4o", "context_window": 10},
    )
    with pytest.raises(TaskSchemaError) as caught:
        Catalog.layered(path)
    found = {(p.source, p.path) for p in caught.value.problems}
    assert (str(path), "$.models[0].input_price_per_mtok") in found
    with pytest.raises(TaskSchemaError) as merged:
        Catalog.layered(overlay(tmp_path, {"id": "new-model", "api": "openai"}))
    messages = [str(p) for p in merged.value.problems]
    assert any(f"{path}: $.models[0]" in m and "'provider' is a required property" in m
               for m in messages)  # fmt: skip
    with pytest.raises(TaskSchemaError, match=r"duplicate id 'gpt-4o' \(first at \$\.models\[0\]"):
        Catalog.layered(overlay(tmp_path, {"id": "gpt-4o"}, {"id": "gpt-4o"}))
    with pytest.raises(ConfigurationError, match="cannot read model catalog"):
        Catalog.layered(tmp_path / "absent.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(TaskSchemaError, match="invalid JSON at line 1"):
        Catalog.layered(tmp_path / "bad.json")


async def test_the_engine_uses_the_projects_catalog(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A project's tlm.toml names its catalog; the engine executes through the override."""
    for name in ("TLM_CONFIG", "TLM_DEFINITIONS", "TLM_CATALOG", "TLM_DATA_DIR", "TLM_MODELS"):
        monkeypatch.delenv(name, raising=False)
    from tlm.cli.init import EXAMPLE_TASK_ID, example_task

    task_dir = tmp_path / "defs" / "tasks" / EXAMPLE_TASK_ID
    task_dir.mkdir(parents=True)
    (task_dir / "1.0.0.json").write_text(json.dumps(example_task()))
    (tmp_path / "tlm.toml").write_text(
        '[tlm]\ndefinitions = "defs"\ncatalog = "catalogs/mine.json"\nmodels = ["mine"]\n'
    )
    (tmp_path / "catalogs").mkdir()
    sub = tmp_path / "app"
    sub.mkdir()
    monkeypatch.chdir(sub)
    async with FakeOpenAIServer(['{"sentiment": "neutral"}']) as server:
        (tmp_path / "catalogs" / "mine.json").write_text(
            json.dumps(
                {"version": 1, "models": [card("mine", base_url=server.base_url, api_key_env=None)]}
            )
        )
        async with tlm.Engine() as engine:
            result = await engine.execute(EXAMPLE_TASK_ID, {"review": "It is a chair."})
    assert result.output == {"sentiment": "neutral"}
    assert result.models_used == ("mine",)
    assert server.bodies[0]["model"] == "wire-mine"
    assert (tmp_path / ".tlm" / "tlm.db").is_file()  # the project's data dir, not the cwd's
