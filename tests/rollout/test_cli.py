"""One task through replay → canary → promotion with the ``tlm`` commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
from anyio.from_thread import start_blocking_portal
from click.testing import CliRunner, Result

from tlm.cli import main
from tlm.engine import Engine
from tlm.engine.config import load_config
from tlm.testing import FakeOpenAIServer

from .support import NONE, TASK, Behaviour, posting, write_project


def cli(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def traffic(env: dict[str, str], inputs: range) -> list[str]:
    """Unpinned executions through an engine configured like a service; their versions."""

    async def go() -> list[str]:
        config = load_config(env=env)
        async with Engine(config) as service:
            assert service.rollouts is not None
            service.rollouts.check_every = 5
            return [(await service.execute(TASK, posting(i))).task_version for i in inputs]

    return anyio.run(go)


def test_replay_then_canary_then_promotion(tmp_path: Path) -> None:
    replay_canary_promotion(tmp_path, {})


def replay_canary_promotion(tmp_path: Path, more_env: dict[str, str]) -> None:
    """The whole flow; ``more_env`` adds settings (``TLM_DATABASE_URL``: on PostgreSQL)."""
    behaviour = Behaviour()
    server = FakeOpenAIServer(behaviour)
    with start_blocking_portal() as portal, portal.wrap_async_context_manager(server):
        definitions = write_project(tmp_path, server, NONE)
        data_dir = tmp_path / ".tlm"
        env = {
            "TLM_DEFINITIONS": str(definitions),
            "TLM_MODELS": "model-a",
            "TLM_DATA_DIR": str(data_dir),
            "TLM_CONFIG": str(tmp_path / "absent.toml"),
            **more_env,
        }
        # History on 1.0.0, approved by a person with `tlm feedback`.
        for i in range(6):
            done = cli(env, "execute", TASK, "--version", "1.0.0", "--input",
                       json.dumps(posting(i)), "--json")  # fmt: skip
            assert done.exit_code == 0, done.output
            execution_id = json.loads(done.stdout)["execution_id"]
            assert cli(env, "feedback", execution_id, "--correct").exit_code == 0

        replayed = cli(env, "eval", f"{TASK}@1.1.0", "--against", f"{TASK}@1.0.0", "--since",
                       "1d", "--max-cost", "1")  # fmt: skip
        assert replayed.exit_code == 0, replayed.output
        assert "RECOMMENDED: as good within the margin and cheaper" in replayed.output
        run_id = replayed.output.split()[1]
        shown = cli(env, "eval", "show", run_id[:10], "--json")
        assert shown.exit_code == 0, shown.output
        report: dict[str, Any] = json.loads(shown.output)
        assert report["recommended"] is True
        assert report["new"]["compared"] == report["new"]["agreed"] == 6
        assert run_id[:12] in cli(env, "eval", "list", TASK).output

        started = cli(env, "rollout", "start", f"{TASK}@1.1.0", "--share", "50%",
                      "--min-samples", "10", "--min-rollback-samples", "5")  # fmt: skip
        assert started.exit_code == 0, started.output
        assert "50% of title_extraction inputs to 1.1.0, the rest to 1.0.0" in started.output
        running = cli(env, "rollout", "status", TASK)
        assert "running" in running.output
        assert "now: would hold" in running.output

        versions = traffic(env, range(100, 300))
        assert set(versions) == {"1.0.0", "1.1.0"}
        status = cli(env, "rollout", "status", TASK, "--json")
        entry = json.loads(status.output)[0]
        assert entry["state"] == "promoted", status.output
        assert entry["live_version"] == "1.1.0"
        promote = entry["decisions"][-1]
        assert promote["action"] == "promote"
        assert promote["evidence"]["new"]["judged"] >= 10
        assert traffic(env, range(400, 410)) == ["1.1.0"] * 10

        pinned = cli(env, "rollout", "pin", f"{TASK}@1.0.0")
        assert pinned.exit_code == 0, pinned.output
        assert traffic(env, range(500, 505)) == ["1.0.0"] * 5

    assert cli(env, "rollout", "abort", TASK).exit_code == 1  # nothing running any more
    bad = cli(env, "rollout", "start", f"{TASK}@1.1.0", "--share", "150%")
    assert bad.exit_code == 2
    assert "the share must be above 0% and below 100%" in bad.output
