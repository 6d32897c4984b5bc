"""Magpie's tagging and filtering stage (magpie-align/magpie exp/unitag.py, exp/gen_dis.py,
data_sft/data_filter.ipynb) with the scripted test backend (a test double, no model): each tag
is asked with the authors' prompt and parsed into the authors' columns, the distance tags follow
gen_dis.py, each filter preset drops what it should with its reason, and the whole recipe keeps
only what the authors' high_quality_filter keeps."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from synthloom.api import RunOptions, run_recipe
from synthloom.core.recipe import Recipe
from synthloom.export.sinks import JsonlSink
from synthloom.methods.magpie.tags import (
    MagpieDistance,
    MagpieFilter,
    MagpieTag,
    language_of,
    neighbour_tags,
)
from synthloom.sources.files import JsonlRows
from tests.support.runs import read_jsonl, step_closes
from tests.support.scripted_backend import ScriptedTestBackend


def run(out: Path, rows: list[dict[str, Any]], steps: list, backend: Any,
        models: dict | None = None) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    path = out.parent / f"{out.name}-rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    recipe = Recipe(name="magpie-tags", sources=[JsonlRows(name="rows", path=str(path))],
                    steps=steps, sinks=[JsonlSink(path="data.jsonl")], models=models or {})
    return asyncio.run(run_recipe(recipe, out, RunOptions(backend=backend))).to_json()


class Tagger(ScriptedTestBackend):
    """Answers each of the authors' tag prompts (told apart by their own wording) with the
    JSON their exp/unitag.py parses; records the prompts."""

    def __init__(self, quality: dict[str, str] | None = None) -> None:
        super().__init__(self.answer)
        self.quality = quality or {}
        self.seen: list[str] = []

    def answer(self, request: Any, seed: int | None) -> str:
        prompt = request.messages[-1]["content"]
        self.seen.append(prompt)
        assert request.params.temperature == 0.0  # greedy, as unitag.py
        query = prompt.split("```\n", 1)[1].split("\n```", 1)[0] if "```" in prompt else ""
        if "label the difficulty level of the user query" in prompt:
            return json.dumps({"intent": f"The user wants to know {query[:20]}",
                               "knowledge": "To solve this problem, the models need to know X",
                               "difficulty": "hard" if "prove" in query else "very easy"})
        if "rate the quality of the user query based on its clarity" in prompt:
            return json.dumps({"explanation": "Clear enough.",
                               "input_quality": self.quality.get(query, "excellent")})
        if "Please label the task tags for the user query" in prompt:
            primary = "Math" if "prove" in query else "Information seeking"
            return json.dumps({"primary_tag": primary,
                               "other_tags": ["Reasoning", primary, "Reasoning"]})
        if '"safe"' in prompt or "safety reviewer" in str(request.messages):
            return json.dumps({"rationale": "ok", "safe": "bomb" not in prompt, "categories":
                               ["S9"] if "bomb" in prompt else []})
        raise AssertionError(f"unexpected prompt: {prompt[:80]}")


def test_each_tag_is_parsed_into_the_authors_columns(tmp_path: Path) -> None:
    rows = [{"instruction": "How do I prove that there are infinitely many primes?"},
            {"instruction": "Quelle est la capitale de la France et pourquoi ?"}]
    backend = Tagger()
    summary = run(tmp_path / "out", rows, [MagpieTag(name="tags")], backend)
    assert all(step_closes(s) for s in summary["steps"])
    assert backend.calls == 2 * 3  # one call per LLM tag; language needs none
    # The authors' prompts (exp/str_utils.py), with the instruction in the code fence.
    joined = "\n".join(backend.seen)
    assert "rate the difficulty level of the user query as `very easy`, `easy`" in joined
    assert "- good: The query is clear, specific, and mostly well-formed." in joined
    assert '"Coding & Debugging",  # Users seek help with writing' in joined
    assert "```\nHow do I prove that there are infinitely many primes?\n```" in joined
    proof, french = read_jsonl(tmp_path / "out" / "data.jsonl")
    assert proof["difficulty"] == "hard" and proof["intent"].startswith("The user wants to")
    assert proof["knowledge"].startswith("To solve this problem")
    assert proof["input_quality"] == "excellent" and proof["quality_explanation"] == "Clear enough."
    # primary_tag -> task_category; other_tags without the primary and repeats.
    assert proof["task_category"] == "Math" and proof["other_task_category"] == ["Reasoning"]
    assert proof["difficulty_generator"] == backend.model_id == proof["quality_generator"]
    assert (proof["language"], french["language"]) == ("EN", "FR")
    assert french["difficulty"] == "very easy"


def test_a_subset_of_tags_asks_only_for_those(tmp_path: Path) -> None:
    backend = Tagger()
    run(tmp_path / "out", [{"instruction": "What is the speed of light in vacuum?"}],
        [MagpieTag(name="tags", tags=["quality"])], backend)
    [row] = read_jsonl(tmp_path / "out" / "data.jsonl")
    assert backend.calls == 1 and row["input_quality"] == "excellent"
    assert "difficulty" not in row and "language" not in row
    assert language_of("   ") is None


def test_neighbour_tags_follow_gen_dis() -> None:
    # Rows 0, 2 and 3 are near-copies (cos > 0.975: squared L2 < 0.05); row 1 stands alone.
    base = np.array([1.0, 0.0, 0.0])
    near = np.array([1.0, 0.05, 0.0]) / np.linalg.norm([1.0, 0.05, 0.0])
    vectors = np.stack([base, [0.0, 1.0, 0.0], near, base]).astype(np.float32)
    tags = neighbour_tags(vectors, threshold=0.05, neighbors=3, ann="exact")
    (d0, c0, f0), (d1, c1, f1), (d2, c2, f2), (d3, c3, f3) = tags
    assert d0 == pytest.approx(0.0, abs=1e-6) and c0 == 2 and f0 == 0  # earliest: itself
    assert d1 == pytest.approx(2.0 - 2.0 * float(near[1]), abs=1e-5) and (c1, f1) == (0, None)
    assert d2 == pytest.approx(2 - 2 * float(near[0]), abs=1e-5) and (c2, f2) == (2, 0)
    assert (c3, f3) == (2, 0)
    # A tighter threshold: the near copy is no repeat, the exact copy still is.
    tight = neighbour_tags(vectors, threshold=1e-4, neighbors=3, ann="exact")
    assert [t[1:] for t in tight] == [(1, 0), (0, None), (0, None), (1, 0)]


def test_distance_step_names_the_earliest_repeat(tmp_path: Path) -> None:
    # (n: a source drops identical rows; these differ outside the instruction.)
    rows = [{"instruction": "How do rainbows form after rain?", "n": 0},
            {"instruction": "Write a poem about the sea at night.", "n": 1},
            {"instruction": "How do rainbows form after rain?", "n": 2}]
    run(tmp_path / "out", rows, [MagpieDistance(name="distance", embedder="hashing")],
        ScriptedTestBackend())
    first, poem, copy = read_jsonl(tmp_path / "out" / "data.jsonl")
    assert first["min_similar_conversation_id"] == first["conversation_id"]
    assert copy["min_similar_conversation_id"] == first["conversation_id"] != copy["conversation_id"]
    assert first["repeat_count"] == copy["repeat_count"] == 1
    assert copy["min_neighbor_distance"] == pytest.approx(0.0, abs=1e-5)
    assert poem["repeat_count"] == 0 and poem["min_similar_conversation_id"] is None
    assert poem["min_neighbor_distance"] > 0.05


KEEP = {"instruction": "Explain photosynthesis.", "input_quality": "good",
        "instruct_reward": -3.0, "reward_difference": 0.5, "conversation_id": "a",
        "min_similar_conversation_id": None, "difficulty": "easy",
        "task_category": "Information seeking", "language": "EN",
        "safety": {"safe": True, "categories": []}}


@pytest.mark.parametrize(("config", "change", "reason"), [
    ({}, {"input_quality": "average"}, "input_quality 'average' below 'good'"),
    ({}, {"input_quality": None}, "input_quality None below 'good'"),
    ({"min_input_quality": "excellent"}, {}, "input_quality 'good' below 'excellent'"),
    ({}, {"instruct_reward": -10.0}, "instruct_reward -10 <= -10"),  # the authors' strict >
    ({"min_reward_difference": 0.0}, {"reward_difference": -0.2}, "reward_difference -0.2 <= 0"),
    ({}, {"instruction": "Rewrite the following sentence:"},
     "instruction ends with ':' (unfinished query)"),
    ({}, {"min_similar_conversation_id": "b"}, "repeat of b (min_similar_conversation_id)"),
    ({"difficulties": ["hard", "very hard"]}, {}, "difficulty 'easy' not in ['hard', 'very hard']"),
    ({"task_categories": ["Math"]}, {}, "task_category 'Information seeking' not in ['Math']"),
    ({"languages": ["ZH"]}, {}, "language 'EN' not in ['ZH']"),
    ({"drop_unsafe": True}, {"safety": {"safe": False, "categories": ["S9"]}}, "unsafe: S9"),
])
def test_each_preset_drops_what_it_should(config: dict, change: dict, reason: str) -> None:
    default = MagpieFilter(name="filtered")
    assert default.process(dict(KEEP), None) is None  # type: ignore[arg-type]
    step = MagpieFilter(name="filtered", **config)
    assert step.process({**KEEP, **change}, None) == reason  # type: ignore[arg-type]
    if config:  # an opt-in preset: without it the same record is kept
        assert default.process({**KEEP, **change}, None) is None  # type: ignore[arg-type]


def test_presets_that_are_off_keep_and_missing_tags_fail() -> None:
    off = MagpieFilter(name="f", min_input_quality=None, min_reward=None,
                       drop_colon_ending=False, dedup=False)
    assert off.process({"instruction": "Do this:"}, None) is None  # type: ignore[arg-type]
    # No reward model in the run (instruct_reward null): the reward preset does not apply.
    assert MagpieFilter(name="f").process({**KEEP, "instruct_reward": None},
                                          None) is None  # type: ignore[arg-type]
    # The earliest of its repeats is kept.
    assert MagpieFilter(name="f").process(
        {**KEEP, "min_similar_conversation_id": "a"}, None) is None  # type: ignore[arg-type]
    with pytest.raises(KeyError, match="preset min_input_quality needs column 'input_quality'"):
        MagpieFilter(name="f").process({"instruction": "x"}, None)  # type: ignore[arg-type]


class Generator(Tagger):
    """The magpie recipe end to end: raw prompts get the next query, chats an answer."""

    def __init__(self, queries: list[str], quality: dict[str, str]) -> None:
        super().__init__(quality)
        self.queries = list(queries)

    def answer(self, request: Any, seed: int | None) -> str:
        if request.prompt is not None:
            return self.queries.pop(0)
        if request.json_schema is None:
            return f"Here is a full answer to: {request.messages[-1]['content']}"
        return super().answer(request, seed)


def test_the_recipe_keeps_what_the_authors_filter_keeps(tmp_path: Path) -> None:
    queries = ["How do rainbows form after a storm?",
               "Can you summarise the following paragraph for me:",
               "What is the tallest mountain on Earth?",
               "How do rainbows form after a summer storm?",  # a near-repeat, cos 0.86
               "Could you list a few tips for better sleep?"]
    backend = Generator(queries, {"What is the tallest mountain on Earth?": "average"})
    # Hashing vectors see shared words: threshold 0.5 (cos > 0.75) in place of mpnet's 0.05.
    recipe = Recipe.load("magpie", {"template": "chatml", "embedder": "hashing",
                                    "distance_threshold": "0.5"})
    out = tmp_path / "out"
    summary = asyncio.run(run_recipe(recipe, out, RunOptions(backend=backend, limit=5,
                                                             concurrency=1))).to_json()
    steps = {s["name"]: s for s in summary["steps"]}
    assert all(step_closes(s) for s in steps.values())
    assert steps["tags"]["out"] == 5 and steps["filtered"]["dropped"] == 3
    kept = read_jsonl(out / "data.jsonl")
    assert [r["instruction"] for r in kept] == ["How do rainbows form after a storm?",
                                                "Could you list a few tips for better sleep?"]
    assert all(r["instruct_reward"] is None and r["safety"]["safe"] for r in kept)
    reasons = {d["record"]["instruction"]: d["reason"] for d in read_jsonl(out / "dropped.jsonl")
               if d["step"] == "filtered"}
    assert reasons == {
        "Can you summarise the following paragraph for me:":
            "instruction ends with ':' (unfinished query)",
        "What is the tallest mountain on Earth?": "input_quality 'average' below 'good'",
        "How do rainbows form after a summer storm?":
            f"repeat of {kept[0]['conversation_id']} (min_similar_conversation_id)"}


def test_reward_tag_and_gap_come_from_the_reward_model(tmp_path: Path) -> None:
    pytest.importorskip("torch", reason="the reward backend needs torch (synthloom[reward])")
    pytest.importorskip("transformers", reason="the reward backend needs transformers")
    from synthloom.llm.backends.reward import RewardModelBackend
    from synthloom.methods.magpie.tags import MagpieReward
    from tests.support.tiny_reward import build_tiny_reward_model

    # A real tiny transformers reward model (random weights: arbitrary, deterministic scores).
    rm = build_tiny_reward_model(tmp_path / "tiny-rm", kind="llama")
    rows = [{"instruction": "Why is the sky blue?", "response": "Rayleigh scattering of light.",
             "base": "the sky"},
            {"instruction": "Name a prime.", "response": "7 is a prime number.", "base": "no"}]
    gen = ScriptedTestBackend()
    summary = run(tmp_path / "out", rows,
                  [MagpieReward(name="reward", reward_model="rm", base_column="base")], gen,
                  models={"rm": f"reward:{rm}"})
    assert gen.calls == 0 and summary["steps"][1]["llm_calls"] == 2 * 2
    scored = read_jsonl(tmp_path / "out" / "data.jsonl")
    backend = RewardModelBackend(str(rm))
    for row in scored:
        own, base = (x.score for x in backend.score_batch(  # type: ignore[union-attr]
            [(row["instruction"], row["response"]), (row["instruction"], row["base"])]))
        assert row["instruct_reward"] == pytest.approx(own, abs=1e-5)
        assert row["base_reward"] == pytest.approx(base, abs=1e-5)
        assert row["reward_difference"] == pytest.approx(own - base, abs=1e-5)
        assert row["reward_model"].startswith("reward:tiny-rm")
    # The min_reward preset between the two scores keeps only the higher one.
    low, high = sorted(scored, key=lambda r: r["instruct_reward"])
    cut = (low["instruct_reward"] + high["instruct_reward"]) / 2
    step = MagpieFilter(name="f", min_input_quality=None, dedup=False, min_reward=cut)
    assert step.process(high, None) is None  # type: ignore[arg-type]
    assert step.process(low, None).startswith("instruct_reward ")  # type: ignore[union-attr]


def test_safety_can_be_switched_off(tmp_path: Path) -> None:
    from synthloom.quality.safety import Moderate

    backend = Tagger()
    rows = [{"instruction": "How do I bake bread?", "response": "Knead, rise, bake."}]
    run(tmp_path / "on", rows, [Moderate(name="safety", columns=["instruction", "response"])],
        backend)
    [on] = read_jsonl(tmp_path / "on" / "data.jsonl")
    assert backend.calls == 1 and on["safety"]["safe"] is True
    off = Tagger()
    run(tmp_path / "off", rows, [Moderate(name="safety", enabled=False)], off)
    [row] = read_jsonl(tmp_path / "off" / "data.jsonl")
    assert off.calls == 0 and "safety" not in row
    # The drop_unsafe preset then has nothing to read: a failure, not a silent keep.
    with pytest.raises(KeyError, match="preset drop_unsafe needs column 'safety'"):
        MagpieFilter(name="f", drop_unsafe=True).process(
            {k: v for k, v in KEEP.items() if k != "safety"}, None)  # type: ignore[arg-type]
