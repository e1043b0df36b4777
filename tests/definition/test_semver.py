"""Semantic versions and ranges."""

from __future__ import annotations

import pytest

from tlm.definition import parse_range, parse_version

VERSIONS = ["0.1.0", "1.0.0", "1.2.0", "1.2.3", "1.3.0", "1.10.0", "2.0.0-rc.1", "2.0.0"]


def test_versions_order_numerically_and_prereleases_first() -> None:
    shuffled = ["1.10.0", "2.0.0", "0.1.0", "1.2.3", "2.0.0-rc.1", "1.3.0", "1.0.0", "1.2.0"]
    assert [str(v) for v in sorted(parse_version(v) for v in shuffled)] == VERSIONS
    assert parse_version("1.0.0-alpha") < parse_version("1.0.0-alpha.1") < parse_version("1.0.0")
    assert parse_version("1.0.0+build.5") == parse_version("1.0.0")


RANGES = {
    "1.2.0": ["1.2.0"],
    "=1.2.3": ["1.2.3"],
    "^1.2": ["1.2.0", "1.2.3", "1.3.0", "1.10.0"],
    "^0.1": ["0.1.0"],
    "~1.2.3": ["1.2.3"],
    "~1.2": ["1.2.0", "1.2.3"],
    ">=1.0,<2": ["1.0.0", "1.2.0", "1.2.3", "1.3.0", "1.10.0"],
    ">= 1.0 < 1.3": ["1.0.0", "1.2.0", "1.2.3"],
    "1.x": ["1.0.0", "1.2.0", "1.2.3", "1.3.0", "1.10.0"],
    "1.2.*": ["1.2.0", "1.2.3"],
    "*": ["0.1.0", "1.0.0", "1.2.0", "1.2.3", "1.3.0", "1.10.0", "2.0.0"],
    ">1.2": ["1.3.0", "1.10.0", "2.0.0"],
    "<=1.2": ["0.1.0", "1.0.0", "1.2.0", "1.2.3"],
    "2.0.0-rc.1": ["2.0.0-rc.1"],
}


@pytest.mark.parametrize(("text", "expected"), RANGES.items(), ids=RANGES.keys())
def test_ranges(text: str, expected: list[str]) -> None:
    wanted = parse_range(text)
    assert [v for v in VERSIONS if parse_version(v) in wanted] == expected


@pytest.mark.parametrize("text", ["", "abc", ">=", "^a.b", "1.2.3.4", ">=1.0,<y"])
def test_bad_ranges_raise_value_error(text: str) -> None:
    with pytest.raises(ValueError, match="version"):
        parse_range(text)


@pytest.mark.parametrize("text", ["1.0", "v1.0.0", "01.0.0", "1.0.0-", ""])
def test_bad_versions_raise_value_error(text: str) -> None:
    with pytest.raises(ValueError, match="not a semantic version"):
        parse_version(text)
