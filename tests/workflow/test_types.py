"""The type tests: every ``tests/type_tests/bad_*.py`` must fail mypy with the expected error."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TYPE_TESTS = ROOT / "tests" / "type_tests"

EXPECTED = {
    "bad_then_mismatch.py": 'Argument 1 to "then" of "Step" has incompatible type',
    "bad_pipe_mismatch.py": 'operand types for | ("Step[str, int]" and "Step[str, str]")',
    "bad_map_over_non_list.py": "Unsupported operand types for |",
    "bad_workflow_input.py": 'Missing key "job_posting" for TypedDict "JobDetailExtractionInput"',
}


def test_every_bad_composition_fails_mypy_with_its_expected_error() -> None:
    bad = sorted(p.name for p in TYPE_TESTS.glob("bad_*.py"))
    assert bad == sorted(EXPECTED)
    done = subprocess.run(
        [sys.executable, "-m", "mypy", *(str(TYPE_TESTS / name) for name in bad)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    for name, message in EXPECTED.items():
        errors = [
            line
            for line in done.stdout.splitlines()
            if line.startswith(f"tests/type_tests/{name}:")
        ]
        assert errors, f"{name} passed mypy:\n{done.stdout}"
        assert any(message in line for line in errors), errors
