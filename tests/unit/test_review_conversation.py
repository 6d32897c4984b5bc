"""The review app's row page shows a tool-use record as a conversation (issue 24 §4): the
request, the assistant's calls (tool name, arguments), each result with the call it answers,
and the final answer, from a real apigen run and from an agent-style record; a candidate
rejected before execution shows its calls as not executed. Starlette's TestClient, no model."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="the review extra (starlette) is not installed")
from starlette.testclient import TestClient  # noqa: E402

from synthloom.review.app import create_app  # noqa: E402
from synthloom.review.conversation import conversation  # noqa: E402
from tests.support.runs import read_jsonl  # noqa: E402
from tests.unit.test_export_tooluse import apigen_run  # noqa: E402

PAYLOAD = "<script>alert(1)</script>"


def section(page: str) -> str:
    """The row page's conversation, as text (tags removed, entities decoded, spaces folded)."""
    body = page.split("<h2>Conversation</h2>", 1)[1].split("<h2>Columns</h2>", 1)[0]
    return fold(html.unescape(re.sub(r"<[^>]+>", " ", body)))


def fold(text: str) -> str:
    return " ".join(text.split())


def test_apigen_rows_show_calls_and_results_as_turns(tmp_path: Path) -> None:
    run = apigen_run(tmp_path)
    client = TestClient(create_app(run))
    records = read_jsonl(run / "data.jsonl")
    parallel = next(i for i, r in enumerate(records) if len(r["tool_calls"]) == 2)
    record = records[parallel]
    page = client.get(f"/row/{parallel + 1}")
    assert page.status_code == 200
    text = section(page.text)
    assert record["query"] in text
    assert text.count("calls ") == 2 and text.count("result of") == 2
    for call, result in zip(record["tool_calls"], record["tool_results"], strict=True):
        assert f"calls {call['name']}" in text and call["id"] in text
        assert fold(json.dumps(call["arguments"], indent=2)) in text
        assert f"result of {call['name']} ({call['id']})" in text
        assert fold(json.dumps(result["content"], indent=2)) in text
    # Turns in order: the request, the calls, then their results.
    assert text.index(record["query"]) < text.index("calls ") < text.index("result of")
    irrelevance = next(i for i, r in enumerate(records) if r["kind"] == "irrelevance")
    text = section(client.get(f"/row/{irrelevance + 1}").text)
    assert records[irrelevance]["answer"] in text and "calls " not in text


def test_agent_turns_final_answer_escaping_and_unexecuted_calls(tmp_path: Path) -> None:
    messages = [
        {"role": "user", "content": "Refund order 7"},
        {"role": "assistant", "content": "Looking it up.", "tool_calls": [
            {"id": "c1", "type": "function",
             "function": {"name": "get_order", "arguments": '{"order_id": 7}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": f'{{"note": "{PAYLOAD}"}}'},
        {"role": "assistant", "content": "Refunded."}]
    rejected = {"query": "Add two numbers", "tool_calls": [
        {"id": "call_0", "name": "add", "arguments": {"a": 1}}], "answer": "",
        "reject_reason": "format: bad", "_meta": {"id": "d"}}
    (tmp_path / "data.jsonl").write_text(json.dumps(
        {"messages": messages, "_meta": {"id": "a"}}) + "\n")
    (tmp_path / "dropped.jsonl").write_text(json.dumps(
        {"id": "d", "step": "verified", "reason": "format: bad", "record": rejected}) + "\n")
    client = TestClient(create_app(tmp_path))
    page = client.get("/row/1")
    assert PAYLOAD not in page.text and "&lt;script&gt;" in page.text
    text = section(page.text)
    assert "Looking it up." in text and "calls get_order" in text
    assert '"order_id": 7' in text and "result of get_order (c1)" in text  # named by its call
    assert text.rindex("Refunded.") > text.index("result of")
    dropped = section(client.get("/row/2").text)
    assert "Add two numbers" in dropped and "calls add" in dropped
    assert "(not executed)" in dropped
    # A record without turns or calls has no conversation section.
    assert conversation({"instruction": "x", "response": "y"}) is None
