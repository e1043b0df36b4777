"""Fixtures for the end-to-end verification tests (defined in :mod:`.support`)."""

from .support import engine_factory, fleet

__all__ = ("engine_factory", "fleet")
