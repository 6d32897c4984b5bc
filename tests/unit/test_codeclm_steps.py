"""CodecLM recipe with the scripted test backend (a test double), on the real self-instruct
user-oriented seed instructions: metadata encoding, decoding, Self-Rubrics, and Contrastive
Filtering with the target emulated by a tighter budget."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from synthloom.api import RunOptions, run_recipe
from synthloom.core.recipe import Recipe
from synthloom.methods.codeclm.steps import CodecContrastive, CodecGapFilter
from tests.support.scripted_backend import ScriptedTestBackend, last_user_text

SEEDS = "seed_instructions/self_instruct_user_oriented_instructions.jsonl"


def rows(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()] \
        if path.exists() else []


class Codec:
    """Scripted roles: encoder, decoder, rubric writer, improver, responder, judge."""

    def __init__(self, target_tokens: int = 64) -> None:
        self.target_tokens = target_tokens
        self.calls: dict[str, int] = {}
        self.params: dict[str, list] = {"strong": [], "target": []}
        self.systems: list[str] = []

    def __call__(self, request, seed) -> str:
        text = last_user_text(request)
        system = next((m["content"] for m in request.messages if m["role"] == "system"), "")

        def count(kind: str) -> None:
            self.calls[kind] = self.calls.get(kind, 0) + 1

        if "What is the use case" in text:
            count("encode")
            # The second seed ("Analyze the word choice ...") gets another use case, whose
            # instructions the target answers nearly as well: a small gap.
            use_case = "word choice review" if "Analyze the word choice" in text \
                else "email writing"
            return json.dumps({"use_case": use_case, "skills": ["tone control", "concision"]})
        if "Write one instruction for an AI assistant" in text:
            count("decode")
            topic = "word choice" if "word choice review" in text else "an email"
            return json.dumps({"instruction": f"Write {topic} declining a meeting politely"})
        if "Write a rubric" in text:
            count("rubric")
            return json.dumps({"rubric": "Complex requests juggle several constraints.",
                               "actions": ["Add a deadline conflict", "Require two tones",
                                           "Limit it to 80 words"]})
        if "Rewrite the instruction by applying" in text:
            count("improve")
            action = text.split("- ")[-1].split("\n")[0]
            base = text.split('"""')[1].strip()
            return json.dumps({"instruction": f"{base}. Constraint: {action}."})
        if "Rate how well the answer" in text:
            count("judge")
            if "LONG ANSWER" in text:
                return json.dumps({"reason": "complete", "score": 8})
            return json.dumps({"reason": "cut short", "score": 7 if "word choice" in text else 3})
        # A response: the target side is the one with the small token budget.
        side = "target" if request.params.max_tokens == self.target_tokens else "strong"
        self.params[side].append((request.params.max_tokens, request.params.temperature))
        self.systems.append(system)
        count(side)
        return "LONG ANSWER with every part." if side == "strong" else "Short answer."


def test_codeclm_chain_on_real_seeds(shared_data: Path, tmp_path: Path) -> None:
    codec = Codec()
    recipe = Recipe.load("codeclm", {"seeds": str(shared_data / SEEDS), "target_tokens": "64",
                                     "target_temperature": "0.3", "min_gap": "2",
                                     "target_system": "Answer in one sentence."})
    summary = asyncio.run(run_recipe(recipe, tmp_path / "out", RunOptions(
        backend=ScriptedTestBackend(codec), limit=3))).to_json()
    steps = {s["name"]: s for s in summary["steps"]}
    for s in steps.values():
        produced = s["expanded"] if s["kind"] == "expand" else s["out"]
        assert s["in"] == produced + s["failed"] + s["dropped"], s
    assert steps["seeds"]["out"] == 3 and steps["metadata"]["out"] == 3
    assert codec.calls == {"encode": 3, "decode": 3, "rubric": 3, "improve": 3, "strong": 3,
                           "target": 3, "judge": 6}
    # Target = the same model under the target settings; strong under its own.
    assert codec.params["target"] == [(64, 0.3)] * 3
    assert codec.params["strong"] == [(512, 0.7)] * 3
    assert codec.systems.count("Answer in one sentence.") == 3
    judged = rows(tmp_path / "out" / "judged.jsonl")
    assert len(judged) == 3
    for r in judged:
        assert r["metadata"]["skills"] == ["tone control", "concision"]
        assert r["seed_instruction"] and r["base_instruction"].startswith("Write ")
        assert r["instruction"].startswith(r["base_instruction"] + ". Constraint: ")
        assert r["rubric"] and len(r["actions"]) == 3
        assert len(r["applied_actions"]) == 1 and r["applied_actions"][0] in r["actions"]
        assert r["strong_response"].startswith("LONG") and r["target_response"] == "Short answer."
        assert r["score_gap"] == r["strong_score"] - r["target_score"]
        assert r["_meta"]["target_emulated"]["max_tokens"] == 64
    kept = rows(tmp_path / "out" / "data.jsonl")
    dropped = [d for d in rows(tmp_path / "out" / "dropped.jsonl") if d["step"] == "gap"]
    assert len(kept) == 2 and len(dropped) == 1 and summary["records"] == 2
    assert all(r["metadata"]["use_case"] == "email writing" for r in kept)
    assert all(r["score_gap"] == 5 and r["response"] == r["strong_response"] for r in kept)
    assert dropped[0]["record"]["metadata"]["use_case"] == "word choice review"
    assert dropped[0]["reason"].startswith("score gap 1 < 2 (strong 8, target 7)")
    # The seed's own input (instances[0].input) reached the encoder with the instruction.
    first = json.loads((shared_data / SEEDS).read_text().splitlines()[0])
    assert judged[0]["seed_instruction"].endswith(first["instances"][0]["input"].strip())


def test_gap_filter_and_judge_schema() -> None:
    step = CodecGapFilter(name="g", min_gap=3)
    assert step.process({"score_gap": 3, "strong_score": 9, "target_score": 6}, None) is None  # type: ignore[arg-type]
    assert "score gap 2 < 3" in step.process({"score_gap": 2}, None)  # type: ignore[arg-type]
    assert step.process({}, None) == "no score_gap (contrastive step missing)"  # type: ignore[arg-type]
    schema = CodecContrastive(name="c").judge_schema()
    assert schema["properties"]["score"] == {"type": "integer", "minimum": 1, "maximum": 10}


def test_default_seeds_are_bundled(tmp_path: Path) -> None:
    codec = Codec(target_tokens=128)
    summary = asyncio.run(run_recipe(Recipe.load("codeclm"), tmp_path / "out", RunOptions(
        backend=ScriptedTestBackend(codec), limit=2))).to_json()
    assert summary["steps"][0]["out"] == 2 and codec.calls["encode"] == 2
    # Defaults: the emulated target gets a quarter of the strong side's token budget.
    assert codec.params["target"] == [(128, 0.7)] * 2
    assert codec.params["strong"] == [(512, 0.7)] * 2
    assert summary["records"] == 2


def test_hollow_rubric_actions_are_a_drop(tmp_path: Path) -> None:
    class Hollow(Codec):
        def __call__(self, request, seed) -> str:
            if "Write a rubric" in last_user_text(request):
                return json.dumps({"rubric": "Harder.", "actions": ["[1]", "2]"]})
            return super().__call__(request, seed)

    codec = Hollow(target_tokens=128)
    summary = asyncio.run(run_recipe(Recipe.load("codeclm"), tmp_path / "out", RunOptions(
        backend=ScriptedTestBackend(codec), limit=1))).to_json()
    rubrics = next(s for s in summary["steps"] if s["name"] == "self_rubrics")
    assert rubrics["in"] == 1 and rubrics["dropped"] == 1 and rubrics["llm_calls"] == 1
    [drop] = rows(tmp_path / "out" / "dropped.jsonl")
    assert drop["reason"] == "self-rubrics produced no usable action (got ['[1]', '2]'])"
    assert "improve" not in codec.calls and "strong" not in codec.calls
