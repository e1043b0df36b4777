"""Model ranking from task criteria, budgets merged and checked, configuration from file and env."""

from __future__ import annotations

from pathlib import Path

import pytest

from tlm.budget import BudgetLedger, merge_budgets
from tlm.catalog import Catalog
from tlm.definition.model import Budget, RankingCriteria
from tlm.engine import load_config
from tlm.engine.selection import rank_models
from tlm.errors import BudgetExceeded, ConfigurationError
from tlm.estimates import ModelEstimate


def card(
    model: str, *, quality: float, latency: float, price: float, window: int = 32_768
) -> dict[str, object]:
    return {
        "id": model,
        "provider": "fake",
        "api": "openai",
        "provider_model": model,
        "base_url": "http://127.0.0.1:9/v1",
        "context_window": window,
        "input_price_per_mtok": price,
        "output_price_per_mtok": price,
        "prior_quality": quality,
        "prior_latency_s": latency,
    }


CATALOG = Catalog.from_data(
    {
        "version": 1,
        "models": [
            card("strong-slow", quality=0.95, latency=9.0, price=10.0, window=128_000),
            card("weak-fast", quality=0.60, latency=0.2, price=0.1),
            card("tiny", quality=0.40, latency=0.1, price=0.0, window=4_096),
        ],
    }
)
CARDS = [CATALOG.get(m) for m in CATALOG.ids()]


def ids(criteria: RankingCriteria, **kwargs: object) -> list[str]:
    return [r.id for r in rank_models(CARDS, criteria, **kwargs)]  # type: ignore[arg-type]


def test_quality_priority_prefers_the_strong_model() -> None:
    criteria = RankingCriteria(quality_priority=1.0, speed_priority=0.0, context_size="small")
    assert ids(criteria)[0] == "strong-slow"


def test_speed_priority_prefers_the_fast_model() -> None:
    criteria = RankingCriteria(quality_priority=0.2, speed_priority=0.8, context_size="small")
    assert ids(criteria)[0] in {"weak-fast", "tiny"}
    assert ids(criteria)[-1] == "strong-slow"


def test_cost_priority_prefers_the_cheap_model() -> None:
    criteria = RankingCriteria(
        quality_priority=0.0, speed_priority=0.0, cost_priority=1.0, context_size="small"
    )
    assert ids(criteria)[0] == "tiny"


def test_a_prompt_too_large_for_a_window_excludes_that_model() -> None:
    criteria = RankingCriteria(quality_priority=0.0, speed_priority=1.0, context_size="small")
    assert "tiny" not in ids(criteria, prompt_tokens=5_000, max_output_tokens=500)
    assert ids(criteria, prompt_tokens=60_000) == ["strong-slow"]
    assert ids(criteria, prompt_tokens=500_000) == []


def test_models_below_the_named_context_size_rank_last_but_stay_eligible() -> None:
    criteria = RankingCriteria(quality_priority=0.0, speed_priority=1.0, context_size="medium")
    assert ids(criteria)[-1] == "tiny"
    assert len(ids(criteria)) == 3


def test_preferred_models_come_first_in_their_order() -> None:
    criteria = RankingCriteria(preferred_models=("tiny", "weak-fast"))
    assert ids(criteria) == ["tiny", "weak-fast", "strong-slow"]


def test_learned_estimates_replace_the_priors() -> None:
    criteria = RankingCriteria(quality_priority=1.0, speed_priority=0.0, context_size="small")
    learned = {"weak-fast": ModelEstimate(quality=0.99, latency_s=0.2, samples=500)}
    assert ids(criteria, estimates=learned)[0] == "weak-fast"


def test_budgets_merge_to_the_tightest_field_by_field() -> None:
    merged = merge_budgets(Budget(max_cost_usd=1.0, deadline_s=30), Budget(max_cost_usd=0.5), None)
    assert merged == Budget(max_cost_usd=0.5, deadline_s=30.0, max_attempts=None)


def test_ledger_checks_estimates_attempts_and_charges_its_parent() -> None:
    now = [0.0]
    workflow = BudgetLedger(Budget(max_cost_usd=1.0), clock=lambda: now[0])
    ledger = BudgetLedger(
        Budget(max_attempts=2, deadline_s=10), clock=lambda: now[0], parent=workflow
    )
    ledger.before_call(0.4)
    assert workflow.reserved_usd == pytest.approx(0.4)
    with pytest.raises(BudgetExceeded, match="reserved by the calls in flight"):
        ledger.before_call(0.7)  # fits the $1 alone, not beside the call in flight
    ledger.release(0.4)
    ledger.charge(0.7)
    assert workflow.spent_usd == pytest.approx(0.7)
    assert workflow.reserved_usd == 0
    with pytest.raises(BudgetExceeded, match="cost budget"):
        ledger.before_call(0.4)  # the parent has $0.30 left
    ledger.before_call(0.1)
    assert workflow.attempts == 2
    with pytest.raises(BudgetExceeded, match="attempt budget"):
        ledger.before_call(0.0)
    now[0] = 11.0
    assert ledger.remaining_s() < 0


def test_config_reads_tlm_toml_then_env_overrides(tmp_path: Path) -> None:
    (tmp_path / "tlm.toml").write_text(
        '[tlm]\nmodels = ["gpt-4o-mini"]\ndata_dir = "state"\nredact = ["email"]\ncache = false\n'
    )
    config = load_config(tmp_path / "tlm.toml", env={})
    assert config.models == ("gpt-4o-mini",)
    assert config.data_dir == tmp_path / "state"  # relative to tlm.toml, not to the cwd
    assert config.redact == ("email",)
    assert config.cache is False
    overridden = load_config(tmp_path / "tlm.toml", env={"TLM_MODELS": "a, b", "TLM_CACHE": "1"})
    assert overridden.models == ("a", "b")
    assert overridden.cache is True


def test_config_names_unknown_settings_and_bad_toml(tmp_path: Path) -> None:
    (tmp_path / "tlm.toml").write_text("[tlm]\nmodel = 'typo'\n")
    with pytest.raises(ConfigurationError, match=r"unknown setting.*model"):
        load_config(tmp_path / "tlm.toml", env={})
    (tmp_path / "bad.toml").write_text("[tlm\n")
    with pytest.raises(ConfigurationError, match=r"bad\.toml"):
        load_config(tmp_path / "bad.toml", env={})


def test_defaults_use_the_embedded_local_models(tmp_path: Path) -> None:
    config = load_config(env={"TLM_CONFIG": str(tmp_path / "absent.toml")})
    assert config.models == ("qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-1.5b-instruct")
    assert config.data_dir == tmp_path / ".tlm"  # the project's (TLM_CONFIG's directory)


def test_every_documented_toml_setting_is_accepted(tmp_path: Path) -> None:
    (tmp_path / "tlm.toml").write_text(
        "[tlm]\nmax_reasks = 0\nadaptive_verification = true\nstore = false\n"
    )
    config = load_config(tmp_path / "tlm.toml", env={})
    assert config.max_reasks == 0
    assert config.adaptive_verification is True
    assert config.store is False
