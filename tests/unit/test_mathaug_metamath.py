"""metamath with the scripted test backend (ScriptedTestBackend, a test double): which questions
each augmentation makes, which the verifier keeps, the drop reasons and the accounting."""

from __future__ import annotations

import asyncio
from pathlib import Path

from synthloom.api import RunOptions, run_recipe
from synthloom.core.recipe import Recipe
from synthloom.llm.types import LLMRequest
from synthloom.methods.math.metamath import clean_question, mask_number, question_problem
from synthloom.verify.math_answers import answers_equal, extract_answer
from tests.support.runs import read_jsonl, step_closes
from tests.support.scripted_backend import ScriptedTestBackend, last_user_text

BAKER = ("A baker makes 24 rolls in the morning and 18 rolls in the afternoon. She sells 30 "
         "rolls. How many rolls are left?")
TOM = "Tom reads 15 pages a day. How many pages does he read in 2 weeks?"
BAKER_REPHRASED = ("After baking 24 rolls in the morning and 18 in the afternoon, a baker "
                   "sells 30. How many rolls remain?")


def masked(question: str) -> tuple[str, str]:
    result = mask_number(question, f"0:{question}")  # recipe seed 0
    assert result is not None
    return result


def system_text(request: LLMRequest) -> str:
    return (request.messages or [{}])[0].get("content", "")


def responder(request: LLMRequest, seed: int | None) -> str:
    system, user = system_text(request), last_user_text(request)
    if system.startswith("You rephrase"):
        if BAKER in user:
            return f"Rephrased: {BAKER_REPHRASED}\n\nThis keeps every number."
        return "The answer is 210."  # answers instead of rephrasing: no question
    if system.startswith("You rewrite"):
        if "She sells x rolls" in user:
            return ("A baker makes 24 rolls in the morning and 18 rolls in the afternoon. She "
                    "sells x rolls and has 12 rolls left. What is the value of unknown variable x?")
        return "Tom reads 15 pages a day and 210 pages in total. How many weeks?"  # lost x
    assert system.startswith("You solve"), system
    if "If we know the answer to the above question is" in user:
        return ("The answer is 2." if "Tom" in user else "The answer is 31.")  # baker: wrong
    if "unknown variable x" in user:
        return "42 - x = 12, so x = 30.\nThe answer is 30."
    if user in (BAKER, BAKER_REPHRASED):
        return "24 + 18 = 42 and 42 - 30 = 12.\nThe answer is 12."
    if user == TOM:
        return "15 * 7 = 105.\nThe answer is 105."
    raise AssertionError(user)


def run(recipe: Recipe, out: Path, backend: ScriptedTestBackend, limit: int) -> dict:
    return asyncio.run(run_recipe(recipe, out, RunOptions(backend=backend, limit=limit))).to_json()


def test_metamath_four_augmentations_verified_against_their_targets(tmp_path: Path) -> None:
    backend = ScriptedTestBackend(responder)
    recipe = Recipe.load("metamath", {"samples": "2", "keep": "2"})
    summary = run(recipe, tmp_path / "out", backend, limit=2)
    steps = {s["name"]: s for s in summary["steps"]}
    assert all(step_closes(s) for s in steps.values())
    questions, solutions = steps["questions"], steps["solutions"]
    assert questions["in"] == 2 and questions["expanded"] == 2 and questions["out"] == 8
    assert questions["llm_calls"] == 4  # rephrase + sv per problem; fobar is a template
    # tom/rephrase and tom/sv are dropped before solving; 6 questions x 2 samples.
    assert solutions["in"] == 8 and solutions["out"] == 4 and solutions["dropped"] == 4
    assert solutions["llm_calls"] == 12 == backend.calls - 4

    kept = read_jsonl(tmp_path / "out" / "data.jsonl")
    got = sorted((r["original_question"][:3], r["augmentation"], r["answer"]) for r in kept)
    assert got == [("A b", "answer_aug", "12"), ("A b", "rephrase", "12"),
                   ("A b", "sv", "30"), ("Tom", "fobar", "2")]
    for r in kept:  # the independent re-check
        assert r["verified"] is True
        assert answers_equal(extract_answer(r["solution"], last_number=False), r["answer"])
        assert r["gold"] == r["answer"]
        if r["augmentation"] in ("sv", "fobar"):
            masked_question, number = masked(r["original_question"])
            assert r["masked_number"] == number == r["answer"]
            assert r["original_answer"] != r["answer"]
        else:
            assert r["masked_number"] is None and r["original_answer"] == r["answer"]
    by_kind = {(r["original_question"][:3], r["augmentation"]): r for r in kept}
    assert by_kind[("A b", "rephrase")]["question"] == BAKER_REPHRASED  # label + chatter gone
    fobar = by_kind[("Tom", "fobar")]["question"]
    assert fobar == (f"{masked(TOM)[0]} If we know the answer to the above question is 210, "
                     "what is the value of unknown variable x?")
    # Two identical correct samples are one solution (keep=2 still gives one record).
    assert sum(1 for r in kept if r["augmentation"] == "answer_aug") == 1

    reasons = {(d["record"]["original_question"][:3], d["record"]["augmentation"]): d["reason"]
               for d in read_jsonl(tmp_path / "out" / "dropped.jsonl")}
    assert reasons[("Tom", "rephrase")] == ("rephrase: the rephrasing does not end with a "
                                            "question (cut off or an answer)")
    assert reasons[("Tom", "sv")] == "sv: the rewritten question lost the unknown variable x"
    assert reasons[("Tom", "answer_aug")] == ("answer_aug: no solution reached '210' in 2 "
                                              "samples (answers: '105', '105')")
    assert reasons[("A b", "fobar")].startswith("fobar: no solution reached '30'")

    again = ScriptedTestBackend(responder)  # a rerun replays from the cache
    run(Recipe.load("metamath", {"samples": "2", "keep": "2"}), tmp_path / "out", again, limit=2)
    assert again.calls == 0


def test_metamath_augmentations_knob(tmp_path: Path) -> None:
    backend = ScriptedTestBackend(responder)
    recipe = Recipe.load("metamath", {"samples": "1", "augmentations": "[fobar]"})
    summary = run(recipe, tmp_path / "out", backend, limit=2)
    questions = next(s for s in summary["steps"] if s["name"] == "questions")
    assert questions["out"] == 2 and questions["llm_calls"] == 0
    assert [r["augmentation"] for r in read_jsonl(tmp_path / "out" / "data.jsonl")] == ["fobar"]


def test_mask_number_is_deterministic_and_masks_whole_numbers() -> None:
    question = "She buys 1,200 beads at $5.50 each for the 3rd time and 2 rings. How much?"
    picks = {mask_number(question, seed) for seed in range(40)}
    assert {p[1] for p in picks if p} == {"1200", "5.50", "2"}  # not the 3 of "3rd"
    assert all(p is not None and p[0].count("x") == 1 for p in picks)
    assert mask_number(question, 7) == mask_number(question, 7)
    assert ("She buys 1,200 beads at $x each for the 3rd time and 2 rings. How much?", "5.50") \
        in picks
    assert mask_number("Solve for x: x + 3 = 5. What is 2 + x?", 0) is None  # x taken
    assert mask_number("How many legs does a spider have?", 0) is None


def test_question_checks_and_cleaning() -> None:
    assert clean_question('**Rephrased question:** "How many are left?"') == "How many are left?"
    sv = {"augmentation": "sv", "original_answer": "12", "original_question": BAKER}
    ok = "She sells x rolls and has 12 left. What is the value of unknown variable x?"
    assert question_problem({**sv, "question": ok}) is None
    assert "does not state the answer '12'" in question_problem(
        {**sv, "question": "She sells x rolls. What is the value of unknown variable x?"})
    assert question_problem({**sv, "question": ""}) == "empty question"
    rephrase = {"augmentation": "rephrase", "original_question": BAKER}
    assert "verbatim" in question_problem({**rephrase, "question": BAKER.upper()})
    assert question_problem({"augmentation": "fobar", "question": "anything"}) is None
