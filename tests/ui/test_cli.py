"""``tlm ui`` from the command line, and the span tree the console's waterfall reads."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tests.ui.support import injection_record
from tlm.cli import main
from tlm.store.sqlite import ExecutionStore


def test_ui_is_a_tlm_command() -> None:
    result = CliRunner().invoke(main, ["ui", "--help"])
    assert result.exit_code == 0
    assert "--host" in result.output
    assert "--port" in result.output
    assert "TLM_UI_TOKEN" in result.output


def test_without_jinja2_it_names_the_extra_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, *args: Any) -> Any:
        return None if name == "jinja2" else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    result = CliRunner().invoke(main, ["ui", "--data-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "pip install 'tlm[ui]'" in result.output


def test_a_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(
            main, ["ui", "--port", str(port), "--data-dir", str(tmp_path / "data")]
        )
    assert result.exit_code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.output


def test_the_span_tree_survives_the_store(tmp_path: Path) -> None:
    record = injection_record()
    with ExecutionStore(tmp_path / "tlm.db") as store:
        store.write(record)
        stored = store.get(record.execution_id)
    assert stored is not None
    assert [dict(s) for s in stored.spans] == [dict(s) for s in record.spans]
