"""The model catalog: the shipped file, validation with located errors, cost arithmetic."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tlm.catalog import Catalog, ModelCard, default_catalog_path
from tlm.errors import ConfigurationError, TaskSchemaError
from tlm.providers.base import Usage

from .support import card


def test_shipped_catalog_loads_with_the_required_models() -> None:
    catalog = Catalog.load()
    for model_id in ("gpt-4o", "gpt-4o-mini", "claude-3-5-sonnet", "claude-3-5-haiku"):
        assert model_id in catalog
    assert any(c.provider == "openrouter" for c in catalog)
    assert any(c.embeddings for c in catalog)
    qwen = catalog.get("qwen2.5-coder-0.5b-instruct")
    assert (qwen.provider, qwen.api, qwen.structured_output) == (
        "local",
        "openai",
        "json_object_schema",
    )
    assert qwen.provenance is not None
    assert qwen.provenance.sha256 == (
        "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
    )
    assert qwen.provenance.size_bytes == 491400064
    assert qwen.context_window == 32768
    smol = catalog.get("smollm2-135m-instruct")
    assert smol.provenance is not None
    assert smol.provenance.license == "Apache-2.0"
    assert smol.context_window == 8192
    large = catalog.get("qwen2.5-coder-1.5b-instruct")
    assert large.provenance is not None
    assert (large.provenance.license, large.provenance.size_bytes) == ("Apache-2.0", 1117320768)
    assert large.provenance.sha256 == (
        "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
    )
    assert all(c.cost(Usage(1000, 1000)) == 0 for c in catalog.for_provider("local"))


def test_default_path_honours_tlm_definitions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "models.json").write_text(json.dumps({"version": 1, "models": [card("only")]}))
    monkeypatch.setenv("TLM_DEFINITIONS", str(tmp_path))
    assert default_catalog_path() == tmp_path / "models.json"
    layered = Catalog.load()  # the project's catalog over the packaged one
    assert layered.ids() == (*Catalog.packaged().ids(), "only")


def test_cost_counts_cached_input_at_the_cached_price() -> None:
    gpt = Catalog.load().get("gpt-4o")
    usage = Usage(input_tokens=10_000, output_tokens=2_000, cached_input_tokens=4_000)
    assert gpt.cost(usage) == pytest.approx((6_000 * 2.5 + 4_000 * 1.25 + 2_000 * 10.0) / 1e6)


def test_cost_without_a_cached_price_uses_the_input_price() -> None:
    plain = ModelCard(
        id="x", provider="p", api="openai", provider_model="x", context_window=10,
        input_price_per_mtok=1.0, output_price_per_mtok=2.0,
    )  # fmt: skip
    assert plain.cost(Usage(1_000_000, 500_000, cached_input_tokens=1_000_000)) == 2.0


def test_cost_of_retried_attempts_adds_up() -> None:
    mini = Catalog.load().get("gpt-4o-mini")
    attempts = [Usage(1200, 0), Usage(1200, 300, cached_input_tokens=1024)]
    total = sum(mini.cost(u) for u in attempts)
    combined = attempts[0] + attempts[1]
    assert total == pytest.approx(mini.cost(combined))
    assert total == pytest.approx((1376 * 0.15 + 1024 * 0.075 + 300 * 0.6) / 1e6)


def test_unknown_model_lists_known_ids() -> None:
    with pytest.raises(ConfigurationError, match=r"unknown model 'gpt-5'.*gpt-4o"):
        Catalog.load().get("gpt-5")


def test_schema_errors_are_located(tmp_path: Path) -> None:
    bad = {
        "version": 1,
        "models": [
            card("ok"),
            card("bad", structured_output="xml", context_window=0, colour="red"),
            card("ok"),
            {**card("both"), "base_url_env": "URL"},
        ],
    }
    path = tmp_path / "models.json"
    path.write_text(json.dumps(bad))
    with pytest.raises(TaskSchemaError) as caught:
        Catalog.load(path)
    where = {(p.source, p.path) for p in caught.value.problems}
    assert (str(path), "$.models[1].structured_output") in where
    assert (str(path), "$.models[1].context_window") in where
    assert (str(path), "$.models[1]") in where  # the unknown "colour"
    assert (str(path), "$.models[3]") in where
    assert "base_url or base_url_env, not both" in str(caught.value)


def test_duplicates_and_missing_urls_are_located() -> None:
    no_url = card("nourl")
    del no_url["base_url"]
    with pytest.raises(TaskSchemaError) as caught:
        Catalog.from_data({"version": 1, "models": [card("a"), card("a"), no_url]}, source="m.json")
    assert [p.path for p in caught.value.problems] == ["$.models[1].id", "$.models[2]"]
    assert "duplicate id 'a'" in str(caught.value)


def test_unreadable_and_invalid_json_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot read model catalog"):
        Catalog.load(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text('{"version": 1,\n  "models": [}')
    with pytest.raises(TaskSchemaError, match=r"broken.json: \$: invalid JSON at line 2"):
        Catalog.load(broken)


def test_base_url_from_the_environment() -> None:
    entry = card("v", base_url_env="V_URL")
    del entry["base_url"]
    model = Catalog.from_data({"version": 1, "models": [entry]}).get("v")
    assert model.resolve_base_url({"V_URL": "http://h:1/v1/"}) == "http://h:1/v1"
    with pytest.raises(ConfigurationError, match="V_URL"):
        model.resolve_base_url({})
