"""What a user of the installed package runs: ``python -m tlm`` and ``tlm --version``."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

from click.testing import CliRunner

from tlm.cli import main


def test_tlm_version_prints_the_installed_distribution_version() -> None:
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert result.output == f"tlm, version {version('tlm')}\n"


def test_python_dash_m_tlm_runs_the_command_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tlm", "--version"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"tlm, version {version('tlm')}\n"
    listed = subprocess.run(
        [sys.executable, "-m", "tlm", "--help"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert listed.returncode == 0
    assert "Usage: tlm " in listed.stdout  # the program name, not __main__.py
    assert "validate-task" in listed.stdout
