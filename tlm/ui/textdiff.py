"""Two texts side by side, line by line, with what changed marked (for definition versions)."""

from __future__ import annotations

import difflib

import attrs

__all__ = ("DiffRow", "side_by_side")


@attrs.frozen
class DiffRow:
    """One line pair; ``tag`` is ``equal``, ``replace``, ``delete`` or ``insert``."""

    tag: str
    left_no: int | None
    left: str
    right_no: int | None
    right: str


def side_by_side(left: str, right: str, *, context: int | None = None) -> tuple[DiffRow, ...]:
    """The rows of a side-by-side diff; with ``context``, unchanged runs are cut to that many."""
    a, b = left.splitlines(), right.splitlines()
    rows: list[DiffRow] = []
    matcher = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    groups = (
        matcher.get_grouped_opcodes(context) if context is not None else [matcher.get_opcodes()]
    )
    for group in groups:
        if rows:
            rows.append(DiffRow("skip", None, "", None, ""))
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                rows += [
                    DiffRow("equal", i + 1, a[i], j + 1, b[j])
                    for i, j in zip(range(i1, i2), range(j1, j2), strict=True)
                ]
                continue
            for k in range(max(i2 - i1, j2 - j1)):
                i, j = i1 + k, j1 + k
                rows.append(
                    DiffRow(
                        tag if (i < i2 and j < j2) else ("delete" if i < i2 else "insert"),
                        i + 1 if i < i2 else None,
                        a[i] if i < i2 else "",
                        j + 1 if j < j2 else None,
                        b[j] if j < j2 else "",
                    )
                )
    return tuple(rows)
