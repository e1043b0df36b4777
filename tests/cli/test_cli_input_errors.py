"""Issue 12 items 8 and 9 from a shell: bad input files and bad numbers are one clear line.

Each case exits 1 with a single ``Error: <file or option>: <where>: <what>`` line on stderr and
no traceback; no engine is opened and no store is touched. The worst cases (10,000-deep JSON,
invalid UTF-8 on stdin) also run as a real subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from tlm.cli import main
from tlm.store import ExecutionStore, default_db_path

ROOT = Path(__file__).resolve().parents[2]


def _invoke(*args: str, stdin: bytes | None = None) -> Result:
    return CliRunner().invoke(main, list(args), input=stdin)


def _one_line_error(result: Result, *expected: str) -> str:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    (line,) = lines
    assert line.startswith("Error: ")
    for part in expected:
        assert part in line, line
    return line


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    contents: dict[str, bytes] = {
        "deep": b'{"posting": ' + b"[" * 10_000 + b"]" * 10_000 + b"}",
        "deep500": b'{"posting": "p", "x": ' + b"[" * 500 + b"]" * 500 + b"}",
        "latin1": '{"posting": "caf\u00e9"}'.encode("latin-1"),
        "utf16": '{"posting": "x"}'.encode("utf-16"),
        "utf32": '{"posting": "x"}'.encode("utf-32"),
        "bigint": b'{"posting": "x",\n "n": ' + b"9" * 5000 + b"}",
        "nan": b'{"posting": "x", "n": NaN}',
        "inf": b'{"posting": "x", "n": [1e999]}',
        "syntax": b'{"posting": "x",\n "n": }',
    }
    paths = {}
    for name, data in contents.items():
        path = tmp_path / f"{name}.json"
        path.write_bytes(data)
        paths[name] = path
    return paths


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("deep", ("line 1 column 112", "nested deeper than 100")),
        ("deep500", ("$.x[0][0][0]", "nested deeper than 100")),
        ("latin1", ("line 1 column 17", "not valid UTF-8", "e9")),
        ("utf16", ("UTF-16", "byte-order mark", "UTF-8")),
        ("utf32", ("UTF-32",)),
        ("bigint", ("line 2 column 7", "5000 digits", "4300")),
        ("nan", ("line 1 column 23", "NaN is not a JSON number")),
        ("inf", ("$.n[0]", "inf is not a JSON number")),
        ("syntax", ("line 2 column 7", "Expecting value")),
    ],
)
def test_bad_input_files_are_one_located_line(
    files: dict[str, Path], name: str, expected: tuple[str, ...]
) -> None:
    path = files[name]
    result = _invoke("execute", "title_extraction", "--input", str(path))
    _one_line_error(result, str(path), *expected)


def test_invalid_utf8_on_stdin(tmp_path: Path) -> None:
    result = _invoke("execute", "t", "--input", "-", stdin=b'{"posting":\n "\xff\xfe"}')
    _one_line_error(result, "<stdin>: line 2 column 3", "not valid UTF-8", "ff")


def test_a_utf8_byte_order_mark_is_fine(tmp_path: Path) -> None:
    from tlm.cli.json_input import read_input

    path = tmp_path / "bom.json"
    path.write_bytes(b'\xef\xbb\xbf{"posting": "caf\xc3\xa9"}')
    assert read_input(str(path)) == {"posting": "caf\u00e9"}


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--max-cost", "nan"), "--max-cost: nan is not a finite number"),
        (("--max-cost", "inf"), "--max-cost: inf is not a finite number"),
        (("--max-cost", "-1"), "--max-cost: -1 is out of range (at least 0)"),
        (("--deadline", "nan"), "--deadline: nan is not a finite number"),
        (("--deadline", "-inf"), "--deadline: -inf is not a finite number"),
        (("--deadline", "0"), "--deadline: 0 is out of range (above 0)"),
        (("--deadline", "-3"), "--deadline: -3 is out of range (above 0)"),
    ],
)
def test_execute_refuses_non_finite_and_negative_limits(
    args: tuple[str, ...], expected: str
) -> None:
    result = _invoke("execute", "title_extraction", "--input", '{"posting": "x"}', *args)
    _one_line_error(result, expected)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    ExecutionStore(default_db_path(tmp_path)).close()
    return tmp_path


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--since", "99999999d"), "--since: 99999999d ago is before the year 1"),
        (("--since", "99999999999999999999w"), "--since: 99999999999999999999w is longer"),
        (("--limit", "99999999999999999999"), "--limit: 99999999999999999999 is out of range"),
        (("--limit", "9" * 5000), "--limit: 999"),
        (("--limit", "0"), "--limit: 0 is out of range (1 to 9223372036854775807)"),
    ],
)
def test_executions_list_refuses_what_no_date_or_store_can_hold(
    data_dir: Path, args: tuple[str, ...], expected: str
) -> None:
    result = _invoke("executions", "list", *args, "--data-dir", str(data_dir))
    _one_line_error(result, expected)


def test_the_largest_limit_sqlite_holds_still_lists(data_dir: Path) -> None:
    result = _invoke("executions", "list", "--limit", str(2**63 - 1), "--data-dir", str(data_dir))
    assert result.exit_code == 0, result.output
    assert "0 execution(s)" in result.output


@pytest.mark.parametrize(
    ("score", "expected"),
    [
        ("nan", "--score: nan is not a finite number"),
        ("1e999", "--score: 1e999 is not a finite number"),
        ("-5", "--score: -5 is out of range (at least 0 and at most 1)"),
        ("1.01", "--score: 1.01 is out of range"),
    ],
)
def test_feedback_score_must_be_0_to_1(data_dir: Path, score: str, expected: str) -> None:
    result = _invoke("feedback", "e0", "--score", score, "--data-dir", str(data_dir))
    _one_line_error(result, expected)


def test_learning_commands_refuse_periods_and_rates_out_of_range(data_dir: Path) -> None:
    period = _invoke("analyze", "t", "--period", "99999999d", "--data-dir", str(data_dir))
    _one_line_error(period, "--period: 99999999d reaches back before the year 1")
    rate = _invoke("suggest-prompts", "t", "--min-rate", "nan", "--data-dir", str(data_dir))
    _one_line_error(rate, "--min-rate: nan is not a finite number")


def test_model_must_be_a_configured_one(tmp_path: Path) -> None:
    """``TLM_MODELS=model-a`` and ``--model model-b`` (in the catalog): refused, recorded."""
    from tests.engine.conftest import base_task, catalog_data

    definitions = tmp_path / "definitions"
    (definitions / "tasks" / "title_extraction").mkdir(parents=True)
    (definitions / "tasks" / "title_extraction" / "1.0.0.json").write_text(
        json.dumps(base_task()), encoding="utf-8"
    )
    catalog = tmp_path / "models.json"
    catalog.write_text(json.dumps(catalog_data()), encoding="utf-8")
    env = {
        "TLM_DEFINITIONS": str(definitions),
        "TLM_CATALOG": str(catalog),
        "TLM_MODELS": "model-a",
        "TLM_DATA_DIR": str(tmp_path / "data"),
        "TLM_CONFIG": str(tmp_path / "absent.toml"),
    }
    result = CliRunner().invoke(
        main,
        ["execute", "title_extraction", "--input", '{"posting": "x"}', "--model", "model-b"],
        env=env,
    )
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert "model(s) not configured in options.models: model-b" in result.stderr
    assert "configured: model-a" in result.stderr
    assert result.stderr.count("\n") == 1  # one line, not wrapped at the terminal width
    with ExecutionStore(default_db_path(tmp_path / "data")) as store:
        assert store.count() == 1


def _subprocess(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path}
    return subprocess.run(
        [sys.executable, "-c", "import sys; from tlm.cli import main; sys.exit(main())", *args],
        input=stdin,
        capture_output=True,
        env=env,
        cwd=ROOT,
        check=False,
        timeout=120,
    )


def test_real_subprocess_deep_file_and_bad_stdin(files: dict[str, Path]) -> None:
    deep = _subprocess("execute", "title_extraction", "--input", str(files["deep"]))
    assert deep.returncode == 1
    stderr = deep.stderr.decode()
    assert stderr.strip().splitlines() == [
        f"Error: {files['deep']}: line 1 column 112: nested deeper than 100 arrays/objects"
    ]
    stdin = _subprocess("execute", "title_extraction", "--input", "-", stdin=b'{"p": "\xc3"}')
    assert stdin.returncode == 1
    assert b"Traceback" not in stdin.stderr
    where = "Error: <stdin>: line 1 column 8 (byte 7): not valid UTF-8"
    assert stdin.stderr.decode().strip().startswith(where)
    since = _subprocess("executions", "list", "--since", "99999999d")
    assert since.returncode == 1
    assert since.stderr.decode().strip() == "Error: --since: 99999999d ago is before the year 1"
