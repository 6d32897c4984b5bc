"""The ``reasoning-distill`` recipe (issue 25 item 6) with ScriptedTestBackend (a scripted test
backend standing in for a reasoning model that writes ``<think>`` blocks): reasoning kept
apart, verification per domain (math gold, unit tests in the sandbox, a logic verifier), pass
rates, the difficulty filters, dedup and decontamination before any call, JSON-array input."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from synthloom.api import RunOptions, run_recipe
from synthloom.core.recipe import Recipe
from synthloom.verify.logic import make_item
from tests.support.runs import assert_closed, read_jsonl, step
from tests.support.scripted_backend import ScriptedTestBackend, last_user_text

GAME24 = make_item("game24", 1, 3)
ROWS = [
    {"question": "Sam has 3 apples and buys 4 more. How many apples does he have?",
     "answer": "3 + 4 = 7\n#### 7"},
    # Exact duplicate: removed before sampling.
    {"question": "Sam has 3 apples and buys 4 more. How many apples does he have?",
     "answer": "#### 7"},
    {"question": "What is 12 times 12?", "answer": "144"},
    {"question": "Write a function add(a, b) that returns the sum.",
     "tests": "assert add(2, 3) == 5\nassert add(-1, 1) == 0"},
    GAME24,
    {"question": "Tell me about the sea."},  # no verifier: a counted failure
    {"question": "The quick brown fox jumps over the lazy dog near the river bank today at noon "
                 "while the farmer watches."},  # in the eval set: decontaminated
]


def reasoner(request, seed) -> str:
    """Right on even seeds (2 of 4 samples), with a <think> block before the answer."""
    text = last_user_text(request)
    right = (seed or 0) % 2 == 0
    think = f"<think>Let me work through it carefully, step by step ({seed}).</think>\n"
    if "apples" in text:
        return think + ("So 3 + 4 = 7.\nAnswer: 7" if right else "Answer: 8")
    if "12 times 12" in text:
        return think + "Answer: 144"  # always right: pass rate 1
    if "add(a, b)" in text:
        body = "a + b" if right else "a - b"
        return think + f"```python\ndef add(a, b):\n    return {body}\n```"
    if "make 24" in text:
        return think + (f"Answer: {GAME24['answer']}" if right else "Answer: 1 + 2")
    return think + "Answer: the sea is big"


def write_inputs(tmp_path: Path) -> tuple[Path, Path]:
    rows = tmp_path / "questions.jsonl"
    rows.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    evals = tmp_path / "eval.jsonl"
    evals.write_text(json.dumps({"question": ROWS[-1]["question"]}) + "\n")
    return rows, evals


def go(overrides: dict[str, Any], out: Path, backend: Any, **options: Any) -> dict[str, Any]:
    recipe = Recipe.load("reasoning-distill", overrides)
    return asyncio.run(run_recipe(recipe, out, RunOptions(backend=backend, **options))).to_json()


def test_samples_verified_by_domain_with_reasoning_apart(tmp_path: Path) -> None:
    rows, evals = write_inputs(tmp_path)
    backend = ScriptedTestBackend(reasoner)
    sets = json.dumps({"evalset": {"path": str(evals), "column": "question"}})
    summary = go({"input": str(rows), "eval_sets": sets}, tmp_path / "out", backend)
    assert_closed(summary)
    assert step(summary, "unique")["dropped"] == 1
    assert step(summary, "decontaminated")["dropped"] == 1
    samples = step(summary, "samples")
    assert (samples["in"], samples["failed"]) == (5, 1)
    # No calls for the duplicate, the contaminated question, or the one with no verifier.
    assert backend.calls == 4 * 4
    failed = read_jsonl(tmp_path / "out" / "failed.jsonl")
    assert "no verifier" in failed[0]["message"]
    records = read_jsonl(tmp_path / "out" / "data.jsonl")
    by = {}
    for r in records:
        by.setdefault(r["domain"], []).append(r)
        assert r["reasoning"].startswith("Let me work through it") and "<think>" not in \
            r["response"] and "Let me work" not in r["response"]
        assert r["verified"] is True and r["samples"] == 4
        assert r["pass_rate"] == r["passes"] / 4
        assert r["_meta"]["sample_index"] in range(4)
    # math: apples 2/4 (gold from GSM8K '####'), 12x12 4/4 (a plain final answer)
    math = sorted((r["gold"], r["pass_rate"]) for r in by["math"])
    assert math == [("144", 1.0)] * 4 + [("7", 0.5)] * 2
    # code: the program with the tests, run in the sandbox; a - b fails
    assert [r["pass_rate"] for r in by["code"]] == [0.5, 0.5]
    assert all("return a + b" in r["response"] for r in by["code"])
    # logic: game24's verifier
    assert [r["pass_rate"] for r in by["logic"]] == [0.5, 0.5]
    assert len(records) == 10 and summary["records"] == 10
    # A rerun replays every sample.
    again = ScriptedTestBackend(reasoner)
    go({"input": str(rows), "eval_sets": sets}, tmp_path / "out", again)
    assert again.calls == 0


def test_keep_first_and_the_length_filter(tmp_path: Path) -> None:
    rows, _ = write_inputs(tmp_path)
    summary = go({"input": str(rows), "keep": "first", "min_tokens": "14"}, tmp_path / "out",
                 ScriptedTestBackend(reasoner))
    assert_closed(summary)
    records = read_jsonl(tmp_path / "out" / "data.jsonl")
    # One sample per verified question; the 12x12 question's replies are short (12 < 14 tokens).
    assert len({r["question"] for r in records}) == len(records)
    assert all(r["mean_response_tokens"] >= 14 for r in records)
    reasons = [d["reason"] for d in read_jsonl(tmp_path / "out" / "dropped.jsonl")
               if d["step"] == "hard"]
    assert reasons and all(x.startswith("too easy: mean response") for x in reasons)
    assert any("12 times 12" in d["record"]["question"]
               for d in read_jsonl(tmp_path / "out" / "dropped.jsonl") if d["step"] == "hard")


def test_llm_difficulty_rating_on_a_named_model(tmp_path: Path) -> None:
    rows, _ = write_inputs(tmp_path)

    def rater(request, seed) -> str:
        hard = "make 24" in last_user_text(request) or "add(a, b)" in last_user_text(request)
        return json.dumps({"reason": "needs search" if hard else "one step",
                           "difficulty": 7 if hard else 2})

    rating = ScriptedTestBackend(rater, name="rater")
    sampler = ScriptedTestBackend(reasoner)
    summary = go({"input": str(rows), "difficulty": "llm", "min_rating": "5"}, tmp_path / "out",
                 sampler, model_for={"rater": rating})
    assert_closed(summary)
    records = read_jsonl(tmp_path / "out" / "data.jsonl")
    assert {r["domain"] for r in records} == {"code", "logic"}
    assert all(r["difficulty_rating"] == 7 and r["difficulty_reason"] for r in records)
    # Rated before sampling: one call per question, no samples for the easy ones.
    # (6: no eval set here, so the fox sentence is rated too)
    assert rating.calls == step(summary, "rated")["in"] == 6
    assert sampler.calls == 2 * 4
    reasons = {d["reason"] for d in read_jsonl(tmp_path / "out" / "dropped.jsonl")
               if d["step"] == "rated"}
    assert reasons == {"too easy: rated 2/10 < 5"}


def test_json_array_questions_with_a_final_answer_column(tmp_path: Path) -> None:
    loong = tmp_path / "seed_dataset.json"
    loong.write_text(json.dumps([{"question": "What is 12 times 12?", "rationale": "print(144)",
                                  "final_answer": "144", "metadata": {"license": "MIT"}}],
                                indent=2))
    summary = go({"input": str(loong), "gold_column": "final_answer"}, tmp_path / "out",
                 ScriptedTestBackend(reasoner))
    records = read_jsonl(tmp_path / "out" / "data.jsonl")
    assert summary["records"] == 4 and records[0]["gold"] == "144"
    assert records[0]["_meta"]["source"]["where"].endswith("#row=1")
