"""Orca explanation tuning with the scripted test backend (a test double, no model): the
system-message pool and its deterministic choice, the gold-answer hint, the explanation and
gold-agreement filter, and the accounting -- on the bundled sample questions and on GSM8K-style
rows."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from synthloom.api import RunOptions, run_recipe
from synthloom.core.errors import RecipeError
from synthloom.core.recipe import Recipe
from synthloom.methods.orca.steps import gold_answer, gold_disagreement, load_system_messages
from tests.support.runs import assert_closed, read_jsonl
from tests.support.scripted_backend import ScriptedTestBackend

GOOD = ("First, 5 apples plus 7 apples make 12 apples, because adding counts them together. "
        "So the total is 12. The answer is 12.")
WRONG = ("First, 5 apples plus 7 apples make 13 apples, because I added one too many. "
         "So the total is 13. The answer is 13.")


def run(recipe: Recipe, out: Path, backend: ScriptedTestBackend, limit: int | None = None) -> dict:
    summary = asyncio.run(run_recipe(recipe, out, RunOptions(backend=backend, limit=limit)))
    data = summary.to_json()
    assert_closed(data)
    return {s["name"]: s for s in data["steps"]}


def explainer(request, seed) -> str:
    question = request.messages[-1]["content"]
    return (f"Let me explain step by step. The question asks: {question[:60]}. "
            "I looked at each part because that is how the answer is found, so here it is.")


def test_the_papers_sixteen_system_messages() -> None:
    pool, digest = load_system_messages("orca/prompts/system_messages.yaml", None)
    assert [m["id"] for m in pool] == list(range(1, 17)) and pool[0]["text"] == ""
    assert pool[6]["text"] == (
        "You are an AI assistant. User will you give you a task. Your goal is to complete the "
        "task as faithfully as you can. While performing the task think step-by-step and "
        "justify your steps.")
    assert "five year old" in pool[3]["text"] and len(digest) > 8


def test_orca_on_the_bundled_sample(tmp_path: Path) -> None:
    backend = ScriptedTestBackend(explainer)
    steps = run(Recipe.load("orca", {}), tmp_path / "a", backend)
    assert steps["questions"]["out"] == 20 and steps["explain"]["llm_calls"] == 20
    kept = read_jsonl(tmp_path / "a" / "data.jsonl")
    dropped = read_jsonl(tmp_path / "a" / "dropped.jsonl")
    assert len(kept) + len(dropped) == 20
    first = next(r for r in kept + [d["record"] for d in dropped]
                 if r["question"].startswith("Which US state"))
    # The Alpaca wrapper is gone, the reference answer is the gold; no hint by default (the
    # paper's teacher saw only the system message and the query).
    assert first["question"] == "Which US state produces the most pineapples?"
    assert first["gold"] == "Hawaii" and first["hint_used"] is False
    assert not any("Hint" in prompt for prompt in backend.prompts)
    ids = {r["system_prompt"]["id"] for r in kept}
    assert len(ids) >= 4  # the choice spreads over the pool
    # Short golds are checked against the response: the scripted one never names them.
    reasons = {d["record"]["gold"]: d["reason"] for d in dropped}
    assert reasons["Hawaii"] == "response does not contain the gold answer 'Hawaii' " \
        "(missing ['hawaii'])"
    # Kept: long references (not compared) or short golds the response names.
    assert all(gold_disagreement(r["response"], r["gold"], 5) is None for r in kept)
    assert any(len(r["gold"].split()) > 5 for r in kept)
    # The empty system message (id 1) sends no system turn.
    sent = [r for r in kept if r["system_prompt"]["id"] == 1]
    for record in sent:
        assert record["system_prompt"]["text"] == ""
    # Same seed, same choice, from scratch.
    again = ScriptedTestBackend(explainer)
    run(Recipe.load("orca", {}), tmp_path / "b", again)
    assert [r["system_prompt"] for r in read_jsonl(tmp_path / "b" / "data.jsonl")] == \
        [r["system_prompt"] for r in kept]


def test_hint_and_numeric_gold_check(tmp_path: Path) -> None:
    data = tmp_path / "gsm.jsonl"
    data.write_text(
        json.dumps({"question": "Ann has 5 apples and buys 7. How many now?",
                    "answer": "5 + 7 = <<5+7=12>>12\n#### 12"}) + "\n"
        + json.dumps({"question": "Bob has 5 pears and buys 7. How many now?",
                      "answer": "5 + 7 = 12\n#### 12"}) + "\n"
        + json.dumps({"question": "Cy has 5 figs and buys 7. How many now?",
                      "answer": "#### 12"}) + "\n")
    prompts: list[list[dict]] = []

    def answer(request, seed) -> str:
        prompts.append(request.messages)
        text = request.messages[-1]["content"]
        return {"Ann": GOOD, "Bob": WRONG, "Cy": "12."}[text.split()[0]]

    recipe = Recipe.load("orca", {"input": str(data), "system_ids": "[7, 11]", "hint": "true"})
    steps = run(recipe, tmp_path / "out", ScriptedTestBackend(answer))
    assert (steps["explained"]["in"], steps["explained"]["out"]) == (3, 1)
    [kept] = read_jsonl(tmp_path / "out" / "data.jsonl")
    assert kept["gold"] == "12" and kept["hint_used"] is True and kept["response"] == GOOD
    assert kept["system_prompt"]["id"] in (7, 11)
    assert "Hint" not in kept["question"]
    user = prompts[0][-1]["content"]
    assert "(Hint: the correct answer is: 12" in user and prompts[0][0]["role"] == "system"
    reasons = sorted(d["reason"] for d in read_jsonl(tmp_path / "out" / "dropped.jsonl"))
    assert reasons == ["final answer '13' disagrees with gold '12'",
                       "response too short to explain: 1 words (< 20)"]
    # Without the hint (the default, as in the paper) the prompt is the bare question.
    prompts.clear()
    recipe = Recipe.load("orca", {"input": str(data)})
    run(recipe, tmp_path / "nohint", ScriptedTestBackend(answer))
    assert all("Hint" not in p[-1]["content"] for p in prompts)
    assert all(r["hint_used"] is False for r in read_jsonl(tmp_path / "nohint" / "data.jsonl"))


def test_unknown_system_ids_fail_before_any_call(tmp_path: Path) -> None:
    backend = ScriptedTestBackend(explainer)
    with pytest.raises(RecipeError, match=r"unknown system message ids \[99\]"):
        run(Recipe.load("orca", {"system_ids": "[7, 99]"}), tmp_path / "out", backend)
    assert backend.calls == 0


def test_filter_helpers() -> None:
    assert gold_answer("Hawaii###eos_token###") == "Hawaii"
    assert gold_answer("so 3 + 4 = 7\n#### 1,007") == "1007" and gold_answer("  ") is None
    assert gold_disagreement("The answer is 1007.", "1007", 5) is None
    assert gold_disagreement("Carp is a fish.", "Carp", 5) is None
    assert "missing ['carp']" in gold_disagreement("Tarp is a fish.", "Carp", 5)
    long_gold = "Theater Arts, Theater, Telecommunications, Fine Arts in dramatic writing"
    assert gold_disagreement("Something else entirely.", long_gold, 5) is None
