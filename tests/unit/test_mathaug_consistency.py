"""self-consistency with the scripted test backend (ScriptedTestBackend, a test double): the
majority vote over equivalent answers, the agreement threshold, the drop reason, matches_gold
with and without a gold column, and the accounting."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path

from synthloom.api import RunOptions, run_recipe
from synthloom.core.recipe import Recipe
from synthloom.llm.types import LLMRequest
from synthloom.methods.math.consistency import cluster_answers, majority
from synthloom.verify.math_answers import answers_equal, extract_answer
from tests.support.runs import read_jsonl
from tests.support.scripted_backend import ScriptedTestBackend, last_user_text

# Four samples per problem, handed out in call order.
SAMPLES = {
    "A baker": ["The answer is 12.", "So 12.0 rolls.\nThe answer is 12.0.", "The answer is $12.",
                "The answer is 13."],                          # 3/4 for 12: kept, matches gold
    "Tom reads": ["The answer is 105.", "The answer is 210.", "The answer is 105.",
                  "The answer is 200."],                       # 2/4 for 105: kept, wrong
    "A box holds": ["The answer is 12.", "The answer is 13.", "The answer is 14.",
                    "75 / 6 is 12.5, so it takes 13"],         # 1/4 each, one unstated: dropped
}


class Responder:
    def __init__(self) -> None:
        self.seen: Counter[str] = Counter()

    def __call__(self, request: LLMRequest, seed: int | None) -> str:
        user = last_user_text(request)
        start = next(s for s in SAMPLES if s in user)
        self.seen[start] += 1
        return SAMPLES[start][(self.seen[start] - 1) % 4]


def run(recipe: Recipe, out: Path, backend: ScriptedTestBackend, limit: int) -> dict:
    return asyncio.run(run_recipe(recipe, out, RunOptions(backend=backend, limit=limit))).to_json()


def test_self_consistency_votes_and_thresholds(tmp_path: Path) -> None:
    backend = ScriptedTestBackend(Responder())
    summary = run(Recipe.load("self-consistency", {"samples": "4"}), tmp_path / "out",
                  backend, limit=3)
    vote = next(s for s in summary["steps"] if s["name"] == "vote")
    assert vote["in"] == 3 and vote["out"] == 2 and vote["dropped"] == 1
    assert vote["in"] == vote["out"] + vote["failed"] + vote["dropped"]
    assert vote["llm_calls"] == 12 == backend.calls
    baker, tom = read_jsonl(tmp_path / "out" / "data.jsonl")
    assert baker["answer"] == "12" and baker["votes"] == {"12": 3, "13": 1}
    assert baker["confidence"] == 0.75 and baker["samples"] == 4
    assert baker["gold"] == "12" and baker["matches_gold"] is True
    assert tom["answer"] == "105" and tom["confidence"] == 0.5 and tom["matches_gold"] is False
    assert tom["votes"] == {"105": 2, "210": 1, "200": 1}
    for r in (baker, tom):  # re-check: the rationale states the majority answer, votes add up
        assert answers_equal(extract_answer(r["rationale"], last_number=False), r["answer"])
        assert sum(r["votes"].values()) + r["answers"].count(None) == r["samples"]
        assert max(r["votes"].values()) / r["samples"] == r["confidence"]
        assert r["_meta"]["usage"]["completion_tokens"] > len(r["rationale"].split())
    [dropped] = read_jsonl(tmp_path / "out" / "dropped.jsonl")
    assert dropped["reason"] == ("agreement 0.25 < 0.5 (answers: '12': 1, '13': 1, '14': 1, "
                                 "none: 1)")


def test_self_consistency_without_gold_and_min_agreement(tmp_path: Path) -> None:
    source = tmp_path / "unlabelled.jsonl"
    source.write_text("".join(json.dumps({"question": q}) + "\n" for q in (
        "A baker makes 24 rolls and 18 more, and sells 30. How many are left?",
        "Tom reads 15 pages a day. How many pages in 2 weeks?")))
    backend = ScriptedTestBackend(Responder())
    recipe = Recipe.load("self-consistency", {"samples": "4", "min_agreement": "0.6",
                                              "input": str(source)})
    summary = run(recipe, tmp_path / "out", backend, limit=2)
    vote = next(s for s in summary["steps"] if s["name"] == "vote")
    assert (vote["in"], vote["out"], vote["dropped"]) == (2, 1, 1)
    [kept] = read_jsonl(tmp_path / "out" / "data.jsonl")
    assert kept["answer"] == "12" and kept["gold"] is None and kept["matches_gold"] is None
    [dropped] = read_jsonl(tmp_path / "out" / "dropped.jsonl")
    assert dropped["reason"].startswith("agreement 0.5 < 0.6 (answers: '105': 2")


def test_clustering_is_equivalence_aware_and_ties_go_to_the_first() -> None:
    clusters = cluster_answers(["1/2", None, "0.5", "50%", "3", "3.0"])
    assert clusters == [("1/2", [0, 2, 3]), ("3", [4, 5])]  # 50% equals 0.5 too
    assert majority(clusters) == ("1/2", [0, 2, 3])
    assert majority(cluster_answers(["7", "8", "8", "7"])) == ("7", [0, 3])
    assert majority(cluster_answers([None, None])) is None
