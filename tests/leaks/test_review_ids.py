"""Issue 12 item 18: ``tlm review`` names exactly one review, and edited output is validated.

A review id is its full id or a prefix of at least 8 characters that matches no other review;
``%`` and ``_`` are plain characters. ``edit`` checks the corrected output against the reviewed
task version's output schema and output rules, and refuses it with located problems.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from tests.leaks.support import KEY_ENV, MODEL, contact_task, write_project
from tlm.cli import main
from tlm.engine import Engine, EngineConfig
from tlm.errors import OutputInvalid
from tlm.store import ExecutionStore, default_db_path
from tlm.testing import FakeOpenAIServer
from tlm.verify.review_queue import (
    MIN_ID_PREFIX,
    AmbiguousReviewId,
    ReviewNotFound,
    ReviewQueue,
)

TASK = "contact_summary"


def run(data_dir: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["review", "--data-dir", str(data_dir), *args])


def rename(queue: ReviewQueue, review_id: str, new_id: str) -> str:
    """Give a review a chosen id (to build colliding prefixes), straight in the SQLite file."""
    with sqlite3.connect(queue.path) as conn:
        conn.execute("UPDATE reviews SET id = ? WHERE id = ?", (new_id, review_id))
    return new_id


@pytest.fixture
def queue(tmp_path: Path) -> ReviewQueue:
    return ReviewQueue.in_data_dir(tmp_path / "data")


@pytest.mark.parametrize("given", ["", " ", "a", "%", "_", "%%%%%%%%", "________", "abc"])
def test_short_or_wildcard_ids_never_decide(tmp_path: Path, queue: ReviewQueue, given: str) -> None:
    only = queue.enqueue("e1", TASK, "1.0.0", {}, {"summary": "s"})
    result = run(tmp_path / "data", "approve", given)
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert "too short" in result.output or "no review with id" in result.output
    assert queue.get(only).status == "pending"


def test_prefix_must_match_exactly_one(tmp_path: Path, queue: ReviewQueue) -> None:
    first = rename(queue, queue.enqueue("e1", TASK, "1.0.0", {}, {}), "abcdef0011111111")
    second = rename(queue, queue.enqueue("e2", TASK, "1.0.0", {}, {}), "abcdef0022222222")
    assert MIN_ID_PREFIX == 8

    ambiguous = run(tmp_path / "data", "approve", "abcdef00")
    assert ambiguous.exit_code == 1
    assert "matches more than one review" in ambiguous.output
    assert first in ambiguous.output
    assert second in ambiguous.output
    short = run(tmp_path / "data", "approve", "abcdef0")
    assert short.exit_code == 1
    assert "at least 8" in short.output
    assert [r.status for r in queue.list(status=None)] == ["pending", "pending"]

    assert run(tmp_path / "data", "approve", "abcdef001").exit_code == 0
    assert queue.get(first).status == "approved"
    assert queue.get(second).status == "pending"
    assert run(tmp_path / "data", "reject", second, "--note", "n").exit_code == 0  # full id

    with pytest.raises(AmbiguousReviewId):
        queue.get("abcdef00")
    with pytest.raises(ReviewNotFound):
        queue.get("abcdef00%")
    assert queue.get("ABCDEF0011111111".lower()).id == first


def test_edit_is_validated_like_model_output(tmp_path: Path, queue: ReviewQueue) -> None:
    task = contact_task()
    task["output"]["validations"] = ["has_required_fields", "non_empty_text"]
    definitions, _ = write_project(tmp_path, "http://127.0.0.1:9/v1", task)
    review_id = queue.enqueue("e1", TASK, "1.0.0", {}, {"summary": "old"})
    data_dir = tmp_path / "data"
    env = {"TLM_DEFINITIONS": str(definitions)}

    def edit(output: str) -> Result:
        return CliRunner().invoke(
            main, ["review", "--data-dir", str(data_dir), "edit", review_id, "--output", output],
            env=env,
        )  # fmt: skip

    wrong = edit('{"answer": 42, "wrong": 1}')
    assert wrong.exit_code == 1
    assert "output: $: 'summary' is a required property" in wrong.output
    assert "Additional properties are not allowed" in wrong.output
    assert "nothing was recorded" in wrong.output
    blank = edit('{"summary": "   "}')  # the schema accepts it; the output rule does not
    assert blank.exit_code == 1
    assert "rule non_empty_text: $.summary is blank" in blank.output
    assert queue.get(review_id).status == "pending"

    good = edit('{"summary": "Call them back."}')
    assert good.exit_code == 0, good.output
    decision = queue.get(review_id).decision
    assert decision is not None
    assert decision.output == {"summary": "Call them back."}


def test_edit_of_an_unknown_task_version_is_refused(tmp_path: Path, queue: ReviewQueue) -> None:
    definitions, _ = write_project(tmp_path, "http://127.0.0.1:9/v1", contact_task())
    review_id = queue.enqueue("e1", TASK, "9.0.0", {}, {"summary": "old"})
    result = CliRunner().invoke(
        main,
        ["review", "--data-dir", str(tmp_path / "data"), "--definitions", str(definitions),
         "edit", review_id, "--output", '{"summary": "x"}'],
    )  # fmt: skip
    assert result.exit_code == 1
    assert "9.0.0" in result.output
    assert queue.get(review_id).status == "pending"


async def test_the_engines_queue_validates_edits_too(tmp_path: Path) -> None:
    async with FakeOpenAIServer() as server:
        task = contact_task(
            verification={"method": "human", "parameters": {}, "fallback_strategy": "fail"}
        )
        definitions, catalog = write_project(tmp_path, server.base_url, task)
        config = EngineConfig(
            definitions_dir=definitions,
            catalog_path=catalog,
            data_dir=tmp_path / "data",
            models=(MODEL,),
            env={KEY_ENV: "k-unused"},
        )
        server.push(json.dumps({"summary": "draft"}))
        async with Engine(config) as engine:
            result = await engine.execute(TASK, {"email": "a@b.c", "note": "n"})
            assert result.status == "pending"
            assert result.verdict is not None
            queue = engine.review_queue
            assert queue is not None
            review_id = result.verdict.details["review_id"]
            with pytest.raises(OutputInvalid) as caught:
                queue.edit(review_id, {"answer": 42, "wrong": 1})
            assert any(p.path == "$" for p in caught.value.problems)
            queue.edit(review_id, {"summary": "final"})
            decided = await engine.wait_for_review(result, timeout_s=5)
    assert decided.output == {"summary": "final"}
    with ExecutionStore(default_db_path(tmp_path / "data")) as store:
        record = store.get(result.execution_id)
    assert record is not None
    assert [f.correct for f in record.feedback] == [True]  # one decision, the valid edit


async def test_a_review_carries_what_its_edit_must_satisfy(tmp_path: Path) -> None:
    """Queued by an engine whose definitions exist only in memory: the CLI, in another process
    with no definitions at all, still checks the edit against the task's output schema."""
    from tlm.definition.loader import parse_definition
    from tlm.definition.registry import DefinitionRegistry

    task = contact_task(
        verification={"method": "human", "parameters": {}, "fallback_strategy": "fail"}
    )
    async with FakeOpenAIServer() as server:
        _, catalog = write_project(tmp_path, server.base_url)
        config = EngineConfig(
            catalog_path=catalog,
            data_dir=tmp_path / "data",
            models=(MODEL,),
            env={KEY_ENV: "k-unused"},
        )
        registry = DefinitionRegistry([parse_definition(json.dumps(task))])
        server.push(json.dumps({"summary": "draft"}))
        async with Engine(config, registry=registry) as engine:
            result = await engine.execute(TASK, {"email": "a@b.c", "note": "n"})
    assert result.verdict is not None
    review_id = result.verdict.details["review_id"]
    empty = tmp_path / "no-definitions"
    empty.mkdir()
    env = {"TLM_DEFINITIONS": str(empty)}
    data_dir = str(tmp_path / "data")

    def edit(output: str) -> Result:
        return CliRunner().invoke(
            main, ["review", "--data-dir", data_dir, "edit", review_id[:8], "--output", output],
            env=env,
        )  # fmt: skip

    refused = edit('{"answer": 42, "wrong": 1}')
    assert refused.exit_code == 1
    assert "'summary' is a required property" in refused.output
    accepted = edit('{"summary": "final"}')
    assert accepted.exit_code == 0, accepted.output
    queue = ReviewQueue.in_data_dir(tmp_path / "data")
    decision = queue.get(review_id).decision
    assert decision is not None
    assert decision.output == {"summary": "final"}


def test_a_queue_from_before_output_specs_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "reviews.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(
            """
            CREATE TABLE reviews (
                id TEXT PRIMARY KEY, execution_id TEXT NOT NULL, task_id TEXT NOT NULL,
                task_version TEXT NOT NULL, queue TEXT NOT NULL, input TEXT NOT NULL,
                output TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'pending',
                created_at REAL NOT NULL, action TEXT, decided_output TEXT, note TEXT,
                reviewer TEXT, decided_at REAL
            );
            CREATE INDEX reviews_status_queue ON reviews (status, queue, created_at);
            INSERT INTO reviews (id, execution_id, task_id, task_version, queue, input, output,
                                 created_at)
            VALUES ('0123456789abcdef', 'e', 't', '1.0.0', 'default', '{}', '{}', 1.0);
            PRAGMA user_version = 1;
            """
        )
    queue = ReviewQueue(path)
    old = queue.get("01234567")
    assert old.output_spec is None
    new = queue.enqueue("e2", TASK, "1.0.0", {}, {}, output_spec={"schema": {}, "validations": []})
    assert queue.get(new).output_spec == {"schema": {}, "validations": []}
