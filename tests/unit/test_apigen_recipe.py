"""The ``apigen`` recipe through the engine with the ScriptedTestBackend (a test double that
plays generator, caller and judge by rules): each verification stage rejects what it should
and every rejected candidate is kept with its stage; kept records' calls were executed."""

from __future__ import annotations

import json
import re
from pathlib import Path

from synthloom.core.recipe import Recipe
from synthloom.llm.types import LLMRequest
from synthloom.methods.apigen.steps import kind_problem, sample_apis
from tests.support.runs import assert_closed, read_jsonl, run_scripted, step
from tests.support.scripted_backend import ScriptedTestBackend

_TOOL = re.compile(r"^- (\w+):", re.MULTILINE)

#: What the scripted caller answers per math tool: one case per verification outcome.
CALLS = {
    "add": {"tool_calls": [{"name": "add", "arguments": {"a": 2, "b": 3}}]},  # kept
    "multiply": {"tool_calls": [{"name": "times", "arguments": {"a": 2, "b": 3}}]},  # unknown
    "power": {"tool_calls": [{"name": "power", "arguments": {"base": "two", "exponent": 2}}]},
    "sqrt": {"tool_calls": [{"name": "sqrt", "arguments": {"x": -4}}]},  # raises
    "gcd": {"tool_calls": [{"name": "gcd", "arguments": {"a": 12, "b": 18}}]},  # judged wrong
    "factorial": {"tool_calls": [{"name": "factorial", "arguments": {"n": 5}},
                                 {"name": "factorial", "arguments": {"n": 6}}]},  # 2 calls
}


def play(request: LLMRequest, seed: int | None) -> str:
    text = "\n".join(str(m.get("content")) for m in request.messages or [])
    if '"query"' in text:  # the query generator
        name = _TOOL.search(text)[1]
        return json.dumps({"query": f"Please use {name} on some numbers for me."})
    if "You can call these tools" in text:  # the caller (constrained path)
        if "none of these tools" in text or "weather" in text:
            return json.dumps({"content": "I cannot check the weather with these tools."})
        name = re.search(r"Please use (\w+)", text)[1]
        return json.dumps(CALLS[name])
    if '"passes"' in text:  # the judge
        wrong = "gcd(" in text
        return json.dumps({"passes": not wrong,
                           "reason": "gcd is not what was asked" if wrong else "fine"})
    raise AssertionError(f"unexpected request: {text[:200]}")


def test_each_stage_rejects_what_it_should_and_keeps_the_stage(tmp_path: Path) -> None:
    recipe = Recipe.load("apigen", {"count": "30", "kinds": "[simple]", "domains": "[math]"})
    summary = run_scripted(recipe, tmp_path, ScriptedTestBackend(play, name="apigen-play"))
    assert summary["status"] == "ok"
    assert_closed(summary)
    kept = read_jsonl(tmp_path / "data.jsonl")
    dropped = read_jsonl(tmp_path / "dropped.jsonl")
    assert len(kept) + len(dropped) == 30 and step(summary, "verified")["dropped"] == len(dropped)
    by_tool: dict[str, set[str]] = {}
    for row in dropped:
        record = row["record"]
        tool = record["tools"][0]["function"]["name"]
        assert row["reason"].startswith(f"{record['reject_stage']}: ")
        by_tool.setdefault(tool, set()).add(row["reason"])
    assert {t for r in kept for t in [r["tool_calls"][0]["name"]]} == {"add"}
    assert all(r["reject_stage"] is None and r["judge"]["passes"] for r in kept)
    [unknown] = by_tool["multiply"]
    assert unknown.startswith("format: malformed tool calls") and "unknown tool 'times'" in unknown
    [bad_args] = by_tool["power"]
    assert bad_args.startswith("format:") and "$.tool_calls[0].arguments.base" in bad_args
    assert by_tool["sqrt"] == {"execution: sqrt: ValueError: square root of a negative number"}
    assert by_tool["gcd"] == {"semantic: gcd is not what was asked"}
    # A simple task asks for one call (parallel_tool_calls=False): two are malformed.
    [two_calls] = by_tool["factorial"]
    assert two_calls.startswith("format: malformed tool calls") and \
        "2 calls, at most 1 allowed" in two_calls
    # Kept records: calls executed in the sandbox, their results in the messages.
    record = kept[0]
    assert record["tool_results"][0]["content"] == 5
    assert record["tool_results"][0]["provenance"]["sandbox"] is True
    roles = [m["role"] for m in record["messages"]]
    assert roles == ["user", "assistant", "tool"]
    assert record["messages"][1]["tool_calls"][0]["function"]["name"] == "add"


def test_irrelevance_keeps_an_answer_without_calls(tmp_path: Path) -> None:
    recipe = Recipe.load("apigen", {"count": "3", "kinds": "[irrelevance]",
                                    "domains": "[bank]"})

    def irrelevant(request: LLMRequest, seed: int | None) -> str:
        text = "\n".join(str(m.get("content")) for m in request.messages or [])
        if '"query"' in text:
            return json.dumps({"query": "What is the weather in Lima tomorrow?"})
        return play(request, seed)

    summary = run_scripted(recipe, tmp_path, ScriptedTestBackend(irrelevant))
    kept = read_jsonl(tmp_path / "data.jsonl")
    assert summary["status"] == "ok" and len(kept) == 3
    assert all(r["tool_calls"] == [] and r["answer"].startswith("I cannot") for r in kept)
    assert kept[0]["messages"][-1] == {"role": "assistant", "content": kept[0]["answer"]}


def test_kind_rules_and_sampling() -> None:
    one = [{"name": "a"}]
    assert kind_problem("simple", one) is None
    assert kind_problem("parallel", one + one) is None
    assert kind_problem("parallel", one + [{"name": "b"}]) is not None
    assert kind_problem("parallel_multiple", one + [{"name": "b"}]) is None
    assert kind_problem("irrelevance", []) is None
    assert kind_problem("multiple", []) == "multiple task answered without a call"
    import random

    for kind in ("simple", "parallel", "multiple", "parallel_multiple", "irrelevance"):
        apis = sample_apis(kind, ["math", "store"], random.Random(kind))
        names = [t["function"]["name"] for _, t in apis]
        assert len(names) == len(set(names)) >= 1
        assert (len(names) == 1) == (kind in ("simple", "parallel"))
