"""Review web UI (issue 14): the Starlette app over a run folder, with Starlette's TestClient
and a real SQLite index; the run folder is written by the test (no model needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="the review extra (starlette) is not installed")
pytest.importorskip("multipart", reason="python-multipart (form posts) is not installed")
from starlette.testclient import TestClient  # noqa: E402

from synthloom.review.app import create_app  # noqa: E402

PAYLOAD = "<script>alert(1)</script>"


def _run(tmp_path: Path, n: int = 120) -> Path:
    recs = [{"instruction": f"{PAYLOAD} question {i}", "response": f"answer {i}",
             "judge_score": i % 5, "api_key": "sk-secretsecretsecret1234",
             "_meta": {"id": f"id{i}", "parents": [f"p{i}"], "step": "response",
                       "source": {"id": "s", "path": str(tmp_path / "doc.txt"),
                                  "char_start": 6, "char_end": 18}}} for i in range(n)]
    (tmp_path / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    (tmp_path / "doc.txt").write_text(f"hello {PAYLOAD} and more")
    (tmp_path / "dropped.jsonl").write_text(json.dumps(
        {"id": "x", "step": "short", "reason": f"too short {PAYLOAD}", "record": recs[0]}) + "\n")
    (tmp_path / "summary.json").write_text(json.dumps({"recipe": "t", "steps": [
        {"name": "a", "kind": "map", "in": 3, "out": 2, "failed": 1, "dropped": 0}]}))
    return tmp_path


def test_pages_escape_payloads_and_hide_keys(tmp_path: Path) -> None:
    client = TestClient(create_app(_run(tmp_path)))
    for url in ["/", "/records/records", "/records/dropped", "/row/1", "/row/121"]:
        page = client.get(url)
        assert page.status_code == 200, url
        assert PAYLOAD not in page.text, url
        assert "sk-secret" not in page.text, url
    assert "&lt;script&gt;" in client.get("/row/1").text


def test_filters_and_pagination(tmp_path: Path) -> None:
    client = TestClient(create_app(_run(tmp_path)))
    assert "120 rows" in client.get("/records/records").text
    assert client.get("/records/records?page=3").text.count('class="open"') == 20
    assert "24 rows" in client.get("/records/records?score_min=4").text
    assert "1 rows" in client.get("/records/records?q=question+7&score_min=2").text


def test_decisions_survive_restart(tmp_path: Path) -> None:
    run = _run(tmp_path)
    client = TestClient(create_app(run))
    done = client.post("/row/2/decide", data={"status": "rejected", "note": "bad",
                                              "edit:response": "new"})
    assert done.status_code == 200
    again = TestClient(create_app(run))
    assert "1 rows" in again.get("/records/records?decision=rejected").text
    assert "rejected" in again.get("/row/2").text
    refused = again.post("/row/3/decide", data={"status": "accepted"},
                         headers={"origin": "http://evil.example"})
    assert refused.status_code == 403


def test_unchanged_textareas_are_no_edit(tmp_path: Path) -> None:
    """A browser posts every textarea back, with CRLF line breaks: only a real change is an
    edit, and the form keeps a value's leading newline (HTML drops one after <textarea>)."""
    run = _run(tmp_path, n=3)
    rec = json.loads((run / "data.jsonl").read_text().splitlines()[0])
    rec["response"] = "\nfirst line\nsecond line"
    (run / "data.jsonl").write_text(json.dumps(rec) + "\n")
    client = TestClient(create_app(run))
    assert '<textarea name="edit:response" rows="4">\n\nfirst line' in client.get("/row/1").text
    client.post("/row/1/decide", data={"status": "accepted",
                                        "edit:response": "\r\nfirst line\r\nsecond line",
                                        "edit:instruction": rec["instruction"]})
    decision = json.loads((run / "review" / "decisions.jsonl").read_text())
    assert decision["status"] == "accepted" and decision["edits"] == {}


def test_bulk_decisions_and_the_not_reviewed_filter(tmp_path: Path) -> None:
    run = _run(tmp_path)
    client = TestClient(create_app(run))
    assert "120 rows" in client.get("/records/records?decision=pending").text
    done = client.post("/records/records/decide",
                       data={"status": "rejected", "note": "bulk", "n": ["1", "2", "3"],
                             "back": "/records/records?step=response&page=2"},
                       follow_redirects=False)
    assert done.status_code == 303
    assert done.headers["location"] == "/records/records?step=response&page=2"
    assert "3 rows" in client.get("/records/records?decision=rejected").text
    assert "117 rows" in client.get("/records/records?decision=pending").text
    assert "— bulk" in client.get("/records/records?decision=rejected").text
    # Set back to undecided: "not reviewed" again.
    client.post("/records/records/decide", data={"status": "pending", "n": ["2"]})
    assert "118 rows" in client.get("/records/records?decision=pending").text
    # Never an open redirect; rows of another file are not decided through this one.
    away = client.post("/records/records/decide",
                       data={"status": "accepted", "n": ["121"], "back": "https://evil.example/"},
                       follow_redirects=False)
    assert away.headers["location"] == "/records/records"
    assert "0 rows" in client.get("/records/records?decision=accepted").text
    refused = client.post("/records/records/decide", data={"status": "accepted", "n": ["5"]},
                          headers={"origin": "http://evil.example"})
    assert refused.status_code == 403


def test_record_page_walks_the_file(tmp_path: Path) -> None:
    client = TestClient(create_app(_run(tmp_path)))
    page = client.get("/row/2").text
    assert 'href="/row/1" id="prev-row"' in page and 'href="/row/3" id="next-row"' in page
    assert 'id="prev-row"' not in client.get("/row/1").text
    assert 'id="next-row"' not in client.get("/row/120").text  # the last record of data.jsonl
    moved = client.post("/row/5/decide", data={"status": "accepted", "then_next": "1"},
                        follow_redirects=False)
    assert moved.headers["location"] == "/row/6"
    stay = client.post("/row/7/decide", data={"status": "accepted"}, follow_redirects=False)
    assert stay.headers["location"] == "/row/7"


def test_token_gate(tmp_path: Path) -> None:
    client = TestClient(create_app(_run(tmp_path), token="t0k3n", cookie="c"))
    assert client.get("/records/records").status_code == 401
    assert client.get("/row/1?token=wrong").status_code == 401
    entry = client.get("/records/records?step=response&token=t0k3n", follow_redirects=False)
    assert entry.status_code == 303
    assert entry.headers["location"] == "/records/records?step=response"
    assert "httponly" in entry.headers["set-cookie"].lower()
    assert "samesite=strict" in entry.headers["set-cookie"].lower()
    assert client.get("/records/records").status_code == 200  # the cookie from now on
    assert client.get("/static/style.css").status_code == 200
    other = TestClient(create_app(tmp_path, token="other", cookie="c"))
    other.cookies.set("c", "t0k3n")
    assert other.get("/").status_code == 401


def test_redacted_values_are_not_editable(tmp_path: Path) -> None:
    """A value shown redacted cannot be edited: posting the form back must not write the
    redaction mark over the real value."""
    run = _run(tmp_path, n=2)
    client = TestClient(create_app(run))
    page = client.get("/row/1").text
    assert 'name="edit:api_key"' not in page and 'name="edit:response"' in page
    client.post("/row/1/decide", data={"status": "accepted", "edit:api_key": "•••redacted•••",
                                        "edit:response": "answer 0"})
    decision = json.loads((run / "review" / "decisions.jsonl").read_text())
    assert decision["edits"] == {}
