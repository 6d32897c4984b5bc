"""Scale smoke: every shipped recipe runs on >= 1,000 inputs on the instant scripted backend.

A recipe tried only on 2-12 items once hid a hang at 97 (the executor deadlock of fc6fb9c).
Here each recipe in ``packaged_recipes()`` (a new one is covered automatically, and fails
loudly until tests/support/scale_inputs.py has an input generator for it) runs through
``synthloom.api.run_recipe`` on >= 1,000 generated inputs, with ``InstantSchemaBackend`` (no
model: answers are made in microseconds from the request), under ``asyncio.wait_for`` so a hang
fails with a clear message. Asserted: the run finishes ok, every step's accounting closes, each
source read its >= 1,000 inputs, each sink file holds exactly the summary's count of records,
and records reach the main sink. No embedded model here: the engine's behaviour at scale is
what is tested, not the model's output.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from synthloom.api import RunOptions, run_recipe
from synthloom.core.recipe import Recipe, packaged_recipes
from tests.support.instant_backend import InstantSchemaBackend
from tests.support.runs import assert_closed, read_jsonl, step
from tests.support.scale_inputs import scale_case

pytestmark = pytest.mark.integration

N = 1000
#: A hang fails here, with the recipe's name, before pytest-timeout's 300 s kills the test.
HANG_TIMEOUT_S = 240.0
CODE_SHARE = 0.1
#: Recipes where no record reaching the main sink is expected, and why. None today: the instant
#: backend's answers pass every recipe's checks for some items (a math problem whose answer is
#: its only number, a copied Q-A pair, ...). Add a recipe here only with the reason.
ZERO_FINAL_EXPECTED: dict[str, str] = {}


def _run(recipe: Recipe, out: Path) -> dict[str, Any]:
    # Batches of 64 and 64 calls in flight: fewer, larger batches cut the per-batch cost
    # (cache lookups, commits) that dominates when the model answers at once.
    # One code answer in ten is a program; the rest talk about code (dropped before any run):
    # a sandbox run costs ~0.1-0.3 s on 2 cores, so pot, mathgenie, code-tests and tool-maker
    # would need ~10 minutes for every item's program, while the engine's own work at 1,000
    # items is what this smoke is about (the sandbox still runs ~100+ programs per recipe).
    backend = InstantSchemaBackend(code_share=CODE_SHARE)
    options = RunOptions(backend=backend, batch_size=64, concurrency=64)
    run = asyncio.wait_for(run_recipe(recipe, out, options), timeout=HANG_TIMEOUT_S)
    try:
        return asyncio.run(run).to_json()
    except TimeoutError:
        pytest.fail(f"recipe {recipe.name} did not finish on {N} inputs within "
                    f"{HANG_TIMEOUT_S:.0f} s (a hang?)")


@pytest.mark.parametrize("name", sorted(packaged_recipes()))
def test_recipe_runs_on_1000_inputs(name: str, tmp_path: Path) -> None:
    case = scale_case(name, tmp_path / "inputs", N)
    recipe = Recipe.load(name, case.overrides)
    out = tmp_path / "run"
    summary = _run(recipe, out)

    assert summary["status"] == "ok", (summary["status"], summary["stopped_reason"])
    assert_closed(summary)
    assert all(s["failed"] == 0 for s in summary["steps"]), \
        [(s["name"], s["failed"]) for s in summary["steps"] if s["failed"]]
    for source in recipe.sources:
        assert step(summary, source.name)["in"] >= case.min_source_in >= N, source.name
    for i, sink in enumerate(recipe.sinks):
        rows = read_jsonl(out / sink.config.path)
        # The first sink's count is the summary's ``records``; another sink gets everything
        # its step emitted.
        expected = summary["records"] if i == 0 else step(summary, recipe.sink_input(sink))["out"]
        assert len(rows) == expected, (sink.config.path, len(rows), expected)
        assert len({r["_meta"]["id"] for r in rows}) == len(rows), sink.config.path
    if name in ZERO_FINAL_EXPECTED:
        assert summary["records"] == 0, ZERO_FINAL_EXPECTED[name]
    else:
        assert summary["records"] >= 1, [(s["name"], s["in"], s["dropped"])
                                          for s in summary["steps"]]


def test_every_recipe_has_an_input_generator(tmp_path: Path) -> None:
    """A recipe added without a generator fails here by name (and in its own case above)."""
    from tests.support.scale_inputs import GENERATORS

    assert sorted(set(packaged_recipes()) - set(GENERATORS)) == []
    with pytest.raises(KeyError, match="no input generator for recipe 'not-a-recipe'"):
        scale_case("not-a-recipe", tmp_path)
