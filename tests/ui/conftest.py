"""Fixtures for the console's handler tests: a seeded data directory and an aiohttp test client."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import attrs
import pytest
from aiohttp.test_utils import TestClient, TestServer

from tests.ui.support import FAKE_MODEL, make_definitions, seed_data
from tlm.engine.config import load_config
from tlm.ui.app import create_app
from tlm.ui.security import Guard
from tlm.ui.state import Console

_CSRF = re.compile(r'name="csrf_token" value="([0-9a-f]+)"')


@attrs.define
class Site:
    """A console under test: its client, directories and the ids it was seeded with."""

    client: TestClient[Any, Any]
    console: Console
    data_dir: Path
    definitions: Path
    ids: list[str]

    @property
    def origin(self) -> str:
        return str(self.client.make_url("/")).rstrip("/")

    async def csrf(self, path: str = "/tasks/title_extraction/edit") -> str:
        """The CSRF token of this client's session (read from a page's form)."""
        response = await self.client.get(path)
        found = _CSRF.search(await response.text())
        assert found is not None, "the page has no CSRF field"
        return found.group(1)

    async def post(self, path: str, data: dict[str, str], **kwargs: Any) -> Any:
        """A same-origin form POST with the session's CSRF token."""
        token = await self.csrf()
        headers = {"Origin": self.origin, **kwargs.pop("headers", {})}
        return await self.client.post(
            path, data={"csrf_token": token, **data}, headers=headers, allow_redirects=False,
            **kwargs,
        )  # fmt: skip


@pytest.fixture
def seeded(tmp_path: Path) -> tuple[Path, Path, list[str]]:
    data_dir = tmp_path / "data"
    definitions = make_definitions(tmp_path / "definitions")
    return data_dir, definitions, seed_data(data_dir)


def make_console(data_dir: Path, definitions: Path) -> Console:
    config = load_config(
        env={"TLM_MODELS": FAKE_MODEL},
        data_dir=data_dir,
        definitions=definitions,
        catalog=definitions / "models.json",
    )
    return Console(config)


@pytest.fixture
async def site(seeded: tuple[Path, Path, list[str]]) -> AsyncIterator[Site]:
    data_dir, definitions, ids = seeded
    console = make_console(data_dir, definitions)
    async with TestClient(TestServer(create_app(console, Guard()))) as client:
        yield Site(client, console, data_dir, definitions, ids)
