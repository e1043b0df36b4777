"""A real Arize Phoenix for the interop tests (marked ``interop``: ``pytest -m interop``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .phoenix_env import serve


@pytest.fixture(scope="session")
def phoenix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Phoenix's base URL; it is installed into its own virtualenv first when missing."""
    with serve(tmp_path_factory.mktemp("phoenix")) as url:
        yield url
