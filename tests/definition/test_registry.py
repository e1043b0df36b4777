"""The registry: several versions side by side, look-up by id, exact version or range."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tlm.definition import DefinitionRegistry, default_definitions_dir
from tlm.errors import DefinitionError, TaskSchemaError, UnknownDefinition
from tlm.project import ProjectNotFound

from .support import definition, write_task


@pytest.fixture
def tasks(tmp_path: Path) -> Path:
    root = tmp_path / "definitions" / "tasks"
    for version in ("1.0.0", "1.2.0", "1.10.0", "2.0.0-beta.1"):
        write_task(root, definition(version=version))
    write_task(root, definition(id="translate", version="0.3.0"))
    return root


def test_loads_every_version_side_by_side(tasks: Path) -> None:
    registry = DefinitionRegistry.from_directory(tasks)
    assert registry.task_ids() == ("summarise", "translate")
    assert registry.versions("summarise") == ("1.0.0", "1.2.0", "1.10.0", "2.0.0-beta.1")
    assert len(registry) == 5
    assert "translate" in registry
    assert [d.key for d in registry][:2] == ["summarise@1.0.0", "summarise@1.2.0"]


def test_accepts_the_definitions_directory_too(tasks: Path) -> None:
    registry = DefinitionRegistry.from_directory(tasks.parent)
    assert registry.task_ids() == ("summarise", "translate")


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        (None, "1.10.0"),
        ("1.2.0", "1.2.0"),
        ("^1.2", "1.10.0"),
        ("~1.2.0", "1.2.0"),
        (">=1.0,<1.10", "1.2.0"),
        ("1.x", "1.10.0"),
        ("2.0.0-beta.1", "2.0.0-beta.1"),
    ],
)
def test_get_latest_exact_or_range(tasks: Path, version: str | None, expected: str) -> None:
    registry = DefinitionRegistry.from_directory(tasks)
    assert registry.get("summarise", version).version == expected


def test_resolve_takes_id_at_range(tasks: Path) -> None:
    registry = DefinitionRegistry.from_directory(tasks)
    assert registry.resolve("summarise@^1.0").version == "1.10.0"
    assert registry.resolve("translate").version == "0.3.0"


def test_previous_version(tasks: Path) -> None:
    registry = DefinitionRegistry.from_directory(tasks)
    previous = registry.previous(registry.get("summarise", "1.10.0"))
    assert previous is not None
    assert previous.version == "1.2.0"
    assert registry.previous(registry.get("summarise", "1.0.0")) is None


def test_unknown_id_or_version_lists_what_exists(tasks: Path) -> None:
    registry = DefinitionRegistry.from_directory(tasks)
    with pytest.raises(UnknownDefinition) as info:
        registry.get("sumarise")
    assert str(info.value) == "no task 'sumarise'; known tasks: summarise, translate"
    assert isinstance(info.value, KeyError)
    assert isinstance(info.value, DefinitionError)
    with pytest.raises(KeyError, match=r"matches '\^3'; versions: 1.0.0, 1.2.0, 1.10.0"):
        registry.get("summarise", "^3")
    with pytest.raises(DefinitionError, match="not a version range"):
        registry.get("summarise", "latest")


def test_file_name_and_directory_must_match_version_and_id(tmp_path: Path) -> None:
    root = tmp_path / "tasks"
    misnamed = write_task(root, definition(version="1.1.0"), name="1.0.0.json")
    elsewhere = write_task(root, definition(id="other"))
    wrong_dir = elsewhere.parent.parent / "summary" / "1.0.0.json"
    wrong_dir.parent.mkdir()
    elsewhere.rename(wrong_dir)
    not_a_version = write_task(root, definition(), name="latest.json")
    stray = root / "loose.json"
    stray.write_text("{}")
    with pytest.raises(TaskSchemaError) as info:
        DefinitionRegistry.from_directory(root)
    rendered = {str(p) for p in info.value.problems}
    assert rendered == {
        f"{misnamed}: $.version: version '1.1.0' does not match the file name '1.0.0.json'",
        f"{wrong_dir}: $.id: id 'other' does not match its directory 'summary'",
        f"{not_a_version}: the file name must be the version, e.g. 1.0.0.json, not latest.json",
        f"{stray}: definitions go in <task id>/<version>.json, not here",
    }


def test_problems_of_all_files_are_reported_together(tmp_path: Path) -> None:
    root = tmp_path / "tasks"
    good = write_task(root, definition())
    bad_json = root / "summarise" / "1.1.0.json"
    bad_json.write_text('{"id": ')
    bad_rule = write_task(root, definition(id="x", input={"schema": {}, "validations": ["nope"]}))
    with pytest.raises(TaskSchemaError) as info:
        DefinitionRegistry.from_directory(root)
    sources = sorted({p.source for p in info.value.problems})
    assert sources == sorted([f"{bad_json}:1:8", str(bad_rule)])
    lenient = DefinitionRegistry.from_directory(root, strict=False)
    assert lenient.task_ids() == ("summarise",)
    assert lenient.get("summarise").source == str(good)
    assert {p.source for p in lenient.problems} == set(sources)


def test_only_loads_the_named_tasks(tasks: Path) -> None:
    registry = DefinitionRegistry.from_directory(tasks, only={"translate"})
    assert registry.task_ids() == ("translate",)


def test_a_missing_directory_is_a_located_error(tmp_path: Path) -> None:
    with pytest.raises(TaskSchemaError, match="no such definitions directory"):
        DefinitionRegistry.from_directory(tmp_path / "none")


def test_adding_the_same_version_twice_is_refused(tasks: Path) -> None:
    registry = DefinitionRegistry.from_directory(tasks)
    with pytest.raises(DefinitionError, match=r"summarise@1.0.0 is already defined"):
        registry.add(registry.get("summarise", "1.0.0"))


def test_default_definitions_dir_lookup_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    monkeypatch.chdir(nested)
    monkeypatch.delenv("TLM_DEFINITIONS", raising=False)
    monkeypatch.delenv("TLM_CONFIG", raising=False)
    with pytest.raises(ProjectNotFound, match=r"looked for tlm.toml or a definitions/.*tlm init"):
        default_definitions_dir()
    (tmp_path / "definitions").mkdir()  # found from a subdirectory, like git finds .git
    assert default_definitions_dir() == tmp_path / "definitions"
    (tmp_path / "a" / "tlm.toml").write_text('[tlm]\ndefinitions = "tasks-here"\n')
    assert default_definitions_dir() == tmp_path / "a" / "tasks-here"  # nearer, and relative to it
    monkeypatch.setenv("TLM_DEFINITIONS", os.fspath(tmp_path / "env"))
    assert default_definitions_dir() == tmp_path / "env"
    assert default_definitions_dir(tmp_path / "explicit") == tmp_path / "explicit"


def test_the_bundled_definitions_all_load(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TLM_DEFINITIONS", raising=False)
    registry = DefinitionRegistry.from_directory(default_definitions_dir())
    assert {"job_detail_extraction", "skill_decomposition"} <= set(registry.task_ids())
