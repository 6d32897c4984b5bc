"""Calibration against models (issue 25 item 4): ``calibrate`` + ``calibration_band`` in
``logic-solve --set calibrate=true`` and on math rows, with ScriptedTestBackend (a scripted
test backend standing in for each model) whose skill is set per knob level, so every pass rate,
band decision and report row is known in advance."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from synthloom.api import RunOptions, run, run_recipe
from synthloom.core.recipe import Recipe
from synthloom.methods.calibrate.report import markdown, read_report
from synthloom.methods.calibrate.steps import BandConfig, band_reason
from tests.support.runs import assert_closed, read_jsonl, step
from tests.support.scripted_backend import ScriptedTestBackend, last_user_text

TASKS = "game24,zebra,word_sorting"
OVERRIDES = {"tasks": TASKS, "count": "5", "calibrate": "true", "k": "4"}


def puzzles(tmp_path: Path) -> dict[str, dict[str, Any]]:
    """The items the logic-solve source makes for OVERRIDES, by question (no model)."""
    gen = {k: v for k, v in OVERRIDES.items() if k in ("tasks", "count")}
    run(Recipe.load("logic", gen), tmp_path / "gen")
    return {r["question"]: r for r in read_jsonl(tmp_path / "gen" / "data.jsonl")}


def skilled(items: dict[str, dict[str, Any]], skill: int, never: str = ""):
    """A model that solves a level-d item for the samples whose seed % 4 < skill - d: with the
    k = 4 samples' seeds seed+0..3 it solves exactly max(0, min(4, skill - d)) of 4. Items of
    task ``never`` it never solves."""

    def respond(request, seed) -> str:
        item = items.get(last_user_text(request))
        if item is None:  # the greedy solve step after the band
            return "Answer: ?"
        if item["task"] != never and (seed or 0) % 4 < skill - item["difficulty"]:
            return f"Let me think.\nAnswer: {item['answer']}"
        return "Answer: 1 or 2"  # a hedge: wrong for every verifier
    return respond


def go(recipe: Recipe, out: Path, backend: Any, **options: Any) -> dict[str, Any]:
    return asyncio.run(run_recipe(recipe, out, RunOptions(backend=backend, **options))).to_json()


def test_band_keeps_items_the_target_sometimes_solves_and_reports_levels(tmp_path: Path) -> None:
    items = puzzles(tmp_path)
    target = ScriptedTestBackend(skilled(items, skill=5), name="target")
    summary = go(Recipe.load("logic-solve", OVERRIDES), tmp_path / "out", target)
    assert_closed(summary)
    n = 5 * 3
    assert step(summary, "calibrate")["out"] == n
    assert step(summary, "calibrate")["llm_calls"] == 4 * n
    # Levels 1..5 (mix): the target solves 4, 3, 2, 1, 0 of 4; the band (0, 1) keeps 2..4.
    band = step(summary, "band")
    assert (band["kept"], band["dropped"]) == (9, 6)
    assert step(summary, "solve")["in"] == 9 and target.calls == 4 * n + 9
    kept = read_jsonl(tmp_path / "out" / "data.jsonl")
    assert sorted({r["difficulty"] for r in kept}) == [2, 3, 4]
    for r in kept:
        assert r["target_k"] == 4 and r["target_passes"] == 5 - r["difficulty"]
        assert r["target_pass_rate"] == (5 - r["difficulty"]) / 4
        assert r["target_pass_at_k"] == 1.0 and "strong_k" not in r
        assert r["calibration_task"] == r["task"]
        assert r["calibration_level"] == str(r["difficulty"])
        assert r["_meta"]["target_model"] == "scripted:target"
    dropped = read_jsonl(tmp_path / "out" / "dropped.jsonl")
    reasons = sorted({d["reason"] for d in dropped if d["step"] == "band"})
    assert reasons == ["too easy: target solved 4/4 (pass rate 1.00 >= 1.0)",
                       "too hard: target solved 0/4 (pass rate 0.00 <= 0.0)"]
    report = read_report(tmp_path / "out")
    assert report is not None and set(report["tasks"]) == set(TASKS.split(","))
    rows = report["tasks"]["game24"]
    assert [r["level"] for r in rows] == ["1", "2", "3", "4", "5", "all"]
    assert [r["target_pass_rate"] for r in rows[:5]] == [1.0, 0.75, 0.5, 0.25, 0.0]
    assert [r["kept"] for r in rows] == [0, 1, 1, 1, 0, 3]
    assert rows[-1]["items"] == 5 and rows[-1]["yield"] == 0.6
    assert report["dropped_by_reason"] == {"too easy": 3, "too hard": 3}
    md = (tmp_path / "out" / "calibration.md").read_text()
    assert md == markdown(report) and "## zebra" in md and "| 3 | 1 | 0.50 |" in md
    # A rerun replays every sample from the cache.
    again = ScriptedTestBackend(skilled(items, skill=5), name="target")
    go(Recipe.load("logic-solve", OVERRIDES), tmp_path / "out", again)
    assert again.calls == 0


def test_synlogic_band_with_a_named_target_and_strong_model(tmp_path: Path) -> None:
    items = puzzles(tmp_path)
    run_model = ScriptedTestBackend(skilled(items, skill=0), name="run")
    target = ScriptedTestBackend(skilled(items, skill=5), name="target")
    # The strong model solves every level at least once (skill 6: level 5 -> 1 of 4), but
    # never a zebra puzzle.
    strong = ScriptedTestBackend(skilled(items, skill=6, never="zebra"), name="strong")
    overrides = {**OVERRIDES, "strong_k": "4", "strong_solves": "true", "band_above": "null",
                 "band_below": "0.5"}
    summary = go(Recipe.load("logic-solve", overrides), tmp_path / "out", run_model,
                 model_for={"target": target, "strong": strong})
    assert_closed(summary)
    assert (target.calls, strong.calls) == (4 * 15, 4 * 15)
    # Target pass rate < 0.5: levels 4 and 5; the strong model must solve: not zebra.
    kept = read_jsonl(tmp_path / "out" / "data.jsonl")
    assert sorted((r["task"], r["difficulty"]) for r in kept) == [
        ("game24", 4), ("game24", 5), ("word_sorting", 4), ("word_sorting", 5)]
    assert all(r["strong_pass_at_k"] == 1.0 and r["strong_k"] == 4 for r in kept)
    assert run_model.calls == len(kept)  # only the greedy solve runs on the run's model
    reasons = {d["reason"] for d in read_jsonl(tmp_path / "out" / "dropped.jsonl")}
    assert "unsolved: strong model solved 0/4" in reasons
    rows = read_report(tmp_path / "out")["tasks"]["zebra"]
    assert rows[-1]["strong_pass_at_k"] == 0.0 and rows[-1]["kept"] == 0


def test_calibration_off_by_default_changes_nothing(tmp_path: Path) -> None:
    items = puzzles(tmp_path)
    backend = ScriptedTestBackend(skilled(items, skill=5))
    overrides = {k: v for k, v in OVERRIDES.items() if k in ("tasks", "count")}
    summary = go(Recipe.load("logic-solve", overrides), tmp_path / "out", backend)
    assert backend.calls == 15 and summary["records"] == 15
    assert step(summary, "calibrate")["llm_calls"] == 0
    assert read_report(tmp_path / "out") is None
    assert "target_pass_rate" not in read_jsonl(tmp_path / "out" / "data.jsonl")[0]


def test_math_items_calibrate_by_their_gold_answer(tmp_path: Path) -> None:
    rows = tmp_path / "rows.jsonl"
    problems = [{"question": f"What is {a} + {a}?", "gold": str(2 * a)} for a in range(6)]
    problems.append({"question": "Name a colour."})  # no verifier: a counted failure
    rows.write_text("".join(json.dumps(p) + "\n" for p in problems))

    def half_right(request, seed) -> str:
        # Right on even seeds: 2 of 4 samples; "What is 0 + 0?" always right.
        a = int(last_user_text(request).split()[2]) if "+" in last_user_text(request) else 0
        return f"The answer is {2 * a}." if a == 0 or (seed or 0) % 2 == 0 else "Answer: 7"

    recipe = Recipe.from_dict({
        "name": "calibrate-math",
        "sources": [{"name": "rows", "type": "rows", "path": str(rows)}],
        "steps": [{"name": "calibrate", "type": "calibrate", "k": 4},
                  {"name": "band", "type": "calibration_band"}],
        "sinks": [{"type": "jsonl", "path": "data.jsonl"}]})
    summary = go(recipe, tmp_path / "out", ScriptedTestBackend(half_right))
    assert_closed(summary)
    assert step(summary, "calibrate")["failed"] == 1
    failed = read_jsonl(tmp_path / "out" / "failed.jsonl")
    assert "no verifier" in failed[0]["message"]
    kept = read_jsonl(tmp_path / "out" / "data.jsonl")
    assert len(kept) == 5 and all(r["target_pass_rate"] == 0.5 for r in kept)
    assert all(r["calibration_task"] == "synthloom/math" for r in kept)
    assert read_report(tmp_path / "out")["tasks"]["synthloom/math"][0]["kept"] == 5


def test_band_reason_edges() -> None:
    record = {"target_pass_rate": 0.5, "target_passes": 1, "target_k": 2}
    assert band_reason(record, BandConfig(name="b")) is None
    assert band_reason(record, BandConfig(name="b", target_below=0.5)).startswith("too easy")
    assert band_reason(record, BandConfig(name="b", target_above=0.5)).startswith("too hard")
    assert band_reason(record, BandConfig(name="b", strong_solves=True)).startswith(
        "no strong samples")
    assert band_reason({}, BandConfig(name="b")).startswith("not calibrated")


def test_level_search_moves_towards_the_band_until_the_yield_is_reached(tmp_path: Path) -> None:
    from synthloom.methods.calibrate.search import CalibrateLevels

    def search(start: int) -> dict[str, Any]:
        return {"name": "search", "type": "calibrate_levels", "k": 4, "start": start,
                "per_level": 3, "target_yield": 0.5}

    # The items the search will generate, known in advance (same config, same seeds).
    probe = CalibrateLevels(name="probe", per_level=3)
    items = {i["question"]: i for task in ("game24", "zebra") for level in range(1, 6)
             for i in probe._items(task, level)}
    for start, expected in ((1, [1, 2]), (5, [5, 4])):
        recipe = Recipe.from_dict({
            "name": "levels",
            "sources": [{"name": "tasks", "type": "logic_tasks", "tasks": "game24,zebra",
                         "count": 1}],
            "steps": [search(start), {"name": "band", "type": "calibration_band"}],
            "sinks": [{"type": "jsonl", "path": "data.jsonl"}]})
        out = tmp_path / f"start{start}"
        backend = ScriptedTestBackend(skilled(items, skill=5))
        summary = go(recipe, out, backend)
        assert_closed(summary)
        # Level 1: solved 4/4 (too easy) -> level 2 (3/4, all in band): stop. Level 5: 0/4
        # (too hard) -> level 4 (1/4): stop.
        assert backend.calls == 2 * 2 * 3 * 4
        kept = read_jsonl(out / "data.jsonl")
        assert len(kept) == 2 * 3
        assert {r["difficulty"] for r in kept} == {expected[1]}
        assert all(r["search_chosen"] == expected[1] for r in kept)
        assert [t["level"] for t in kept[0]["search_tried"]] == expected
        assert [t["yield"] for t in kept[0]["search_tried"]] == [0.0, 1.0]
        assert all(r["verified"] is True and r["question"] in items for r in kept)
        rows = read_report(out)["tasks"]["zebra"]
        assert [r["level"] for r in rows] == [*map(str, sorted(expected)), "all"]
        assert [r["kept"] for r in rows] == ([0, 3, 3] if start == 1 else [3, 0, 3])


def test_reasoning_gym_items_calibrate_with_the_gym_scorer(tmp_path: Path) -> None:
    pytest.importorskip("reasoning_gym", reason="reasoning-gym not installed (extra: gym)")
    from synthloom.verify.gym import gym_items

    entries = {i["question"]: i for i in gym_items("basic_arithmetic", count=4, seed=1)}

    def half_right(request, seed) -> str:
        answer = entries[last_user_text(request)]["answer"]
        return f"Answer: {answer}" if (seed or 0) % 2 == 0 else f"Answer: {answer}9"

    recipe = Recipe.from_dict({
        "name": "calibrate-gym",
        "sources": [{"name": "gym", "type": "gym_tasks", "datasets": "basic_arithmetic",
                     "count": 4, "seed": 1}],
        "steps": [{"name": "calibrate", "type": "calibrate", "k": 4},
                  {"name": "band", "type": "calibration_band"}],
        "sinks": [{"type": "jsonl", "path": "data.jsonl"}]})
    summary = go(recipe, tmp_path / "out", ScriptedTestBackend(half_right))
    assert_closed(summary)
    kept = read_jsonl(tmp_path / "out" / "data.jsonl")
    assert len(kept) == 4 and all(r["target_pass_rate"] == 0.5 for r in kept)
    assert {r["calibration_task"] for r in kept} == {"gym/basic_arithmetic"}
    assert all(r["calibration_level"].startswith("{") for r in kept)  # its config
