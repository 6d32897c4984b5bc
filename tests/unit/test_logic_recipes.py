"""The logic recipes end to end: the ``logic_tasks`` source, ``verify_logic`` and, with the
ScriptedTestBackend (a scripted test backend standing in for a model), ``logic_solve``:
accounting, grading, caching, and ``synthloom logic verify``."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from synthloom.api import RunOptions, run, run_recipe
from synthloom.cli import app
from synthloom.core.errors import RecipeError
from synthloom.core.recipe import Recipe
from synthloom.verify.logic import TASKS, check_record, make_item, verify_answer
from tests.support.runs import assert_closed, read_jsonl, step_closes
from tests.support.scripted_backend import ScriptedTestBackend, last_user_text


def test_logic_recipe_makes_verified_regenerable_items(tmp_path: Path) -> None:
    recipe = Recipe.load("logic", {"count": "3"})
    summary = run(recipe, tmp_path / "out").to_json()
    assert summary["status"] == "ok" and summary["llm_calls"] == 0
    assert_closed(summary)
    records = read_jsonl(tmp_path / "out" / "data.jsonl")
    assert len(records) == 3 * len(TASKS) == summary["records"]
    # Interleaved: the first len(TASKS) records are one of each task, in registry order.
    assert [r["task"] for r in records[:len(TASKS)]] == list(TASKS)
    for r in records:
        assert r["verified"] is True and verify_answer(r, r["answer"]) is None
        assert r["difficulty"] == [1, 2, 3][r["index"]]  # "mix": levels in turn per task
        again = make_item(r["task"], r["difficulty"], r["seed"])
        assert again["question"] == r["question"] and again["answer"] == r["answer"]
    # Same seed, same items; --limit keeps a prefix.
    short = run(Recipe.load("logic", {"count": "3"}), tmp_path / "short", limit=5).to_json()
    assert short["records"] == 5
    assert [r["question"] for r in read_jsonl(tmp_path / "short" / "data.jsonl")] == \
        [r["question"] for r in records[:5]]


def test_logic_recipe_knobs(tmp_path: Path) -> None:
    recipe = Recipe.load("logic", {"tasks": "sudoku,maze", "count": "4", "difficulty": "5",
                                   "seed": "9"})
    run(recipe, tmp_path / "out")
    records = read_jsonl(tmp_path / "out" / "data.jsonl")
    assert [r["task"] for r in records] == ["sudoku", "maze"] * 4
    assert {r["difficulty"] for r in records} == {5}
    assert len({r["question"] for r in records}) == 8
    other = Recipe.load("logic", {"tasks": "sudoku,maze", "count": "4", "difficulty": "5"})
    run(other, tmp_path / "other")
    assert read_jsonl(tmp_path / "other" / "data.jsonl")[0]["question"] != records[0]["question"]
    with pytest.raises(RecipeError, match="unknown logic tasks"):
        Recipe.load("logic", {"tasks": "sudoku,chess"})
    with pytest.raises(RecipeError, match="difficulty"):
        Recipe.load("logic", {"difficulty": "7"})


def test_verify_logic_drops_a_wrong_or_ambiguous_item() -> None:
    item = make_item("sudoku", 3, 0)
    assert check_record(item) is None
    wrong = {**item, "answer": item["answer"].replace("1", "x", 1)}
    assert check_record(wrong).startswith("stored answer fails")
    grid = list(item["puzzle"])
    grid[0] = "." * 9  # blank the whole first row...
    grid[1] = "." * 9  # ...and the second: the stored answer still fits, but not alone
    assert check_record({**item, "puzzle": grid}) == "more than one solution"
    assert check_record({**item, "puzzle": grid}, check_unique=False) is None


PLAN = ["right", "wrong", "none", "cut"]


def solver_for(answers: dict[str, str]):
    """Answer the n-th distinct question right, wrong, not at all, or cut off, in turn."""
    order: dict[str, int] = {}

    def respond(request, seed) -> str:
        question = last_user_text(request)
        kind = PLAN[order.setdefault(question, len(order)) % len(PLAN)]
        answer = answers[question]
        if kind == "right":
            return f"Let me think.\nAnswer: {answer}"
        if kind == "wrong":
            return "Answer: 1, 2"
        if kind == "none":
            return ""
        return "I will go through the cells one by one and"  # no answer line, ends mid-way

    return respond


def test_logic_solve_grades_every_reply_and_drops_nothing(tmp_path: Path) -> None:
    overrides = {"tasks": "game24,zebra,n_queens,word_sorting", "count": "2",
                 "max_tokens": "64"}
    recipe = Recipe.load("logic-solve", overrides)
    # The questions and answers the source will produce (same source, no model).
    gen = Recipe.load("logic", {k: v for k, v in overrides.items() if k != "max_tokens"})
    run(gen, tmp_path / "gen")
    answers = {r["question"]: r["answer"] for r in read_jsonl(tmp_path / "gen" / "data.jsonl")}
    backend = ScriptedTestBackend(solver_for(answers))
    summary = asyncio.run(run_recipe(recipe, tmp_path / "out",
                                     RunOptions(backend=backend))).to_json()
    steps = {s["name"]: s for s in summary["steps"]}
    assert all(step_closes(s) for s in steps.values())
    assert steps["solve"]["in"] == steps["solve"]["out"] == 8 and steps["solve"]["dropped"] == 0
    # An empty reply is asked twice more before it is graded "no answer" (issue 22 item 6):
    # 2 items x 2 more calls, counted as failed requests.
    assert steps["solve"]["llm_calls"] == backend.calls == 8 + 2 * 2
    assert summary["llm"]["failed_requests"] == 2
    records = read_jsonl(tmp_path / "out" / "data.jsonl")
    assert [r["solved"] for r in records] == [True, False, False, False] * 2
    for r in records:
        assert r["verified"] is True
        # Independent re-grade of what the model said.
        assert (verify_answer(r, r["model_answer"]) is None) == r["solved"]
        assert (r["solve_reason"] is None) == r["solved"]
        assert r["_meta"]["model"] == "scripted:scripted"
    assert records[0]["model_answer"] == records[0]["answer"]
    assert records[1]["model_answer"] == "1, 2"
    assert records[2]["model_answer"] is None and records[2]["solve_reason"] == "no answer"
    assert records[3]["model_answer"].startswith("I will go")
    # A rerun replays from the cache: no calls.
    again = ScriptedTestBackend(solver_for(answers))
    asyncio.run(run_recipe(Recipe.load("logic-solve", overrides), tmp_path / "out",
                           RunOptions(backend=again)))
    assert again.calls == 0


def test_cli_logic_verify_and_show(tmp_path: Path) -> None:
    run(Recipe.load("logic", {"count": "1"}), tmp_path / "out")
    data = tmp_path / "out" / "data.jsonl"
    runner = CliRunner()
    done = runner.invoke(app, ["logic", "verify", str(data)])
    assert done.exit_code == 0, done.output
    report = json.loads(done.output)
    assert report["records"] == report["ok"] == len(TASKS) and report["failed"] == 0
    records = read_jsonl(data)
    records[2]["answer"] = "A=1"  # a tampered answer
    records[3]["seed"] += 1  # a seed that no longer rebuilds the question
    data.write_text("".join(json.dumps(r) + "\n" for r in records))
    done = runner.invoke(app, ["logic", "verify", str(data)])
    assert done.exit_code == 1
    report = json.loads(done.output)
    assert report["failed"] == 2
    assert {f["task"] for f in report["failures"]} == {records[2]["task"], records[3]["task"]}
    shown = runner.invoke(app, ["logic", "show", "zebra", "--difficulty", "2", "--seed", "5"])
    assert json.loads(shown.output) == make_item("zebra", 2, 5)
    listed = runner.invoke(app, ["logic", "tasks"])
    assert all(name in listed.output for name in TASKS)
    lines = {line.split()[0]: line.split()[2] for line in listed.output.splitlines()}
    assert lines["dyck_language"] == "synlogic" and lines["word_sorting_rules"] == "ours"


def test_bad_knobs_are_config_errors_or_counted_failures(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="has no knob"):
        Recipe.load("logic", {"puzzles.knobs.sudoku.colour": "3"})
    with pytest.raises(RecipeError, match="unknown logic task"):
        Recipe.load("logic", {"puzzles.knobs.chess.size": "8"})
    # A knob value the generator refuses (a 5x5 Sudoku) fails those items, not the run.
    recipe = Recipe.load("logic", {"tasks": "sudoku,maze", "count": "2",
                                   "puzzles.knobs.sudoku.size": "5"})
    summary = run(recipe, tmp_path / "out").to_json()
    source = next(s for s in summary["steps"] if s["name"] == "puzzles")
    assert source["failed"] == 2 and source["out"] == 2 and step_closes(source)
    assert [r["task"] for r in read_jsonl(tmp_path / "out" / "data.jsonl")] == ["maze", "maze"]
