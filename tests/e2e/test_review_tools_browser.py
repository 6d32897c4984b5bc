"""A tool-use record in the review app in a real browser (issue 24 §4): ``synthloom review``
serves an apigen run (made with the ScriptedTestBackend, no model), headless Chromium opens a
record with parallel calls and sees the conversation as turns: the request, the assistant's
two calls with their arguments, and one result turn per call naming it."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette", reason="the review extra (starlette) is not installed")
pytest.importorskip("uvicorn", reason="the review extra (uvicorn) is not installed")
sync_api = pytest.importorskip("playwright.sync_api",
                               reason="playwright not installed (extra: test)")

from tests.support.runs import read_jsonl  # noqa: E402
from tests.unit.test_export_tooluse import apigen_run  # noqa: E402

CHROMIUM = next((p for p in (os.environ.get("SYNTHLOOM_CHROMIUM"), shutil.which("chromium"),
                             shutil.which("chromium-browser")) if p), None)
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (Debian: apt-get install "
                                                "chromium; or set SYNTHLOOM_CHROMIUM)"),
]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Made before the browser starts: Playwright's sync API holds an event loop, the run
    # needs its own.
    return apigen_run(tmp_path_factory.mktemp("apigen"))


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as pw:
        # Root in a container has no user namespaces for Chromium's own sandbox.
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                      args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield chromium
        chromium.close()


def test_tool_calls_and_results_show_as_turns(run: Path, browser: Any) -> None:
    from tests.e2e.test_review_browser import ReviewServer

    records = read_jsonl(run / "data.jsonl")
    n = next(i for i, r in enumerate(records) if len(r["tool_calls"]) == 2) + 1
    record = records[n - 1]
    server = ReviewServer(run)
    try:
        page = browser.new_page()
        page.goto(server.entry)  # the token sets the session cookie
        page.goto(f"{server.url}/row/{n}")
        turns = page.locator(".conversation .turn")
        roles = [turns.nth(i).get_attribute("class").split("role-")[1]
                 for i in range(turns.count())]
        assert roles == ["user", "assistant", "tool", "tool"]
        assert record["query"] in turns.nth(0).inner_text()
        calls = page.locator(".turn.role-assistant .tool-call")
        assert calls.count() == 2
        for i, call in enumerate(record["tool_calls"]):
            shown = calls.nth(i).inner_text()
            assert call["name"] in shown and call["id"] in shown
            assert json.loads(calls.nth(i).locator("pre").inner_text()) == call["arguments"]
            result = turns.nth(2 + i).inner_text()
            assert f"result of {call['name']} ({call['id']})" in result
            assert json.dumps(record["tool_results"][i]["content"]) in result
        assert page.locator(".turn.role-tool").first.is_visible()
    finally:
        server.stop()
