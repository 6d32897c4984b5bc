"""``reasoning-distill`` on the real seed files of ../shared/data: the full GSM8K test set
(1,319 questions, gold after ``####``; decontaminated against the first 2,000 GSM8K train
questions) and the Loong advanced-math seed set (a JSON array, gold in ``final_answer``, LaTeX
answers checked by math equivalence). A ScriptedTestBackend (a scripted test backend) plays
the reasoning model: a ``<think>`` block, then the gold answer on even seeds and a wrong one on
odd seeds, so every pass rate is known; the files, readers, dedup, decontamination and
verifiers are the real ones."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from synthloom.api import RunOptions, run_recipe
from synthloom.core.recipe import Recipe
from synthloom.verify.math_answers import gsm8k_gold
from tests.support.runs import assert_closed, read_jsonl, step
from tests.support.scripted_backend import ScriptedTestBackend, last_user_text

pytestmark = pytest.mark.integration


def reasoner(golds: dict[str, str], boxed: bool):
    def respond(request, seed) -> str:
        gold = golds[last_user_text(request)]
        # Wrong: gold + 1 (appending a digit is no perturbation in LaTeX: "\\sqrt{3}1" is
        # "\\sqrt{3}" times 1, rightly judged equal by math-verify).
        answer = gold if (seed or 0) % 2 == 0 else f"{gold} + 1"
        final = f"\\boxed{{{answer}}}" if boxed else f"Answer: {answer}"
        return f"<think>Work it out for seed {seed}.</think>\nSo the result follows.\n{final}"
    return respond


def go(overrides: dict[str, Any], out: Path, backend: Any) -> dict[str, Any]:
    recipe = Recipe.load("reasoning-distill", {"samples": "2", **overrides})
    return asyncio.run(run_recipe(recipe, out, RunOptions(backend=backend, batch_size=64,
                                                          concurrency=64))).to_json()


def test_gsm8k_test_set(shared_data: Path, tmp_path: Path) -> None:
    path = shared_data / "math" / "gsm8k_test.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    golds = {r["question"].strip(): gsm8k_gold(r["answer"]) for r in rows}
    evals = {"gsm8k_train": {"path": str(shared_data / "math" / "gsm8k_train_first2000.jsonl"),
                             "column": "question"}}
    backend = ScriptedTestBackend(reasoner(golds, boxed=False))
    summary = go({"input": str(path), "eval_sets": json.dumps(evals)}, tmp_path / "out", backend)
    assert summary["status"] == "ok"
    assert_closed(summary)
    assert step(summary, "questions")["out"] == len(rows) == 1319
    sampled = step(summary, "samples")["in"]
    removed = sum(step(summary, s)["dropped"] for s in ("unique", "near_unique",
                                                          "decontaminated"))
    assert sampled + removed == len(rows) and sampled > 1200
    assert backend.calls == 2 * sampled and step(summary, "samples")["failed"] == 0
    records = read_jsonl(tmp_path / "out" / "data.jsonl")
    # Seed parity is per item: each question gets one even and one odd seed (seed, seed + 1).
    assert len(records) == sampled == summary["records"]
    for r in records:
        assert r["gold"] == golds[r["question"]] and r["domain"] == "math"
        assert (r["passes"], r["samples"], r["pass_rate"]) == (1, 2, 0.5)
        assert r["reasoning"].startswith("Work it out") and "<think>" not in r["response"]
        assert r["response"].endswith(f"Answer: {r['gold']}")
    print("gsm8k test:", {s: step(summary, s)["dropped"] for s in
                          ("unique", "near_unique", "decontaminated")})


def test_loong_advanced_math_json_array(shared_data: Path, tmp_path: Path) -> None:
    path = shared_data / "verified_seeds" / "advanced_math.seed_dataset.json"
    items = json.loads(path.read_text())
    golds = {i["question"].strip(): str(i["final_answer"]).strip() for i in items}
    summary = go({"input": str(path), "gold_column": "final_answer"}, tmp_path / "out",
                 ScriptedTestBackend(reasoner(golds, boxed=True)))
    assert_closed(summary)
    assert step(summary, "questions")["out"] == len(items) == 1611
    records = read_jsonl(tmp_path / "out" / "data.jsonl")
    sampled = step(summary, "samples")["in"]
    # \boxed{gold} is verified (math equivalence on LaTeX answers), "gold + 1" is not. A few
    # golds are not equal to themselves for the checker (a sympy Union of intervals): dropped
    # as "no verified sample", at most 2%.
    assert all(r["pass_rate"] == 0.5 and r["gold"] == golds[r["question"]] for r in records)
    unverified = step(summary, "samples")["dropped"]
    assert len(records) + unverified == sampled and unverified <= 0.02 * sampled, unverified
    print("loong advanced_math:", len(records), "verified of", sampled, "sampled")
