"""mathgenie with the scripted test backend (ScriptedTestBackend, a test double): iterative
solution augmentation, back-translation, sandboxed verification, drop reasons and accounting."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

from synthloom.api import RunOptions, run_recipe
from synthloom.core.recipe import Recipe
from synthloom.llm.types import LLMRequest
from synthloom.methods.math.mathgenie import plain_solution
from synthloom.verify.math_answers import answers_equal, extract_answer
from synthloom.verify.sandbox import run_python_sync
from tests.support.runs import read_jsonl, step_closes
from tests.support.scripted_backend import ScriptedTestBackend, last_user_text

A = "She makes 30 + 20 = 50 rolls and sells 30, so 50 - 30 = 20 are left.\nThe answer is 20."
B = "She makes 30 rolls and sells some of them"  # no final answer
C = "She makes 35 + 20 = 55 rolls and sells 30, so 25 are left.\nThe answer is 25."
D = "He reads 20 pages a day for 3 days: 20 * 3 = 60.\nThe answer is 60."
E = "Two weeks have 2 * 7 = 14 days.\nHe reads 15 * 14 = 210 pages.\nThe answer is 210."  # the seed
D2 = "He reads 10 pages a day for 7 days: 10 * 7 = 70.\nThe answer is 70."
Q_A = "A baker makes 30 rolls and 20 rolls and sells 30. How many rolls are left?"
Q_D2 = "Tom reads 10 pages a day for a week. How many pages does he read?"


class Responder:
    def __init__(self) -> None:
        self.seen: Counter[str] = Counter()

    def __call__(self, request: LLMRequest, seed: int | None) -> str:
        system = (request.messages or [{}])[0].get("content", "")
        user = last_user_text(request)
        self.seen[user] += 1
        if system.startswith("You create"):
            if "24 + 18" in user:  # the baker seed: two variants, one without an answer
                return A if self.seen[user] == 1 else B
            if "15 * 14" in user:  # tom: a new one, and a copy of the seed (twice: round 2)
                return D if self.seen[user] == 1 else E
            if user.find(A.splitlines()[0]) >= 0:  # round 2 from A
                return C
            if user.find(D.splitlines()[0]) >= 0:
                return D2
            raise AssertionError(user)
        if system.startswith("You write the math word problem"):
            if "The answer is 20." in user:
                return f"Problem: {Q_A}"
            if "The answer is 25." in user:
                return "A baker makes 35 rolls and 20 rolls and sells 30 of them."  # no question
            if "The answer is 60." in user:
                return "Tom reads 20 pages a day for 3 days. How many? The answer is 60."
            if "The answer is 70." in user:
                return Q_D2
            raise AssertionError(user)
        assert system.startswith("You solve math word problems with code"), system
        if Q_A in user:
            return "Add the rolls, subtract the sold ones.\n```python\nprint(30 + 20 - 30)\n```"
        if Q_D2 in user:
            return "Pages per day times days.\n```python\nprint(10 * 6)\n```"  # wrong: 60
        raise AssertionError(user)


def run(recipe: Recipe, out: Path, backend: ScriptedTestBackend, limit: int) -> dict:
    return asyncio.run(run_recipe(recipe, out, RunOptions(backend=backend, limit=limit))).to_json()


def test_mathgenie_augments_back_translates_and_verifies_with_code(tmp_path: Path) -> None:
    backend = ScriptedTestBackend(Responder())
    recipe = Recipe.load("mathgenie", {"variants": "2", "rounds": "2", "timeout": "3"})
    summary = run(recipe, tmp_path / "out", backend, limit=2)
    steps = {s["name"]: s for s in summary["steps"]}
    assert all(step_closes(s) for s in steps.values())
    augment, question = steps["augment"], steps["question"]
    # Round 1: 2 variants per seed; round 2: one rewrite of each solution that has an answer
    # (A -> C, D -> D2, E -> E again).
    assert augment["in"] == 2 and augment["out"] == 7 and augment["llm_calls"] == 7
    # B and both Es are dropped before any call; C asks nothing; D gives its answer away.
    assert question["in"] == 7 and question["out"] == 2 and question["dropped"] == 5
    assert question["llm_calls"] == 4
    assert steps["solve"]["llm_calls"] == 2
    assert steps["verify"]["in"] == 2 and steps["verify"]["out"] == 1
    assert backend.calls == 13

    [kept] = read_jsonl(tmp_path / "out" / "data.jsonl")
    assert kept["seed_question"].startswith("A baker makes 24 rolls")
    assert kept["augmented_solution"] == A and kept["question"] == Q_A
    assert kept["answer"] == "20" and kept["round"] == 1 and kept["augmented_from"] is None
    assert kept["program"] == "print(30 + 20 - 30)" and kept["verified"] is True
    assert "<<" not in kept["seed_solution"] and kept["seed_solution"].endswith("The answer is 12.")
    # The independent re-check: the program prints the augmented solution's answer again.
    again = run_python_sync(kept["program"])
    assert answers_equal(again.stdout.strip().splitlines()[-1], kept["answer"])
    assert answers_equal(extract_answer(kept["augmented_solution"], last_number=False),
                         kept["answer"])

    dropped = read_jsonl(tmp_path / "out" / "dropped.jsonl")
    reasons = Counter((d["step"], d["reason"].split(":")[0]) for d in dropped)
    assert reasons == Counter({
        ("question", "the augmented solution states no final answer (no 'The answer is N', or "
                     "cut off by the token cap)"): 1,
        ("question", "the augmented solution repeats the seed solution"): 2,
        ("question", "back-translation asks no question"): 1,
        ("question", "back-translation states the answer"): 1,
        ("verify", "program printed '60', gold is '70'"): 1})
    second = next(d["record"] for d in dropped if d["step"] == "verify")
    assert second["round"] == 2 and second["augmented_from"] is not None
    assert second["augmented_solution"] == D2 and second["seed_question"].startswith("Tom")
    assert all(d["record"]["question"] is None for d in dropped if d["step"] == "question")


def test_plain_solution() -> None:
    text = "She makes 24 + 18 = <<24+18=42>>42 rolls.\n#### 1,042"
    assert plain_solution(text) == "She makes 24 + 18 = 42 rolls.\nThe answer is 1042."
    assert plain_solution("") == ""
