"""Semantic versions and version ranges for task definitions.

Ranges: an exact version (``1.2.0``, ``=1.2.0``), caret (``^1.2``: ``>=1.2.0,<2.0.0``), tilde
(``~1.2.3``: ``>=1.2.3,<1.3.0``), wildcards (``1.x``, ``1.2.*``, ``1``, ``*``) and comparator lists
joined by commas or spaces (``>=1.0,<2``). A pre-release only matches a range that names one.
"""

from __future__ import annotations

import functools
import re

import attrs

__all__ = ("Version", "VersionRange", "parse_version", "parse_range")

_VERSION = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-([0-9A-Za-z.-]+))?(?:\+([0-9A-Za-z.-]+))?$"
)
_PARTIAL = re.compile(r"^v?(\d+|[xX*])(?:\.(\d+|[xX*]))?(?:\.(\d+|[xX*]))?(?:-([0-9A-Za-z.-]+))?$")
_COMPARATOR = re.compile(r"^(>=|<=|>|<|=|\^|~)?\s*(.+)$")


def _prerelease_key(pre: str) -> tuple[tuple[int, int, str], ...]:
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split("."))


@functools.total_ordering
@attrs.frozen(eq=False)
class Version:
    """A semantic version ``MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD]``, ordered by SemVer rules."""

    major: int
    minor: int
    patch: int
    prerelease: str = ""
    build: str = ""

    def _key(self) -> tuple[object, ...]:
        pre = (1, ()) if not self.prerelease else (0, _prerelease_key(self.prerelease))
        return (self.major, self.minor, self.patch, pre)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Version) and self._key() == other._key()

    def __lt__(self, other: Version) -> bool:
        return self._key() < other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.prerelease:
            text += f"-{self.prerelease}"
        if self.build:
            text += f"+{self.build}"
        return text


def parse_version(text: str) -> Version:
    """Parse ``1.2.3[-pre][+build]``; raises ``ValueError`` naming the bad text."""
    match = _VERSION.match(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a semantic version (MAJOR.MINOR.PATCH)")
    major, minor, patch, pre, build = match.groups()
    return Version(int(major), int(minor), int(patch), pre or "", build or "")


_Bound = tuple[str, Version]


def _wild(part: str | None) -> bool:
    return part is None or part in ("x", "X", "*")


def _comparators(op: str, text: str) -> list[_Bound]:
    match = _PARTIAL.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a version")
    major_s, minor_s, patch_s, pre = match.groups()
    if _wild(major_s):
        return []
    major = int(major_s)
    minor = 0 if _wild(minor_s) else int(minor_s)
    patch = 0 if _wild(patch_s) else int(patch_s)
    low = Version(major, minor, patch, pre or "")
    if _wild(minor_s):
        precision = 1
    elif _wild(patch_s):
        precision = 2
    else:
        precision = 3
    next_major = Version(major + 1, 0, 0)
    next_minor = Version(major, minor + 1, 0)
    if op == "^":
        if major > 0 or precision == 1:
            high = next_major
        elif minor > 0 or precision == 2:
            high = next_minor
        else:
            high = Version(0, 0, patch + 1)
        return [(">=", low), ("<", high)]
    if op == "~":
        return [(">=", low), ("<", next_major if precision == 1 else next_minor)]
    if precision == 3:
        return [(op or "=", low)]
    high = next_major if precision == 1 else next_minor
    if op in ("", "="):
        return [(">=", low), ("<", high)]
    if op == ">":
        return [(">=", high)]
    if op == "<=":
        return [("<", high)]
    return [(op, low)]  # ">=" and "<" on a partial version mean its lowest release


@attrs.frozen
class VersionRange:
    """A set of versions; ``version in range`` tests membership."""

    text: str
    bounds: tuple[_Bound, ...]

    def __contains__(self, version: Version) -> bool:
        if version.prerelease and not any(
            v.prerelease
            and (v.major, v.minor, v.patch) == (version.major, version.minor, version.patch)
            for _, v in self.bounds
        ):
            return False
        for op, bound in self.bounds:
            ok = {
                "=": version == bound,
                ">": version > bound,
                ">=": version >= bound,
                "<": version < bound,
                "<=": version <= bound,
            }[op]
            if not ok:
                return False
        return True

    def __str__(self) -> str:
        return self.text


def parse_range(text: str) -> VersionRange:
    """Parse a version range (see the module docstring); raises ``ValueError`` when malformed."""
    parts = [p for p in re.split(r"[,\s]+", text.strip()) if p]
    if not parts:
        raise ValueError("empty version range")
    bounds: list[_Bound] = []
    pending = ""
    for part in parts:
        if part in (">=", "<=", ">", "<", "=", "^", "~"):  # ">= 1.0": operator, then a space
            pending = part
            continue
        match = _COMPARATOR.match(pending + part)
        if match is None:
            raise ValueError(f"{text!r} is not a version range")
        pending = ""
        op, version = match.groups()
        try:
            bounds.extend(_comparators(op or "", version))
        except ValueError:
            raise ValueError(
                f"{text!r} is not a version range: {version!r} is not a version"
            ) from None
    if pending:
        raise ValueError(f"{text!r} is not a version range: {pending!r} has no version")
    return VersionRange(text, tuple(bounds))
