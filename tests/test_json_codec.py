"""tlm.json_codec: orjson's speed with the standard library's answers."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from tlm import json_codec

SAME_AS_STDLIB = [
    '{"a": [1, 2.5, "x", null, true, false], "b": {"c": "é ✓"}}',
    '"\\ud800 lone surrogate escape"',
    "123456789012345678901234567890",
    '{"dup": 1, "dup": 2}',
    "1e400",
    "-0.0",
    b'{"bytes": "utf-8 \xc3\xa9"}',
    '{"x": "' + "y" * 10_000 + '"}',
]


@pytest.mark.parametrize("text", SAME_AS_STDLIB)
def test_loads_returns_what_json_loads_returns(text: str | bytes) -> None:
    got, want = json_codec.loads(text), json.loads(text)
    assert got == want
    assert type(got) is type(want)


def test_loads_reads_nan_like_the_stdlib() -> None:
    assert math.isnan(json_codec.loads('{"v": NaN}')["v"])


@pytest.mark.parametrize("text", ["", "{", '{"a": 1,}', "[1] x", "nul"])
def test_loads_raises_the_stdlib_error(text: str) -> None:
    with pytest.raises(json.JSONDecodeError) as caught:
        json_codec.loads(text)
    with pytest.raises(json.JSONDecodeError) as stdlib:
        json.loads(text)
    assert str(caught.value) == str(stdlib.value)


def test_loads_deep_nesting_is_a_recursion_error_as_before() -> None:
    text = "[" * 100_000 + "]" * 100_000
    with pytest.raises(RecursionError):
        json_codec.loads(text)


@pytest.mark.parametrize(
    "value",
    [
        {"model": "m", "messages": [{"role": "user", "content": "héllo ✓"}], "t": 0.0},
        {"surrogate": "\ud800"},
        {1: "non-string key"},
        {"big": 2**70},
        ("tuple", 1),
    ],
)
def test_dumps_bytes_round_trips(value: Any) -> None:
    body = json_codec.dumps_bytes(value)
    assert isinstance(body, bytes)
    assert json.loads(body) == json.loads(json.dumps(value))


def test_loads_keeps_big_integers_in_bytes_too() -> None:
    assert json_codec.loads(b'{"n": 18446744073709551616}') == {"n": 18446744073709551616}
    assert json_codec.loads("[-9223372036854775809]") == [-9223372036854775809]
