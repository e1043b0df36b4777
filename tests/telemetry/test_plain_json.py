"""plain_json (orjson) writes what to_json (the standard library) writes, value for value."""

from __future__ import annotations

import dataclasses
import datetime
import json
from typing import Any

import pytest

from tlm.telemetry.redact import Redaction, plain_json, to_json


@dataclasses.dataclass
class _Point:
    x: int


@pytest.mark.parametrize(
    "value",
    [
        {"a": [1, 2.5, "é ✓ 日本", True, None, {"b": []}], "c": 'line\nbreak "q" \\'},
        [float("nan"), 1],
        {"x": float("inf"), "y": -float("inf")},
        2**70,
        {"lone": "\ud800"},
        {1: "int key"},
        {"when": datetime.datetime(2024, 1, 2, 3, 4, 5)},
        {"point": _Point(1)},
        {"set": {1}},
        (1, "two"),
        "null inside a string",
        {"bytes": b"raw"},
        0.1,
        -0.0,
        {"emoji": "🙂", "control": "\x00\x1f"},
        {"a": None, "b": [None, 1.5, {"c": None}], "d": (None, "null")},
        {"a": None, "b": [1.0, {"c": float("nan")}]},
        [None, (float("-inf"),)],
        {"a": None, "sub": True, "n": -3},
    ],
)
def test_plain_json_writes_the_same_text_as_to_json(value: Any) -> None:
    assert plain_json(value) == to_json(value)


@pytest.mark.parametrize("value", [1e16, 1e-7, {"score": 2.5e-10}, [1e300]])
def test_an_exponent_may_be_written_shorter_but_parses_to_the_same_value(value: Any) -> None:
    assert json.loads(plain_json(value)) == json.loads(to_json(value)) == value


def test_redaction_json_still_masks_fields_values_and_key_shapes() -> None:
    secret = "sk-" + "a1b2c3d4e5f6g7h8i9j0"
    redaction = Redaction(fields=frozenset({"password"}), secrets=("hunter2-secret",))
    text = redaction.json(
        {"password": "pw", "note": f"key {secret}", "other": "hunter2-secret", "n": [1, None]}
    )
    assert secret not in text
    assert "hunter2-secret" not in text
    assert '"pw"' not in text
    assert json.loads(text)["n"] == [1, None]
    assert "[REDACTED]" in text
