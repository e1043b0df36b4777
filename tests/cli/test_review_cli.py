"""``tlm review``: list, show, approve, reject, edit against a real queue file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from tlm.cli import main
from tlm.cli.tasks import scaffold
from tlm.verify.review_queue import ReviewQueue


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def queue(data_dir: Path) -> ReviewQueue:
    return ReviewQueue.in_data_dir(data_dir)


def run(data_dir: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["review", "--data-dir", str(data_dir), *args])


def test_list_shows_pending_reviews(data_dir: Path, queue: ReviewQueue) -> None:
    first = queue.enqueue("exec-1", "job_detail_extraction", "1.0.0", {"q": 1}, {"a": 1})
    second = queue.enqueue("exec-2", "skills", "2.1.0", {}, {}, queue="legal")
    queue.approve(second)

    result = run(data_dir, "list")
    assert result.exit_code == 0, result.output
    assert first in result.output
    assert "job_detail_extraction@1.0.0" in result.output
    assert second not in result.output

    everything = run(data_dir, "list", "--all", "--json")
    rows = [json.loads(line) for line in everything.output.splitlines()]
    assert [(r["id"], r["status"]) for r in rows] == [(first, "pending"), (second, "approved")]

    legal = run(data_dir, "list", "--all", "--queue", "legal", "--json")
    assert [json.loads(line)["id"] for line in legal.output.splitlines()] == [second]
    assert "no pending reviews" in run(data_dir, "list", "--queue", "legal").output


def test_data_dir_from_environment(data_dir: Path, queue: ReviewQueue) -> None:
    review_id = queue.enqueue("e", "t", "1", {}, {})
    result = CliRunner().invoke(main, ["review", "list"], env={"TLM_DATA_DIR": str(data_dir)})
    assert result.exit_code == 0, result.output
    assert review_id in result.output


def test_show_prints_json(data_dir: Path, queue: ReviewQueue) -> None:
    review_id = queue.enqueue("exec-9", "t", "1", {"text": "héllo"}, {"skills": ["x"]})
    result = run(data_dir, "show", review_id[:8])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert shown["id"] == review_id
    assert shown["input"] == {"text": "héllo"}
    assert shown["output"] == {"skills": ["x"]}
    assert "decision" not in shown


def write_task(root: Path, task_id: str = "t") -> Path:
    """A definitions directory with ``task_id`` 1.0.0 whose output is ``{"v": <integer>}``."""
    document = scaffold(task_id)
    document["output"] = {
        "schema": {
            "type": "object",
            "properties": {"v": {"type": "integer"}},
            "required": ["v"],
            "additionalProperties": False,
        },
        "examples": [{"v": 1}],
        "validations": ["has_required_fields"],
    }
    target = root / "tasks" / task_id / "1.0.0.json"
    target.parent.mkdir(parents=True)
    target.write_text(json.dumps(document), encoding="utf-8")
    return root


def test_approve_reject_edit(data_dir: Path, queue: ReviewQueue, tmp_path: Path) -> None:
    a = queue.enqueue("e1", "t", "1.0.0", {}, {"v": 1})
    b = queue.enqueue("e2", "t", "1.0.0", {}, {"v": 2})
    c = queue.enqueue("e3", "t", "1.0.0", {}, {"v": 3})
    d = queue.enqueue("e4", "t", "1.0.0", {}, {"v": 4})
    corrected = tmp_path / "fixed.json"
    corrected.write_text('{"v": 40}', encoding="utf-8")
    definitions = ["--definitions", str(write_task(tmp_path / "defs"))]

    assert run(data_dir, "approve", a, "--note", "looks right").exit_code == 0
    assert run(data_dir, "reject", b, "--note", "wrong salary").exit_code == 0
    assert run(data_dir, *definitions, "edit", c, "--output", '{"v": 30}').exit_code == 0
    edited = run(data_dir, *definitions, "edit", d, "--output", f"@{corrected}", "--note", "n")
    assert edited.exit_code == 0, edited.output

    decisions = {r.id: r.decision for r in queue.list(status=None) if r.decision is not None}
    assert (decisions[a].action, decisions[a].note) == ("approve", "looks right")
    assert (decisions[b].action, decisions[b].note) == ("reject", "wrong salary")
    assert (decisions[c].action, decisions[c].output) == ("edit", {"v": 30})
    assert decisions[d].output == {"v": 40}

    shown = json.loads(run(data_dir, "show", b).output)
    assert shown["decision"]["action"] == "reject"


def test_reject_requires_a_note(data_dir: Path, queue: ReviewQueue) -> None:
    review_id = queue.enqueue("e", "t", "1", {}, {})
    result = run(data_dir, "reject", review_id)
    assert result.exit_code == 2
    assert "--note" in result.output
    assert queue.get(review_id).status == "pending"


def test_errors_are_clear(data_dir: Path, queue: ReviewQueue, tmp_path: Path) -> None:
    review_id = queue.enqueue("e", "t", "1", {}, {})
    missing = run(data_dir, "approve", "doesnotexist")
    assert missing.exit_code == 1
    assert "no review with id 'doesnotexist'" in missing.output

    bad_json = run(data_dir, "edit", review_id, "--output", '{"v": }')
    assert bad_json.exit_code == 2
    assert "invalid JSON at line 1 column 7" in bad_json.output

    bad_file = tmp_path / "bad.json"
    bad_file.write_text("[1,\n2,,]", encoding="utf-8")
    from_file = run(data_dir, "edit", review_id, "--output", f"@{bad_file}")
    assert f"{bad_file}: invalid JSON at line 2" in from_file.output

    assert run(data_dir, "approve", review_id).exit_code == 0
    again = run(data_dir, "reject", review_id, "--note", "late")
    assert again.exit_code == 1
    assert "already approved" in again.output


def test_missing_queue_is_reported_not_created(tmp_path: Path) -> None:
    result = run(tmp_path / "typo", "list")
    assert result.exit_code == 1
    assert "no review queue at" in result.output
    assert not (tmp_path / "typo").exists()


def test_review_is_listed_in_help() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert "review" in result.output
