"""Ray for the batch tests: one local instance per test session (2 CPUs, no dashboard)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def ray_session() -> Iterator[Any]:
    """``ray.init(num_cpus=2, include_dashboard=False)``; its workers import this checkout's
    ``tlm`` and ``tests``. Ray is required in CI (``CI=true``): there a missing Ray fails."""
    if os.environ.get("CI", "").lower() == "true":
        import ray
    else:
        ray = pytest.importorskip("ray", reason="Ray batches need the tlm[ray] extra")
    from tests.batch.support import KEY

    previous = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), previous]))
    # As on a real cluster, the provider key lives in the workers' environment (a driver
    # connecting with `tlm batch --ray ADDRESS` sends only its TLM_* settings).
    had_key = "BATCH_TEST_KEY" in os.environ
    os.environ["BATCH_TEST_KEY"] = KEY
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()
        if not had_key:
            os.environ.pop("BATCH_TEST_KEY", None)
        if previous is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = previous
