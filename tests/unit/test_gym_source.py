"""reasoning-gym as a source (``gym_tasks``) and its scorer as a verifier (``verify_gym``):
records regenerate their entries, only a score of 1.0 counts, and a missing extra is a clear
error."""

from __future__ import annotations

import builtins
from pathlib import Path

import pytest

from synthloom.api import run
from synthloom.core.errors import SynthloomError
from synthloom.core.recipe import Recipe
from synthloom.verify import gym
from tests.support.runs import assert_closed, read_jsonl

pytest.importorskip("reasoning_gym", reason="the gym extra (reasoning-gym) is not installed")


def _recipe(datasets: object, count: int = 4, column: str | None = None) -> Recipe:
    verify: dict = {"name": "verify", "type": "verify_gym"}
    if column:
        verify.update(column=column, keep_incorrect=True)
    return Recipe.from_dict({
        "name": "gym-test", "seed": 0,
        "sources": [{"name": "gym", "type": "gym_tasks", "datasets": datasets,
                     "count": count, "seed": 3}],
        "steps": [verify],
        "sinks": [{"type": "jsonl", "path": "data.jsonl"}]})


def test_any_dataset_by_name_with_its_config(tmp_path: Path) -> None:
    datasets = {"mini_sudoku": {"min_empty": 6, "max_empty": 8}, "puzzle24": {},
                "graph_color": {}, "no_such_dataset": {}}
    summary = run(_recipe(datasets), tmp_path / "out").to_json()
    assert_closed(summary)
    records = read_jsonl(tmp_path / "out" / "data.jsonl")
    # graph_color stores no reference answer: its 4 items are dropped with that reason;
    # the unknown dataset is one counted source failure.
    assert [r["task"] for r in records] == ["gym/mini_sudoku", "gym/puzzle24"] * 4
    assert summary["steps"][0]["failed"] == 1 and summary["dropped"] == 4
    assert "unknown reasoning-gym dataset 'no_such_dataset'" in \
        (tmp_path / "out" / "failed.jsonl").read_text()
    assert "stores no reference answer" in (tmp_path / "out" / "dropped.jsonl").read_text()
    for r in records:
        assert r["verified"] is True and r["gym_score"] == 1.0
        entry = gym.gym_entry(r)  # the columns regenerate the entry exactly
        assert entry["question"] == r["question"] and entry["answer"] == r["answer"]
        assert r["gym_metadata"]["source_dataset"] == r["gym_dataset"]
        assert r["_meta"]["step"] == "verify" and r["_meta"]["parents"] and r["gym_version"]
    sudoku = [r for r in records if r["gym_dataset"] == "mini_sudoku"]
    assert all(6 <= r["gym_metadata"]["num_empty"] <= 8 for r in sudoku)


def test_only_a_full_score_is_verified() -> None:
    record = next(gym.gym_items("knights_knaves", {"n_people": 3}, count=1, seed=5))
    gold = record["answer"]
    assert gym.verify_gym_answer(record, gold) is None
    assert gym.verify_gym_answer(record, f"<think>hmm</think>\n<answer>{gold}</answer>") is None
    # One person's kind flipped: reasoning-gym gives partial credit, synthloom says no.
    names = record["gym_metadata"]["names"]
    terms = record["gym_metadata"]["knight_knave_terms"]
    flipped = gold.replace(f"{names[0]} is {terms['a_knight']}", f"{names[0]} is X", 1) \
        .replace(f"{names[0]} is {terms['a_knave']}", f"{names[0]} is {terms['a_knight']}", 1) \
        .replace(f"{names[0]} is X", f"{names[0]} is {terms['a_knave']}", 1)
    score, reason = gym.grade(record, flipped)
    assert 0 < score < 1 and reason == f"reasoning-gym score {score:.3g} < 1.0"
    assert gym.verify_gym_answer(record, "") == "no answer"
    assert gym.verify_gym_answer(record, "<think>Answer: " + gold) == "no answer"


def test_verify_gym_grades_a_reply_column(tmp_path: Path) -> None:
    run(_recipe(["puzzle24"], count=3, column="answer"), tmp_path / "out")
    records = read_jsonl(tmp_path / "out" / "data.jsonl")
    assert [r["verified"] for r in records] == [True] * 3


def test_a_bad_config_is_named() -> None:
    with pytest.raises(SynthloomError, match="bad config"):
        gym.dataset("puzzle24", {"no_such_knob": 1})
    with pytest.raises(SynthloomError, match="unknown reasoning-gym dataset"):
        gym.dataset("no_such_dataset")


def test_without_the_extra_the_error_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_gym(name: str, *args: object, **kwargs: object) -> object:
        if name.split(".")[0] == "reasoning_gym":
            raise ImportError("No module named 'reasoning_gym'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_gym)
    with pytest.raises(SynthloomError, match=r'pip install "synthloom\[gym\]"'):
        gym.require_gym()
