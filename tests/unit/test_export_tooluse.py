"""Tool-use exports (issue 24 §4) from a real ``apigen`` run (the ScriptedTestBackend plays
query writer, caller and judge; the calls run through the library): ``messages`` with
``tool_calls``/``tool`` turns and ``tools``, ShareGPT with ``function_call``/``observation``
turns for LLaMA-Factory, Hermes ``<tool_call>`` text; each export parsed back gives the
record's calls and results, and ``--for`` picks a format that keeps them."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from synthloom.core.recipe import Recipe
from synthloom.export.formats import ExportOptions, export
from synthloom.export.tooluse import (
    calls_in_hermes,
    calls_in_messages,
    calls_in_sharegpt,
    results_in_hermes,
)
from synthloom.llm.types import LLMRequest
from tests.support.runs import read_jsonl, run_scripted
from tests.support.scripted_backend import ScriptedTestBackend

#: Good arguments per math tool, and a second set for a parallel call.
GOOD = {"add": [{"a": 2, "b": 3}, {"a": 7, "b": 1}],
        "multiply": [{"a": 2, "b": 4}, {"a": 3, "b": 3}],
        "power": [{"base": 2, "exponent": 3}, {"base": 3, "exponent": 2}],
        "sqrt": [{"x": 16}, {"x": 81}], "gcd": [{"a": 12, "b": 18}, {"a": 9, "b": 6}],
        "factorial": [{"n": 5}, {"n": 3}]}
_LISTED = re.compile(r"^- (\w+):", re.MULTILINE)


def play(request: LLMRequest, seed: int | None) -> str:
    """Query writer: names the tools the kind wants; caller: calls them with good arguments
    (twice for "twice"); judge: passes."""
    text = "\n".join(str(m.get("content")) for m in request.messages or [])
    if '"query"' in text:
        names = _LISTED.findall(text)
        if "none of these tools" in text:
            return json.dumps({"query": "What is the weather in Oslo tomorrow?"})
        if "two or three times" in text:
            return json.dumps({"query": f"Please use {names[0]} twice."})
        if "two or more different tools" in text:
            return json.dumps({"query": f"Please use {' and '.join(names[:2])}."})
        return json.dumps({"query": f"Please use {names[0]}."})
    if "You can call these tools" in text:
        if "weather" in text:
            return json.dumps({"content": "None of my tools can look up the weather."})
        asked = re.search(r"Please use ([\w ]+?)( twice)?\.", text)
        names = asked[1].split(" and ")
        if asked[2]:
            calls = [{"name": names[0], "arguments": args} for args in GOOD[names[0]]]
        else:
            calls = [{"name": n, "arguments": GOOD[n][0]} for n in names]
        return json.dumps({"tool_calls": calls})
    if '"passes"' in text:
        return json.dumps({"passes": True, "reason": "fine"})
    raise AssertionError(f"unexpected request: {text[:200]}")


def apigen_run(root: Path) -> Path:
    """A finished apigen run: simple, parallel, parallel-multiple and irrelevance records."""
    recipe = Recipe.load("apigen", {
        "count": "8", "kinds": "[simple, parallel, parallel_multiple, irrelevance]",
        "domains": "[math]", "sandbox": "false"})
    summary = run_scripted(recipe, root, ScriptedTestBackend(play, name="apigen-export"))
    assert summary["status"] == "ok"
    return root


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return apigen_run(tmp_path_factory.mktemp("apigen"))


def rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def record_calls(record: dict[str, Any]) -> list[tuple[str, Any]]:
    return [(c["name"], c["arguments"]) for c in record["tool_calls"]]


def test_the_run_has_every_kind(run: Path) -> None:
    kept = read_jsonl(run / "data.jsonl")
    assert {r["kind"] for r in kept} == {"simple", "parallel", "parallel_multiple",
                                         "irrelevance"}
    assert any(len(r["tool_calls"]) == 2 for r in kept)


def test_messages_round_trip_calls_results_and_tools(run: Path, tmp_path: Path) -> None:
    kept = read_jsonl(run / "data.jsonl")
    result = export(run, tmp_path, ExportOptions(format="messages"))
    assert result.rows == len(kept) and not result.skipped
    for record, row in zip(kept, rows(result.data_path), strict=True):
        assert calls_in_messages(row["messages"]) == record_calls(record)
        assert row["tools"] == record["tools"]
        results = [m for m in row["messages"] if m["role"] == "tool"]
        assert [json.loads(m["content"]) for m in results] == \
            [r["content"] for r in record.get("tool_results") or []]
        ids = [c["id"] for m in row["messages"] for c in m.get("tool_calls") or []]
        assert [m["tool_call_id"] for m in results] == ids  # each result answers its call
        # Arguments as objects: HF chat templates (Qwen2.5, Llama 3.1) encode them once.
        for m in row["messages"]:
            for c in m.get("tool_calls") or []:
                assert isinstance(c["function"]["arguments"], dict) and c["type"] == "function"
    assert result.columns["tools"] == "tools"
    [entry] = result.dataset_info.values()
    assert entry["formatting"] == "openai" and entry["columns"]["tools"] == "tools"


def test_sharegpt_round_trip_follows_llamafactory_rules(run: Path, tmp_path: Path) -> None:
    kept = read_jsonl(run / "data.jsonl")
    result = export(run, tmp_path, ExportOptions(format="sharegpt"))
    assert result.rows == len(kept)
    for record, row in zip(kept, rows(result.data_path), strict=True):
        turns = row["conversations"]
        assert calls_in_sharegpt(turns) == record_calls(record)
        assert json.loads(row["tools"]) == record["tools"]  # JSON text: LLaMA-Factory loads it
        # LLaMA-Factory's reader: human/observation and gpt/function_call alternate, and the
        # last turn (the one trained on) is the model's.
        for i, turn in enumerate(turns):
            assert turn["from"] in (("human", "observation") if i % 2 == 0
                                    else ("gpt", "function_call"))
        assert turns[-1]["from"] == ("gpt" if record["kind"] == "irrelevance"
                                     else "function_call")
        if len(record["tool_calls"]) > 1:  # parallel calls: one turn holding a list
            assert isinstance(json.loads(turns[-1]["value"]), list)
    [entry] = result.dataset_info.values()
    assert entry["columns"] == {"messages": "conversations", "tools": "tools"}
    assert entry["tags"]["function_tag"] == "function_call"
    assert entry["tags"]["observation_tag"] == "observation"


def test_hermes_round_trip(run: Path, tmp_path: Path) -> None:
    kept = read_jsonl(run / "data.jsonl")
    result = export(run, tmp_path, ExportOptions(format="hermes"))
    for record, row in zip(kept, rows(result.data_path), strict=True):
        messages = row["messages"]
        assert all(isinstance(m["content"], str) and set(m) == {"role", "content"}
                   for m in messages)
        assert calls_in_hermes(messages) == record_calls(record)
        assert results_in_hermes(messages) == [r["content"] for r in
                                               record.get("tool_results") or []]
        system = messages[0]["content"]
        assert messages[0]["role"] == "system" and "<tools>" in system
        assert all(t["function"]["name"] in system for t in record["tools"])


def test_a_final_answer_and_parallel_results(tmp_path: Path) -> None:
    """An agent-style record (messages in the OpenAI shape with arguments as JSON text, two
    results, then the final answer): every format keeps the answer; ShareGPT folds the two
    results into one observation."""
    tools = [{"type": "function", "function": {"name": "add", "parameters": {
        "type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}}}}}]
    messages = [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "1+2 and 3+4?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function",
             "function": {"name": "add", "arguments": '{"a": 1, "b": 2}'}},
            {"id": "c2", "type": "function",
             "function": {"name": "add", "arguments": '{"a": 3, "b": 4}'}}]},
        {"role": "tool", "tool_call_id": "c1", "name": "add", "content": "3"},
        {"role": "tool", "tool_call_id": "c2", "name": "add", "content": "7"},
        {"role": "assistant", "content": "3 and 7."}]
    run = tmp_path / "run"
    run.mkdir()
    (run / "data.jsonl").write_text(json.dumps({"messages": messages, "tools": tools}) + "\n")
    calls = [("add", {"a": 1, "b": 2}), ("add", {"a": 3, "b": 4})]
    [msg] = rows(export(run, tmp_path / "m", ExportOptions(format="messages")).data_path)
    assert calls_in_messages(msg["messages"]) == calls
    assert msg["messages"][2]["content"] == "" and msg["messages"][-1]["content"] == "3 and 7."
    [sg] = rows(export(run, tmp_path / "s", ExportOptions(format="sharegpt")).data_path)
    assert [t["from"] for t in sg["conversations"]] == \
        ["system", "human", "function_call", "observation", "gpt"]
    assert json.loads(sg["conversations"][3]["value"]) == [3, 7]
    [pc] = rows(export(run, tmp_path / "p", ExportOptions(format="prompt-completion")).data_path)
    assert pc["completion"] == [{"role": "assistant", "content": "3 and 7."}]
    assert calls_in_messages(pc["prompt"]) == calls and pc["tools"] == tools
    [he] = rows(export(run, tmp_path / "h", ExportOptions(format="hermes")).data_path)
    assert he["messages"][0]["content"].startswith("Be brief.\n\n")
    assert results_in_hermes(he["messages"]) == [3, 7]
    assert [m["role"] for m in he["messages"]] == ["system", "user", "assistant", "tool",
                                                   "assistant"]


def test_for_targets_choose_formats_that_keep_the_calls(run: Path, tmp_path: Path) -> None:
    kept = read_jsonl(run / "data.jsonl")
    # LLaMA-Factory: ShareGPT with function_call turns (alpaca would lose the calls).
    lf = export(run, tmp_path / "lf", ExportOptions(target="llamafactory"))
    assert lf.format == "sharegpt"
    trl = export(run, tmp_path / "trl", ExportOptions(target="trl"))
    assert trl.format == "messages"
    # OpenAI fine-tuning: arguments as JSON text, tools as objects, no record id, a result
    # answers its call by id (no name field in the chat API's tool message).
    oa = export(run, tmp_path / "oa", ExportOptions(target="openai"))
    assert oa.format == "messages"
    for record, row in zip(kept, rows(oa.data_path), strict=True):
        assert set(row) == {"messages", "tools"} and row["tools"] == record["tools"]
        for m in row["messages"]:
            for c in m.get("tool_calls") or []:
                assert isinstance(c["function"]["arguments"], str)
            if m.get("tool_calls"):
                assert "content" not in m
            if m["role"] == "tool":
                assert set(m) == {"role", "tool_call_id", "content"}
        assert calls_in_messages(row["messages"]) == record_calls(record)
    # A format without calls warns that it leaves them out.
    al = export(run, tmp_path / "al", ExportOptions(format="alpaca"))
    assert any("no place for tool calls" in w for w in al.warnings)


def test_multi_turn_trajectory_alternates_for_llamafactory(tmp_path: Path) -> None:
    """An agent trajectory (agent-trajectories' shape: several user turns, calls with text
    beside them, an error result): every call survives in every format, ShareGPT alternates."""
    def call(i: int, name: str, args: dict[str, Any]) -> dict[str, Any]:
        return {"id": f"c{i}", "type": "function",
                "function": {"name": name, "arguments": json.dumps(args)}}

    messages = [
        {"role": "system", "content": "Store policy: refunds within 30 days."},
        {"role": "user", "content": "Hi, I want to return order 7."},
        {"role": "assistant", "content": "Let me check.",
         "tool_calls": [call(1, "get_order", {"order_id": 7})]},
        {"role": "tool", "tool_call_id": "c1", "name": "get_order",
         "content": '{"order_id": 7, "days": 3}'},
        {"role": "assistant", "content": "It qualifies. Shall I refund it?"},
        {"role": "user", "content": "Yes please."},
        {"role": "assistant", "content": None,
         "tool_calls": [call(2, "refund", {"order_id": 7, "amount": 12.5})]},
        {"role": "tool", "tool_call_id": "c2", "name": "refund",
         "content": "error: ValueError: amount exceeds the order total"},
        {"role": "assistant", "content": None,
         "tool_calls": [call(3, "refund", {"order_id": 7, "amount": 10})]},
        {"role": "tool", "tool_call_id": "c3", "name": "refund", "content": '{"ok": true}'},
        {"role": "assistant", "content": "Refunded 10."}]
    tools = [{"type": "function", "function": {"name": n, "parameters": {"type": "object"}}}
             for n in ("get_order", "refund")]
    run = tmp_path / "run"
    run.mkdir()
    (run / "data.jsonl").write_text(json.dumps({"messages": messages, "tools": tools}) + "\n")
    calls = [("get_order", {"order_id": 7}), ("refund", {"order_id": 7, "amount": 12.5}),
             ("refund", {"order_id": 7, "amount": 10})]
    [sg] = rows(export(run, tmp_path / "s", ExportOptions(target="llamafactory")).data_path)
    assert [t["from"] for t in sg["conversations"]] == [
        "system", "human", "function_call", "observation", "gpt", "human", "function_call",
        "observation", "function_call", "observation", "gpt"]
    assert calls_in_sharegpt(sg["conversations"]) == calls
    assert "amount exceeds" in sg["conversations"][7]["value"]  # the error result is kept
    [msg] = rows(export(run, tmp_path / "m", ExportOptions(target="trl")).data_path)
    assert calls_in_messages(msg["messages"]) == calls
    assert msg["messages"][2]["content"] == "Let me check."  # text beside calls kept here
    [he] = rows(export(run, tmp_path / "h", ExportOptions(format="hermes")).data_path)
    assert calls_in_hermes(he["messages"]) == calls
    assert he["messages"][2]["content"].startswith("Let me check.\n<tool_call>")
