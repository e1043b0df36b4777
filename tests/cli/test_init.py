"""``tlm init``, a user's project found from the working directory upward, and life without one."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from tlm.cli import main
from tlm.cli.init import EXAMPLE_TASK_ID, TLM_TOML
from tlm.definition import load_definition
from tlm.engine.config import TOML_KEYS, load_config
from tlm.project import find_project


@pytest.fixture(autouse=True)
def no_configuration_from_outside(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TLM_CONFIG", "TLM_DEFINITIONS", "TLM_CATALOG", "TLM_DATA_DIR", "TLM_MODELS"):
        monkeypatch.delenv(name, raising=False)


def run(*args: str | os.PathLike[str]) -> Result:
    return CliRunner().invoke(main, [os.fspath(a) for a in args])


def _uncommented(toml: str) -> str:
    """tlm.toml with every commented setting (and table header) switched on."""
    lines = []
    for line in toml.splitlines():
        body = line.removeprefix("# ")
        if line.startswith("# ") and re.match(r"^(\[tlm\.|[a-z_]+ = )", body):
            lines.append(body)
        elif not line.startswith("#"):
            lines.append(line)
    return "\n".join(lines) + "\n"


def test_init_scaffolds_a_project_that_validates(tmp_path: Path) -> None:
    project = tmp_path / "svc"
    result = run("init", project)
    assert result.exit_code == 0, result.output
    task_file = project / "definitions" / "tasks" / EXAMPLE_TASK_ID / "1.0.0.json"
    for made in ("tlm.toml", "definitions/models.json", ".gitignore"):
        assert f"created {project / made}" in result.output
    assert load_definition(task_file).id == EXAMPLE_TASK_ID
    assert json.loads((project / "definitions" / "models.json").read_text()) == {
        "version": 1,
        "models": [],
    }
    assert ".tlm/" in (project / ".gitignore").read_text().splitlines()
    # every setting is there, commented out: the file as written changes nothing
    toml = (project / "tlm.toml").read_text()
    assert tomllib.loads(toml) == {"tlm": {}}
    found = find_project(project / "definitions" / "tasks")
    assert found is not None
    assert found.root == project.absolute()


def test_every_setting_is_in_the_scaffolded_toml_and_valid_when_switched_on(
    tmp_path: Path,
) -> None:
    switched_on = _uncommented(TLM_TOML)
    table = tomllib.loads(switched_on)["tlm"]
    assert set(table) == set(TOML_KEYS)  # each setting config.py reads, and no other
    (tmp_path / "tlm.toml").write_text(switched_on)
    config = load_config(tmp_path / "tlm.toml", env={})
    assert config.definitions_dir == tmp_path / "definitions"
    assert config.catalog_path == tmp_path / "definitions" / "models.json"
    assert config.data_dir == tmp_path / ".tlm"
    assert config.provider_limits == {
        "openai": {"max_in_flight": 512, "requests_per_minute": 0, "tokens_per_minute": 0}
    }
    assert config.model_limits == {"gpt-4o-mini": {"requests_per_minute": 0}}


def test_git_ignores_the_state_directory(tmp_path: Path) -> None:
    if shutil.which("git") is None:
        pytest.fail("git is needed: the project's own checkout is a git repository")
    (tmp_path / ".gitignore").write_text("*.pyc")  # an existing file without a final newline
    assert run("init", tmp_path).exit_code == 0
    assert (tmp_path / ".gitignore").read_text() == "*.pyc\n.tlm/\n"
    subprocess.run(["git", "init", "-q", os.fspath(tmp_path)], check=True)
    (tmp_path / ".tlm").mkdir()
    (tmp_path / ".tlm" / "tlm.db").write_bytes(b"")
    ignored = subprocess.run(
        ["git", "-C", os.fspath(tmp_path), "check-ignore", ".tlm/tlm.db"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert ignored.returncode == 0, ignored.stderr


def test_init_again_keeps_every_file(tmp_path: Path) -> None:
    assert run("init", tmp_path).exit_code == 0
    (tmp_path / "tlm.toml").write_text('[tlm]\nmodels = ["gpt-4o-mini"]\n')
    again = run("init", tmp_path)
    assert again.exit_code == 0, again.output
    assert "created" not in again.output
    assert f"kept    {tmp_path / 'tlm.toml'}" in again.output
    assert (tmp_path / "tlm.toml").read_text() == '[tlm]\nmodels = ["gpt-4o-mini"]\n'
    assert (tmp_path / ".gitignore").read_text().count(".tlm/") == 1


def test_commands_find_the_project_from_a_subdirectory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run("init", tmp_path).exit_code == 0
    deep = tmp_path / "src" / "service"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    listed = run("list-tasks")
    assert listed.exit_code == 0, listed.output
    assert EXAMPLE_TASK_ID in listed.output
    created = run("create-task", "summarise")
    assert created.exit_code == 0, created.output
    assert (tmp_path / "definitions" / "tasks" / "summarise" / "1.0.0.json").is_file()
    assert run("validate-task", "--all").exit_code == 0


def test_without_a_project_commands_say_where_they_looked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.chdir(empty)
    for args in (["list-tasks"], ["show-task", "x"], ["validate-task", "x"], ["codegen"]):
        result = run(*args)
        assert result.exit_code == 1, (args, result.output)
        assert f"no TLM project in {empty}" in result.output
        assert "tlm init" in result.output
        assert "Traceback" not in result.output
    executed = subprocess.run(
        [sys.executable, "-m", "tlm", "execute", "x", "--input", "{}"],
        cwd=empty,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith("TLM_")},
    )
    assert executed.returncode == 1
    said = " ".join(executed.stderr.split())  # the console wraps long lines
    assert f"no TLM project in {empty} or any directory above it" in said
    assert "run `tlm init` to create one here" in said
    assert "Traceback" not in said


def test_validate_a_file_and_create_a_task_anywhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert run("init", tmp_path / "elsewhere").exit_code == 0
    loose = tmp_path / "loose.json"
    shutil.copy(tmp_path / "elsewhere/definitions/tasks" / EXAMPLE_TASK_ID / "1.0.0.json", loose)
    shutil.rmtree(tmp_path / "elsewhere")
    checked = run("validate-task", "loose.json")
    assert checked.exit_code == 0, checked.output
    assert f"ok  {EXAMPLE_TASK_ID}@1.0.0" in checked.output
    broken = json.loads(loose.read_text())
    del broken["prompts"]
    loose.write_text(json.dumps(broken))
    failed = run("validate-task", "loose.json")
    assert failed.exit_code == 1
    assert "loose.json: $: 'prompts' is a required property" in failed.output
    created = run("create-task", "my_task")
    assert created.exit_code == 0, created.output
    assert "no project found: this starts one here" in created.output
    assert load_definition(tmp_path / "definitions/tasks/my_task/1.0.0.json").id == "my_task"
    assert run("validate-task", "my_task").exit_code == 0  # definitions/ now marks a project


@pytest.mark.local_model
def test_the_example_task_runs_on_the_embedded_model(tmp_path: Path) -> None:
    assert run("init", tmp_path).exit_code == 0
    env = {k: v for k, v in os.environ.items() if not k.startswith("TLM_")}
    result = subprocess.run(
        [sys.executable, "-m", "tlm", "execute", EXAMPLE_TASK_ID, "--example", "1", "--json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout)
    assert outcome["output"]["sentiment"] in {"positive", "negative", "neutral"}
    assert outcome["models_used"] == ["qwen2.5-coder-0.5b-instruct"]
    assert (tmp_path / ".tlm" / "tlm.db").is_file()  # the project's state, not the cwd's
