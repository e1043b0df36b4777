"""The driver's ``TLM_*`` variables reach Ray actors with their values, but no repr shows them."""

from __future__ import annotations

import os
import pickle
from functools import partial
from pathlib import Path

import pytest

if os.environ.get("CI", "").lower() != "true":  # in CI a missing Ray fails the run
    pytest.importorskip("ray", reason="Ray batches need the tlm[ray] extra")

import tlm.batch.ray as ray_batch


def test_the_database_password_never_shows_but_reaches_the_actor(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    url = "postgresql://tlm:s3cret-pw@db.internal:5432/tlm"
    monkeypatch.setenv("TLM_DATABASE_URL", url)
    monkeypatch.setenv("TLM_MODELS", "model-a")
    workdir, env = ray_batch.driver_settings()
    factory = partial(ray_batch.default_engine, workdir, env)
    for shown in (repr(env), str(env), repr(factory), str(factory), f"{env}", repr((env,))):
        assert "s3cret" not in shown
    assert "TLM_DATABASE_URL=***" in repr(factory)
    assert dict(env)["TLM_DATABASE_URL"] == url  # the value is all there
    shipped = pickle.loads(pickle.dumps(factory))  # what Ray sends to an actor
    assert shipped.args[1]["TLM_DATABASE_URL"] == url
    assert "s3cret" not in repr(shipped)
    monkeypatch.delenv("TLM_DATABASE_URL")
    os.environ.update(shipped.args[1])  # what default_engine does on the worker
    assert os.environ["TLM_DATABASE_URL"] == url
