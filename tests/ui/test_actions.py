"""What the console writes: feedback, review decisions, new definition versions."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import anyio.lowlevel
from click.testing import CliRunner

from tests.ui.conftest import Site
from tests.ui.support import title_task, write_task
from tlm.cli import main
from tlm.cli.tasks import validate_task
from tlm.verify.review_queue import ReviewQueue


async def test_feedback_is_the_feedback_tlm_feedback_writes(site: Site) -> None:
    execution_id = site.ids[10]
    response = await site.post(
        f"/executions/{execution_id}/feedback",
        {"correct": "incorrect", "score": "0.25", "note": "missed the <location>"},
        headers={"HX-Request": "true"},
    )
    assert response.status == 200
    fragment = await response.text()
    assert "missed the &lt;location&gt;" in fragment
    result = CliRunner().invoke(
        main, ["executions", "show", execution_id, "--json", "--data-dir", str(site.data_dir)]
    )
    assert result.exit_code == 0, result.output
    feedback = json.loads(result.output)["feedback"]
    assert feedback[-1]["correct"] is False
    assert feedback[-1]["score"] == 0.25
    assert feedback[-1]["note"] == "missed the <location>"
    assert feedback[-1]["source"] == "human"


async def test_feedback_needs_something_and_a_finite_score(site: Site) -> None:
    execution_id = site.ids[11]
    htmx = {"HX-Request": "true"}
    empty = await site.post(f"/executions/{execution_id}/feedback", {}, headers=htmx)
    assert "give a mark, a score or a note" in await empty.text()
    nan = await site.post(f"/executions/{execution_id}/feedback", {"score": "nan"}, headers=htmx)
    assert "finite" in await nan.text()
    record = site.console.store.get(execution_id)
    assert record is not None
    assert record.feedback == ()
    missing = await site.post("/executions/nope/feedback", {"note": "x"}, headers=htmx)
    assert missing.status == 404


async def test_approving_a_review_records_the_decision_and_feedback(site: Site) -> None:
    queue = ReviewQueue.in_data_dir(site.data_dir)
    review_id = queue.enqueue(site.ids[20], "title_extraction", "1.0.0", {"posting": "p"},
                              {"title": "Engineer"})  # fmt: skip
    response = await site.post(
        f"/reviews/{review_id}/decide", {"action": "approve", "note": "looks right"},
        headers={"HX-Request": "true"},
    )  # fmt: skip
    assert response.status == 204
    assert response.headers["HX-Redirect"] == "/reviews"
    decision = queue.decision(review_id)
    assert decision is not None
    assert decision.action == "approve"
    assert decision.note == "looks right"
    record = site.console.store.get(site.ids[20])
    assert record is not None
    assert record.feedback[-1].correct is True
    assert record.feedback[-1].note == "review approve: looks right"
    again = await site.post(f"/reviews/{review_id}/decide", {"action": "reject", "note": "x"})
    assert again.status == 400  # already decided


async def test_reject_needs_a_note_and_edit_must_fit_the_output_schema(site: Site) -> None:
    queue = ReviewQueue.in_data_dir(site.data_dir)
    review_id = queue.enqueue(site.ids[21], "title_extraction", "1.0.0", {"posting": "p"},
                              {"title": "Engineer"})  # fmt: skip
    htmx = {"HX-Request": "true"}
    path = f"/reviews/{review_id}/decide"
    no_note = await site.post(path, {"action": "reject"}, headers=htmx)
    assert "needs a note" in await no_note.text()
    not_json = await site.post(path, {"action": "edit", "output": "{nope"}, headers=htmx)
    assert "not valid JSON" in await not_json.text()
    wrong = await site.post(path, {"action": "edit", "output": '{"title": 3}'}, headers=htmx)
    assert "$.title: 3 is not of type &#39;string&#39;" in await wrong.text()
    missing = await site.post(path, {"action": "edit", "output": "{}"}, headers=htmx)
    assert "&#39;title&#39; is a required property" in await missing.text()
    assert queue.decision(review_id) is None
    check = await site.post(f"/reviews/{review_id}/validate", {"output": '{"title": []}'})
    assert "is not of type &#39;string&#39;" in await check.text()
    edited = await site.post(path, {"action": "edit", "output": '{"title": "Staff Engineer"}'})
    assert edited.status == 303
    decision = queue.decision(review_id)
    assert decision is not None
    assert decision.output == {"title": "Staff Engineer"}


async def test_new_reviews_appear_in_the_polled_list(site: Site) -> None:
    before = await (await site.client.get("/reviews/items")).text()
    queue = ReviewQueue.in_data_dir(site.data_dir)
    review_id = queue.enqueue(site.ids[22], "skill_decomposition", "1.0.0", {}, {})
    after = await (await site.client.get("/reviews/items")).text()
    assert review_id not in before
    assert review_id in after


def _cli_problems(definitions: Path, file: Path) -> list[str]:
    result = CliRunner().invoke(validate_task, [str(file), "--definitions", str(definitions)])
    return [line for line in result.output.splitlines() if "problem(s) found" not in line]


async def test_editor_reports_what_validate_task_reports(site: Site, tmp_path: Path) -> None:
    breaking = title_task("title_extraction", {"method": "none"}, version="1.1.0")
    breaking["input"]["schema"]["required"] = ["posting", "language"]
    breaking["input"]["schema"]["properties"]["language"] = {"type": "string"}
    breaking["input"]["examples"] = [{"posting": "p", "language": "en"}]
    text = json.dumps(breaking, indent=2)
    response = await site.post("/tasks/title_extraction/validate", {"document": text})
    fragment = await response.text()
    target = site.definitions / "tasks" / "title_extraction" / "1.1.0.json"
    assert "breaking change without a major version bump (1.0.0 -&gt; 1.1.0)" in fragment
    # the same located lines as `tlm validate-task` on that file
    write_task(site.definitions / "tasks", breaking)
    expected = _cli_problems(site.definitions, target)
    target.unlink()
    assert expected
    for line in expected:
        assert line.replace(">", "&gt;").replace("'", "&#39;") in fragment
    syntax = await site.post("/tasks/title_extraction/validate", {"document": '{"id": '})
    assert "invalid JSON" in await syntax.text()


async def test_saving_refuses_a_breaking_minor_and_accepts_a_major(site: Site) -> None:
    task_dir = site.definitions / "tasks" / "title_extraction"
    breaking = title_task("title_extraction", {"method": "none"}, version="1.1.0")
    del breaking["output"]["schema"]["properties"]["title"]
    breaking["output"]["schema"]["required"] = []
    breaking["output"]["examples"] = [{}]
    refused = await site.post("/tasks/title_extraction/save", {"document": json.dumps(breaking)})
    assert refused.status == 422
    assert "output field &#39;title&#39; was removed" in await refused.text()
    assert not (task_dir / "1.1.0.json").exists()
    existing = title_task("title_extraction", {"method": "none"}, version="1.0.0")
    same = await site.post("/tasks/title_extraction/save", {"document": json.dumps(existing)})
    assert "already exists" in await same.text()
    breaking["version"] = "2.0.0"
    saved = await site.post(
        "/tasks/title_extraction/save", {"document": json.dumps(breaking)},
        headers={"HX-Request": "true"},
    )  # fmt: skip
    assert saved.status == 204
    assert saved.headers["HX-Redirect"] == "/tasks/title_extraction?version=2.0.0"
    assert json.loads((task_dir / "2.0.0.json").read_text())["version"] == "2.0.0"
    page = await (await site.client.get("/tasks/title_extraction/diff?a=1.0.0&b=2.0.0")).text()
    assert "breaking, with a major version bump" in page
    assert "output field &#39;title&#39; was removed" in page


async def test_diff_shows_a_breaking_minor_bump_as_such(site: Site) -> None:
    breaking = title_task("title_extraction", {"method": "none"}, version="1.1.0")
    breaking["input"]["schema"]["properties"]["posting"]["maxLength"] = 10
    breaking["input"]["examples"] = [{"posting": "short"}]
    write_task(site.definitions / "tasks", breaking)
    await anyio.lowlevel.checkpoint()
    page = await (await site.client.get("/tasks/title_extraction/diff?a=1.0.0&b=1.1.0")).text()
    assert "breaking without a major version bump" in page
    assert "input maxLength 10 added" in page
    assert '<tr class="insert">' in page or '<tr class="replace">' in page
