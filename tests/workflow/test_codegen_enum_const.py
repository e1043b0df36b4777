"""Issue 14: ``tlm codegen`` reads ``enum`` and ``const`` by the one JSON-Schema rule.

Both keywords must hold, so together they allow the ``const`` if the ``enum`` lists it and
nothing otherwise; nothing allowed is ``typing.Never``. Checked on the CLI's generated file,
imported and its type hints read back.
"""

from __future__ import annotations

import importlib.util
import json
import typing
from pathlib import Path
from typing import Any, Literal, Never

from click.testing import CliRunner

from tests.engine.conftest import base_task
from tlm.cli import main

FIELDS: dict[str, tuple[dict[str, Any], Any]] = {
    "listed": ({"enum": ["a", "b"], "const": "b"}, Literal["b"]),
    "unlisted": ({"enum": ["a", "b"], "const": "c"}, Never),
    "empty_enum": ({"enum": []}, Never),
    "only_const": ({"const": "c"}, Literal["c"]),
    "only_enum": ({"enum": ["a", 2, True, None]}, Literal["a", 2, True] | None),
    "numbers": ({"enum": [1.5, 2], "const": 1.5}, float),
    "typed_nothing": ({"type": "string", "enum": ["x"], "const": "y"}, Never),
}


def _generated(tmp_path: Path) -> Any:
    properties = {name: schema for name, (schema, _) in FIELDS.items()}
    task = base_task(
        id="t_levels",
        output={"schema": {"type": "object", "properties": properties}, "examples": []},
    )
    folder = tmp_path / "definitions" / "tasks" / "t_levels"
    folder.mkdir(parents=True)
    (folder / "1.0.0.json").write_text(json.dumps(task), encoding="utf-8")
    out = tmp_path / "tasks.py"
    args = ["codegen", "--definitions", str(tmp_path / "definitions"), "--output", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert CliRunner().invoke(main, [*args, "--check"]).exit_code == 0
    spec = importlib.util.spec_from_file_location("generated_levels", out)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_enum_and_const_both_hold_in_the_generated_types(tmp_path: Path) -> None:
    module = _generated(tmp_path)
    hints = typing.get_type_hints(module.TLevelsOutput)
    for name, (_, expected) in FIELDS.items():
        assert hints[name] == expected, name
