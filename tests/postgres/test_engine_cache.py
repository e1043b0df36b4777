"""Engines sharing one result cache through PostgreSQL; a broken cache never fails one."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import psycopg

from tests.engine.conftest import ScriptedModels, reply
from tests.postgres.test_engine import TASK, engine_on
from tlm.store.cache import ResultCache

ROOT = Path(__file__).resolve().parents[2]

OTHER_PROCESS = textwrap.dedent(
    """
    import json, sys
    sys.path.insert(0, sys.argv[1])
    import anyio
    from pathlib import Path
    from tests.engine.conftest import ScriptedModels, reply
    from tests.postgres.test_engine import TASK, engine_on

    async def main() -> None:
        models = ScriptedModels()
        models.handlers["*"] = reply({"title": "from the other process"})
        async with engine_on(sys.argv[2], Path(sys.argv[3]), models) as engine:
            result = await engine.execute(TASK, {"posting": sys.argv[4]})
        print(json.dumps({"hit": result.cache_hit, "output": result.output,
                          "calls": models.calls()}))

    anyio.run(main)
    """
)


def _other_process(pg_url: str, data_dir: Path, posting: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", OTHER_PROCESS, str(ROOT), pg_url, str(data_dir), posting],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    found: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


async def test_engines_in_two_processes_share_one_cache(pg_url: str, tmp_path: Path) -> None:
    models = ScriptedModels()
    models.handlers["*"] = reply({"title": "Chef"})
    async with engine_on(pg_url, tmp_path / "a", models) as engine:
        first = await engine.execute(TASK, {"posting": "Chef wanted"})
        engine.flush()
        assert not first.cache_hit
        assert models.calls() == 1
        # another process (another replica) answers the same input from the shared cache
        other = _other_process(pg_url, tmp_path / "b", "Chef wanted")
        assert other == {"hit": True, "output": {"title": "Chef"}, "calls": 0}
        # and what it cached is a hit here, without a model call
        assert _other_process(pg_url, tmp_path / "c", "Cook wanted")["hit"] is False
        second = await engine.execute(TASK, {"posting": "Cook wanted"})
        assert second.cache_hit
        assert second.output == {"title": "from the other process"}
        assert models.calls() == 1
    assert not (tmp_path / "a" / "cache.db").exists()


async def test_two_engines_in_one_process_see_each_others_cached_results(
    pg_url: str, tmp_path: Path
) -> None:
    models = ScriptedModels()
    models.handlers["*"] = reply({"title": "Chef"})
    async with (
        engine_on(pg_url, tmp_path / "a", models) as first,
        engine_on(pg_url, tmp_path / "b", models) as second,
    ):
        await first.execute(TASK, {"posting": "Chef wanted"})
        first.flush()
        again = await second.execute(TASK, {"posting": "Chef wanted"})
    assert again.cache_hit
    assert again.status == "cached"
    assert models.calls() == 1


async def test_a_cache_failure_never_fails_an_execution(pg_url: str, tmp_path: Path) -> None:
    models = ScriptedModels()
    models.handlers["*"] = reply({"title": "Chef"})
    async with engine_on(pg_url, tmp_path / "a", models) as engine:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute("DROP TABLE result_cache")
        results = [await engine.execute(TASK, {"posting": f"Chef wanted {i}"}) for i in range(3)]
        engine.flush()
        cache = engine._runtime.cache if engine._runtime is not None else None
        assert isinstance(cache, ResultCache)
        assert cache.failures >= 4  # every lookup missed and the stores were skipped
    assert [r.status for r in results] == ["verified"] * 3
    assert all(r.error is None and not r.cache_hit for r in results)
    assert models.calls() == 3
