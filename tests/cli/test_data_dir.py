"""The CLI finds the data directory the engine uses: TLM_DATA_DIR, else tlm.toml, else .tlm."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from tlm.cli import main
from tlm.store import ExecutionStore


def test_commands_read_the_data_dir_from_tlm_toml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TLM_DATA_DIR", raising=False)
    monkeypatch.delenv("TLM_CONFIG", raising=False)
    (tmp_path / "tlm.toml").write_text('[tlm]\ndata_dir = "state"\n')
    ExecutionStore(tmp_path / "state" / "tlm.db").close()
    result = CliRunner().invoke(main, ["executions", "list"])
    assert result.exit_code == 0, result.output
    assert "0 execution(s)" in result.output  # .tlm/ does not exist: it read state/tlm.db
    missing = CliRunner().invoke(main, ["review", "list"])
    assert missing.exit_code != 0
    assert str(Path("state") / "reviews.db") in missing.output


def test_a_broken_tlm_toml_is_a_usage_error_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TLM_DATA_DIR", raising=False)
    monkeypatch.delenv("TLM_CONFIG", raising=False)
    (tmp_path / "tlm.toml").write_text("[tlm\n")
    result = CliRunner().invoke(main, ["executions", "list"])
    assert result.exit_code == 2
    assert "tlm.toml" in result.output
    assert "Traceback" not in result.output
