"""The default deadline and the response-size limit come from tlm.toml and the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from tlm.engine import EngineConfig, load_config
from tlm.engine.config import DEFAULT_DEADLINE_S
from tlm.errors import ConfigurationError
from tlm.providers._http import DEFAULT_MAX_RESPONSE_BYTES


def test_defaults(tmp_path: Path) -> None:
    config = load_config(env={"TLM_CONFIG": str(tmp_path / "absent.toml")})
    assert config.default_deadline_s == DEFAULT_DEADLINE_S == 300.0
    assert config.max_response_bytes == DEFAULT_MAX_RESPONSE_BYTES


def test_tlm_toml_then_environment(tmp_path: Path) -> None:
    (tmp_path / "tlm.toml").write_text(
        "[tlm]\ndefault_deadline_s = 45.5\nmax_response_bytes = 1048576\n"
    )
    config = load_config(tmp_path / "tlm.toml", env={})
    assert config.default_deadline_s == 45.5
    assert config.max_response_bytes == 1_048_576
    env = {"TLM_DEFAULT_DEADLINE_S": "12", "TLM_MAX_RESPONSE_BYTES": "2048"}
    overridden = load_config(tmp_path / "tlm.toml", env=env)
    assert overridden.default_deadline_s == 12.0
    assert overridden.max_response_bytes == 2048


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("default_deadline_s = nan", "default_deadline_s must be a positive, finite number"),
        ("default_deadline_s = inf", "default_deadline_s must be a positive, finite number"),
        ("default_deadline_s = -1", "default_deadline_s must be a positive, finite number"),
        ("default_deadline_s = 0", "default_deadline_s must be a positive, finite number"),
        ('default_deadline_s = "soon"', "default_deadline_s must be a number"),
        ("max_response_bytes = 0", "max_response_bytes must be a positive, finite number"),
        ("max_response_bytes = 1.5", "max_response_bytes must be an integer"),
        ("max_reasks = -1", "max_reasks must be 0 or more"),
        ('max_reasks = "two"', "max_reasks must be an integer"),
    ],
)
def test_bad_values_are_named(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "tlm.toml").write_text(f"[tlm]\n{text}\n")
    with pytest.raises(ConfigurationError, match=message):
        load_config(tmp_path / "tlm.toml", env={})


def test_bad_environment_values_are_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="default_deadline_s"):
        load_config(env={"TLM_CONFIG": str(tmp_path / "x"), "TLM_DEFAULT_DEADLINE_S": "nan"})
    with pytest.raises(ConfigurationError, match="max_response_bytes"):
        load_config(env={"TLM_CONFIG": str(tmp_path / "x"), "TLM_MAX_RESPONSE_BYTES": "lots"})
    with pytest.raises(ConfigurationError, match="default_deadline_s"):
        EngineConfig(default_deadline_s=float("inf"))
