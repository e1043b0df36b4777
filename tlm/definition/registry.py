"""A registry of task definitions with several versions of one task side by side.

On disk, each version of a task is ``<tasks dir>/<task id>/<version>.json``: the directory name
must equal the definition's ``id`` and the file name its ``version``. Look-ups take a task id and
optionally an exact version or a range (``^1.2``, ``~1.2.3``, ``>=1.0,<2``, ``1.x``).
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from tlm.definition.loader import load_definition
from tlm.definition.model import TaskDefinition
from tlm.definition.semver import Version, parse_range, parse_version
from tlm.errors import DefinitionError, Problem, TaskSchemaError, UnknownDefinition
from tlm.project import require_project

if TYPE_CHECKING:
    from tlm.rules import RuleRegistry

__all__ = ("DEFINITIONS_ENV", "default_definitions_dir", "tasks_dir", "DefinitionRegistry")

DEFINITIONS_ENV = "TLM_DEFINITIONS"
"""Environment variable naming the definitions directory."""


def default_definitions_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The definitions directory: ``explicit`` if given, else ``$TLM_DEFINITIONS``, else the
    project's (found from the working directory upward, see :mod:`tlm.project`).

    Raises:
        ProjectNotFound: none of these; the message says where TLM looked and suggests
            ``tlm init``.
    """
    if explicit:
        return Path(explicit)
    from_env = os.environ.get(DEFINITIONS_ENV)
    if from_env:
        return Path(from_env)
    return require_project().definitions_dir


def tasks_dir(path: str | os.PathLike[str]) -> Path:
    """The task directory for ``path``: its ``tasks/`` subdirectory if it has one, else itself."""
    root = Path(path)
    return root / "tasks" if (root / "tasks").is_dir() else root


def _newest(versions: Iterable[Version]) -> Version | None:
    ordered = sorted(versions)
    releases = [v for v in ordered if not v.prerelease]
    if releases:
        return releases[-1]
    return ordered[-1] if ordered else None


class DefinitionRegistry:
    """Task definitions by id and version. Not thread-safe while definitions are being added."""

    def __init__(self, definitions: Iterable[TaskDefinition] = ()) -> None:
        self._tasks: dict[str, dict[Version, TaskDefinition]] = {}
        self.problems: tuple[Problem, ...] = ()
        """Problems found by a non-strict :meth:`from_directory` (files that did not load)."""
        for definition in definitions:
            self.add(definition)

    @classmethod
    def from_directory(
        cls,
        path: str | os.PathLike[str],
        *,
        rules: RuleRegistry | None = None,
        metrics: Collection[str] | None = None,
        only: Collection[str] | None = None,
        strict: bool = True,
    ) -> DefinitionRegistry:
        """Load every ``<id>/<version>.json`` under ``path`` (or under ``path/tasks``).

        Args:
            path: The tasks directory, or a definitions directory containing ``tasks/``.
            rules: The validation-rule registry (default: :func:`tlm.rules.default_registry`).
            metrics: Extra similarity metric names to accept.
            only: Load only these task ids.
            strict: Raise on any problem; when false, keep what loaded and set ``.problems``.

        Raises:
            TaskSchemaError: (when ``strict``) every problem of every file, together.
        """
        if rules is None:
            from tlm.rules import default_registry

            rules = default_registry()
        root = tasks_dir(path)
        registry = cls()
        problems: list[Problem] = []
        if not root.is_dir():
            problems.append(Problem(os.fspath(root), "", "no such definitions directory"))
            entries: list[Path] = []
        else:
            entries = sorted(root.iterdir())
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if entry.is_file() and entry.suffix == ".json":
                problems.append(
                    Problem(
                        os.fspath(entry), "", "definitions go in <task id>/<version>.json, not here"
                    )
                )
                continue
            if not entry.is_dir() or (only is not None and entry.name not in only):
                continue
            for file in sorted(entry.glob("*.json")):
                problems += registry._load_file(file, entry.name, rules, metrics)
        registry.problems = tuple(problems)
        if problems and strict:
            raise TaskSchemaError(problems)
        return registry

    def _load_file(
        self,
        file: Path,
        task_id: str,
        rules: RuleRegistry,
        metrics: Collection[str] | None,
    ) -> list[Problem]:
        source = os.fspath(file)
        problems: list[Problem] = []
        try:
            definition = load_definition(file, rules=rules, metrics=metrics)
        except TaskSchemaError as exc:
            problems += exc.problems
            definition = None
        try:
            name_version: Version | None = parse_version(file.stem)
        except ValueError:
            name_version = None
            problems.append(
                Problem(
                    source,
                    "",
                    f"the file name must be the version, e.g. 1.0.0.json, not {file.name}",
                )
            )
        if definition is None:
            return problems
        if definition.id != task_id:
            problems.append(
                Problem(
                    source,
                    "$.id",
                    f"id {definition.id!r} does not match its directory {task_id!r}",
                )
            )
        if name_version is not None and str(name_version) != definition.version:
            problems.append(
                Problem(
                    source,
                    "$.version",
                    f"version {definition.version!r} does not match the file name {file.name!r}",
                )
            )
        if problems:
            return problems
        try:
            self.add(definition)
        except DefinitionError as exc:
            problems.append(Problem(source, "$.version", str(exc)))
        return problems

    def add(self, definition: TaskDefinition) -> None:
        """Add one definition; raises :class:`DefinitionError` if its id and version exist."""
        version = parse_version(definition.version)
        versions = self._tasks.setdefault(definition.id, {})
        if version in versions:
            other = versions[version].source or "another definition"
            raise DefinitionError(f"{definition.key} is already defined by {other}")
        versions[version] = definition

    def task_ids(self) -> tuple[str, ...]:
        """Every task id, sorted."""
        return tuple(sorted(self._tasks))

    def versions(self, task_id: str) -> tuple[str, ...]:
        """The versions of ``task_id``, oldest first; raises :class:`UnknownDefinition`."""
        return tuple(str(v) for v in sorted(self._versions(task_id)))

    def _versions(self, task_id: str) -> dict[Version, TaskDefinition]:
        try:
            return self._tasks[task_id]
        except KeyError:
            known = ", ".join(self.task_ids()) or "none"
            raise UnknownDefinition(f"no task {task_id!r}; known tasks: {known}") from None

    def get(self, task_id: str, version: str | None = None) -> TaskDefinition:
        """The newest version of ``task_id`` matching ``version`` (exact or a range).

        Without ``version``, the newest release (a pre-release only if there is nothing else).

        Raises:
            UnknownDefinition: no such task, or no version matches; the message lists what exists.
            DefinitionError: ``version`` is not a version or range.
        """
        versions = self._versions(task_id)
        if version is None:
            newest = _newest(versions)
        else:
            try:
                wanted = parse_range(version)
            except ValueError as exc:
                raise DefinitionError(str(exc)) from None
            newest = _newest(v for v in versions if v in wanted)
        if newest is None:
            have = ", ".join(self.versions(task_id))
            raise UnknownDefinition(
                f"no version of task {task_id!r} matches {version!r}; versions: {have}"
            )
        return versions[newest]

    def resolve(self, ref: str) -> TaskDefinition:
        """Look up ``"id"`` or ``"id@version-or-range"`` (as in ``depends_on``)."""
        task_id, sep, version = ref.partition("@")
        return self.get(task_id, version if sep else None)

    def previous(self, definition: TaskDefinition) -> TaskDefinition | None:
        """The newest registered version of the same task older than ``definition``."""
        if definition.id not in self._tasks:
            return None
        this = parse_version(definition.version)
        older = [v for v in self._tasks[definition.id] if v < this]
        return self._tasks[definition.id][max(older)] if older else None

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._tasks

    def __iter__(self) -> Iterator[TaskDefinition]:
        """Every definition, by task id then version."""
        for task_id in self.task_ids():
            versions = self._tasks[task_id]
            for version in sorted(versions):
                yield versions[version]

    def __len__(self) -> int:
        return sum(len(v) for v in self._tasks.values())
