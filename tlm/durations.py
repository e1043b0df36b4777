"""Durations and points in time as people type them: ``7d``, ``12h``, ``30m``, ``2w``, ``45s``, or
an ISO 8601 date. Shared by the CLI's ``--since``/``--period`` options and the web console."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

__all__ = ("OutOfRange", "parse_duration", "parse_since")

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str) -> timedelta:
    """``7d``, ``12h``, ``30m``, ``2w`` or ``45s`` as a duration."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a duration like 7d, 12h, 30m or 2w")
    try:
        return timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})
    except OverflowError:
        raise OutOfRange(f"{text.strip()} is longer than any date can reach back") from None


def parse_since(text: str, *, now: datetime | None = None) -> datetime:
    """``7d``/``12h``/``30m``/``2w``/``45s`` ago, or an ISO 8601 date or time (UTC if naive)."""
    if _DURATION.match(text):
        duration = parse_duration(text)
        try:
            return (now or datetime.now(UTC)) - duration
        except OverflowError:
            raise OutOfRange(f"{text.strip()} ago is before the year 1") from None
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{text!r} is neither a duration like 7d, 12h, 30m nor an ISO 8601 date"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


class OutOfRange(ValueError):
    """A well-formed duration or date that no date can represent."""
