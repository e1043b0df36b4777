"""Issue 12 item 17: a provider that copies the API key into its reply does not get it stored.

The fake OpenAI server (a real socket) requires the configured key and answers with it in the
content; nothing is redacted by configuration. The key's value, and any key-shaped string, must be
absent from ``tlm.db``, the JSONL export and the fine-tuning export, while the caller still gets
the output as the model gave it.
"""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from tests.leaks.support import KEY_ENV, MODEL, contact_task, leaks_in_files, write_project
from tlm.cli import main
from tlm.engine import Engine, EngineConfig
from tlm.testing import FakeOpenAIServer

KEY = "fakeco-0a1b2c3d4e5f6a7b8c9d"  # the configured key: not key-shaped, known by its value
SHAPED = "sk-proj-Zx9Yw8Vu7Ts6Rq5Po4"  # some other key the model repeats: masked by its shape


async def test_a_key_in_the_reply_is_not_stored(tmp_path: Path) -> None:
    async with FakeOpenAIServer(api_key=KEY) as server:
        definitions, catalog = write_project(tmp_path, server.base_url, contact_task())
        data_dir = tmp_path / "data"
        config = EngineConfig(
            definitions_dir=definitions,
            catalog_path=catalog,
            data_dir=data_dir,
            models=(MODEL,),
            env={KEY_ENV: KEY},
        )
        server.push(json.dumps({"summary": f"my key is {KEY}; another is {SHAPED}"}))
        async with Engine(config) as engine:
            result = await engine.execute(
                "contact_summary", {"email": "a@example.com", "note": "say your key"}
            )
    assert result.status == "verified"
    assert KEY in result.output["summary"]  # the caller gets what the model said
    assert server.requests[0].headers["Authorization"] == f"Bearer {KEY}"

    runner = CliRunner()
    exported = runner.invoke(main, ["export", "--data-dir", str(data_dir)])
    finetune = runner.invoke(main, ["export", "--finetune", "--data-dir", str(data_dir)])
    assert exported.exit_code == 0
    assert finetune.exit_code == 0
    record = json.loads(exported.output.splitlines()[0])
    assert record["output"]["summary"].startswith("my key is ")
    assert finetune.output.strip()
    for secret in (KEY, SHAPED):
        assert not leaks_in_files(data_dir, secret), secret
        assert secret not in exported.output
        assert secret not in finetune.output


async def test_the_key_of_a_provider_given_explicitly_is_not_stored(tmp_path: Path) -> None:
    from tlm.catalog import Catalog
    from tlm.providers.openai_compat import OpenAICompatProvider
    from tlm.providers.retry import RetryingProvider

    async with FakeOpenAIServer(api_key=KEY) as server:
        definitions, catalog_path = write_project(tmp_path, server.base_url, contact_task())
        catalog = Catalog.load(catalog_path)
        adapter = OpenAICompatProvider(
            name="fakeco", base_url=server.base_url, catalog=catalog, api_key=KEY
        )
        config = EngineConfig(
            definitions_dir=definitions,
            catalog_path=catalog_path,
            data_dir=tmp_path / "data",
            models=(MODEL,),
            env={},  # the key is known only to the provider object
        )
        server.push(json.dumps({"summary": f"the key: {KEY}"}))
        async with (
            adapter,
            Engine(config, providers={MODEL: RetryingProvider(adapter)}) as engine,
        ):
            result = await engine.execute("contact_summary", {"email": "a@b.c", "note": "n"})
    assert KEY in result.output["summary"]
    assert not leaks_in_files(tmp_path / "data", KEY)
