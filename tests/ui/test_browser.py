"""The console in a real browser: Playwright driving Debian's Chromium against ``tlm ui``.

``tlm ui`` runs as a real subprocess on a free 127.0.0.1 port, over a seeded data directory; the
playground and the waiting execution talk to a fake OpenAI-compatible server on a real socket.
Each page is opened and screenshotted into ``docs/ui/`` (the README shows them) and must log no
console error (a CSP violation is one). Without Chromium the tests are skipped, except under CI
(``CI=true``), where that is a failure.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.ui.support import FAKE_MODEL, INJECTION, INJECTION_ID, REPO, make_definitions, seed_data
from tlm.testing import FakeOpenAIServer
from tlm.testing.replies import chat_completion

CHROMIUM = os.environ.get("TLM_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = REPO / "docs" / "ui"
_URL = re.compile(r"TLM console on (http://\S+)")

try:
    from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright
except ImportError:  # pragma: no cover - the test extra installs it
    sync_playwright = None  # type: ignore[assignment]


def _require_browser() -> None:
    problem = None
    if sync_playwright is None:
        problem = "playwright is not installed (pip install -e '.[test]')"
    elif not Path(CHROMIUM).exists():
        problem = f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    if problem is not None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"the browser tests must run in CI: {problem}")
        pytest.skip(problem)


class FakeModelThread:
    """A fake OpenAI-compatible server on its own event loop in a thread."""

    def __init__(self) -> None:
        self.base_url = ""
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    @staticmethod
    def reply(body: dict[str, Any]) -> dict[str, Any]:
        prompt = str(body["messages"][-1]["content"])
        title = "Senior Engineer" if "Senior" in prompt else "Engineer"
        return chat_completion(json.dumps({"title": title}), prompt_tokens=120, completion_tokens=9)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with FakeOpenAIServer(self.reply) as server:
            self.base_url = server.base_url
            self._ready.set()
            await self._stop.wait()

    def __enter__(self) -> FakeModelThread:
        self._thread.start()
        assert self._ready.wait(30), "the fake model server did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


def _tlm(*args: str) -> list[str]:
    return [sys.executable, "-c", "from tlm.cli import main; main()", *args]


class ConsoleProcess:
    """``tlm ui`` in a subprocess; ``url`` is what it printed."""

    def __init__(self, env: dict[str, str], cwd: Path, *extra: str) -> None:
        self.process = subprocess.Popen(
            _tlm("ui", "--port", "0", *extra),
            env=env,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        found = _URL.search(line)
        assert found, f"tlm ui printed {line!r}"
        self.url = found.group(1)
        self.root = self.url.split("?")[0].rstrip("/")

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.communicate(timeout=15)
        except subprocess.TimeoutExpired:  # pragma: no cover
            self.process.kill()
            self.process.communicate()


@pytest.fixture(scope="module")
def environment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    _require_browser()
    root = tmp_path_factory.mktemp("console")
    with FakeModelThread() as fake:
        definitions = make_definitions(root / "definitions", fake.base_url)
        data_dir = root / "data"
        ids = seed_data(data_dir, n=1200)
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
            "TLM_DATA_DIR": str(data_dir),
            "TLM_DEFINITIONS": str(definitions),
            "TLM_CATALOG": str(definitions / "models.json"),
            "TLM_MODELS": FAKE_MODEL,
        }
        env.pop("TLM_UI_TOKEN", None)
        console = ConsoleProcess(env, root)
        try:
            yield {"env": env, "cwd": root, "ids": ids, "url": console.root, "data": data_dir}
        finally:
            console.close()


@pytest.fixture(scope="module")
def browser(environment: dict[str, Any]) -> Iterator[Browser]:
    assert sync_playwright is not None
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    opened = context.new_page()
    errors: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(message.text)

    opened.on("console", on_console)
    opened.on("pageerror", lambda exc: errors.append(str(exc)))
    opened.on("dialog", lambda dialog: errors.append(f"a dialog opened: {dialog.message}"))
    yield opened
    context.close()
    assert errors == [], errors


def _shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


PAGES = (
    ("tasks", "/tasks", "h1"),
    ("task", "/tasks/job_detail_extraction", "text=Prompt variants"),
    ("versions", "/tasks/title_extraction/diff", "table.diff"),
    ("editor", "/tasks/title_extraction/edit", "#editor-problems"),
    ("executions", "/executions", "#executions-table"),
    ("execution", "/executions/{injection}", ".waterfall"),
    ("reviews", "/reviews", "#review-id"),
    ("analysis", "/analysis/job_detail_extraction?period=30d", "#chart-pass-rate canvas"),
    ("workflows", "/workflows", "table.grid"),
    ("workflow", "/workflows/run0000000000001", "table.steps"),
)


@pytest.mark.parametrize(("name", "path", "ready"), PAGES, ids=[p[0] for p in PAGES])
def test_every_page_opens_without_console_errors(
    page: Page, environment: dict[str, Any], name: str, path: str, ready: str
) -> None:
    response = page.goto(environment["url"] + path.format(injection=INJECTION_ID))
    assert response is not None
    assert response.status == 200
    page.wait_for_selector(ready)
    if name == "analysis":
        assert page.locator("canvas").count() >= 3  # the three charts were drawn
    if name == "editor":
        assert "Valid." in page.inner_text("#editor-problems")  # validated on load
    _shot(page, name)


def test_script_injection_renders_inert(page: Page, environment: dict[str, Any]) -> None:
    for path in (f"/executions/{INJECTION_ID}", "/reviews", "/workflows/run0000000000001"):
        page.goto(environment["url"] + path)
        page.wait_for_load_state("load")
        assert page.evaluate("window.__pwned") is None, path
        assert "<script>window.__pwned = 1</script>" in page.inner_text("main"), path
    assert page.locator("img[src=x]").count() == 0


def test_the_editor_validates_as_you_type(page: Page, environment: dict[str, Any]) -> None:
    page.goto(environment["url"] + "/tasks/title_extraction/edit")
    page.wait_for_selector("#editor-problems")
    editor = page.locator("#document")
    draft = json.loads(editor.input_value())
    assert draft["version"] == "1.1.0"  # the draft is the next minor version
    draft["input"]["schema"]["required"] = ["posting", "x"]
    editor.fill(json.dumps(draft, indent=2))
    page.locator("#editor-problems", has_text="$.input.examples[0]: 'x' is a required").wait_for()
    draft["input"]["examples"] = [{"posting": "p", "x": "y"}]
    editor.fill(json.dumps(draft, indent=2))
    page.locator("#editor-problems", has_text="newly required").wait_for()
    problems = page.inner_text("#editor-problems")
    assert "breaking change without a major version bump (1.0.0 -> 1.1.0)" in problems
    assert "$.input.schema.required" in problems


def test_playground_runs_the_task_on_the_fake_server(
    page: Page, environment: dict[str, Any]
) -> None:
    page.goto(environment["url"] + "/tasks/title_extraction/playground")
    page.select_option("#playground-model", FAKE_MODEL)
    page.select_option("#playground-variant", "terse")
    page.click("#playground-run")
    page.wait_for_selector("#playground-output")
    assert json.loads(page.inner_text("#playground-output")) == {"title": "Senior Engineer"}
    facts = page.inner_text("#playground-facts")
    assert FAKE_MODEL in facts
    assert "terse" in facts
    assert "$0.000" in facts
    assert "chat wire-fake" in page.inner_text(".waterfall")  # the model name sent
    _shot(page, "playground")
    link = page.locator("#result a[href^='/executions/']")
    link.click()
    page.wait_for_selector(".waterfall")
    assert "Title only: Senior Engineer wanted in Berlin" in page.inner_text("#execution-prompt")


def test_feedback_given_in_the_browser_is_what_tlm_executions_show_reads(
    page: Page, environment: dict[str, Any]
) -> None:
    execution_id = environment["ids"][30]
    page.goto(f"{environment['url']}/executions/{execution_id}")
    page.check("input[name=correct][value=incorrect]")
    page.fill("#feedback-score", "0.3")
    page.fill("#feedback-note", "the title is <wrong>")
    page.click("#feedback-submit")
    page.wait_for_selector("#feedback-list .note")
    assert "the title is <wrong>" in page.inner_text("#feedback-list")
    shown = subprocess.run(
        _tlm("executions", "show", execution_id, "--json"),
        env=environment["env"],
        cwd=environment["cwd"],
        capture_output=True,
        text=True,
        check=True,
    )
    feedback = json.loads(shown.stdout)["feedback"][-1]
    assert feedback == {
        "source": "human",
        "at": feedback["at"],
        "score": 0.3,
        "correct": False,
        "note": "the title is <wrong>",
    }


def test_approving_a_review_wakes_the_waiting_execution(
    page: Page, environment: dict[str, Any]
) -> None:
    page.goto(environment["url"] + "/reviews")
    page.wait_for_selector("#review-items")
    waiting = subprocess.Popen(
        _tlm("execute", "title_review", "--example", "0", "--json"),
        env=environment["env"],
        cwd=environment["cwd"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # the new review shows up in the list on its own (polling), without a reload
        item = page.locator(".queue-list a", has_text="title_review")
        item.wait_for(timeout=60_000)
        assert waiting.poll() is None  # still waiting for a person
        item.click()
        page.wait_for_selector("#review-id")
        assert "title_review" in page.inner_text("#review-current h2")
        page.keyboard.press("a")  # the approve shortcut
        page.locator(".queue-list a", has_text="title_review").wait_for(state="detached")
        out, err = waiting.communicate(timeout=60)
    finally:
        if waiting.poll() is None:
            waiting.kill()
    assert waiting.returncode == 0, err
    result = json.loads(out)
    assert result["status"] == "verified"
    assert result["verification"] == {"method": "human", "passed": True, "confidence": 1.0}
    page.goto(environment["url"] + "/executions?task=title_review")
    row = page.locator("#executions-table tbody tr").first
    assert "pass" in row.inner_text()
    row.locator("a").first.click()
    details = page.inner_text("#verification-details")
    assert '"action": "approve"' in details


def test_a_token_console_refuses_requests_without_the_token(
    browser: Browser, environment: dict[str, Any]
) -> None:
    env = {**environment["env"], "TLM_UI_TOKEN": "browser-test-token-1234567890"}
    console = ConsoleProcess(env, environment["cwd"], "--require-token")
    context = browser.new_context()  # refusals log console errors here, on purpose
    page = context.new_page()
    try:
        assert console.url.endswith("?token=browser-test-token-1234567890")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(console.root + "/executions", timeout=10)
        refused.value.close()  # the error holds the response's socket
        assert refused.value.code == 401
        bare = page.goto(console.root + "/tasks")
        assert bare is not None
        assert bare.status == 401
        entered = page.goto(console.url)
        assert entered is not None
        assert entered.status == 200
        assert page.url == console.root + "/tasks"  # the token left the address bar
        assert "title_extraction" in page.inner_text("main")
        posted = page.evaluate(
            """async (id) => (await fetch('/executions/' + id + '/feedback',
                 {method: 'POST', body: new URLSearchParams({note: 'x'})})).status""",
            INJECTION_ID,
        )
        assert posted == 403  # the token alone is not enough to write: CSRF
    finally:
        context.close()
        console.close()
    assert INJECTION  # the same seeded data served both consoles


def test_filters_update_the_list_in_place_and_pages_go_older(
    page: Page, environment: dict[str, Any]
) -> None:
    page.goto(environment["url"] + "/executions")
    first_page = page.locator("#executions-table tbody tr").first.inner_text()
    page.select_option("select[name=verdict]", "fail")
    page.wait_for_url("**/executions?*verdict=fail*")  # htmx pushed the filtered address
    page.locator("#executions-table tbody tr").first.wait_for()
    verdicts = page.locator("#executions-table tbody tr td:nth-child(6)").all_inner_texts()
    assert verdicts
    assert set(verdicts) == {"fail"}
    page.click("#older")
    page.wait_for_url("**after=*")
    older = page.locator("#executions-table tbody tr td:nth-child(6)").all_inner_texts()
    assert older
    assert set(older) == {"fail"}
    assert page.locator("#executions-table tbody tr").first.inner_text() != first_page
    page.goto(environment["url"] + "/analysis/job_detail_extraction?period=7d")
    page.select_option("#analysis-period", "30d")
    page.wait_for_url("**/analysis/job_detail_extraction?period=30d")
    page.select_option("#analysis-task", "skill_decomposition")
    page.wait_for_url("**/analysis/skill_decomposition?period=30d")
    assert "skill_decomposition" in page.inner_text("h1")
