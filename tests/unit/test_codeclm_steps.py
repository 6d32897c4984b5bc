"""CodecLM recipe with the scripted test backend (a test double), on the real self-instruct
user-oriented seed instructions: metadata encoding, decoding, Self-Rubrics, and Contrastive
Filtering with the target emulated by a tighter budget - including the feedback loop that
sends small-gap instructions back to Self-Rubrics (``improve_rounds``)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from synthloom.api import RunOptions, run_recipe
from synthloom.core.recipe import Recipe
from synthloom.methods.codeclm.steps import CodecContrastive, CodecGapFilter
from tests.support.runs import read_jsonl
from tests.support.scripted_backend import ScriptedTestBackend, last_user_text

SEEDS = "seed_instructions/self_instruct_user_oriented_instructions.jsonl"


class Codec:
    """Scripted roles: encoder, decoder, rubric writer, improver, responder, judge."""

    def __init__(self, target_tokens: int = 64, improves_after: int | None = None) -> None:
        self.target_tokens = target_tokens
        #: A "word choice" instruction with this many constraints gets a large gap (None: never).
        self.improves_after = improves_after
        self.calls: dict[str, int] = {}
        self.params: dict[str, list] = {"strong": [], "target": []}
        self.systems: list[str] = []
        self.strong_seeds: list[tuple[int | None, str]] = []

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
            hard = self.improves_after is not None \
                and text.count("Constraint:") >= self.improves_after
            small = "word choice" in text and not hard
            return json.dumps({"reason": "cut short", "score": 7 if small else 3})
        # A response: the target side is the one with the small token budget.
        side = "target" if request.params.max_tokens == self.target_tokens else "strong"
        self.params[side].append((request.params.max_tokens, request.params.temperature))
        self.systems.append(system)
        if side == "strong":
            self.strong_seeds.append((seed, text))
        count(side)
        return "LONG ANSWER with every part." if side == "strong" else "Short answer."


def test_codeclm_chain_on_real_seeds(shared_data: Path, tmp_path: Path) -> None:
    """improve_rounds=0: judged once, small gaps dropped at once (the loop-less behaviour)."""
    codec = Codec()
    recipe = Recipe.load("codeclm", {"seeds": str(shared_data / SEEDS), "target_tokens": "64",
                                     "target_temperature": "0.3", "min_gap": "2",
                                     "target_system": "Answer in one sentence.",
                                     "improve_rounds": "0"})
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
    judged = read_jsonl(tmp_path / "out" / "judged.jsonl")
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
        assert r["improve_round"] == 0 and r["score_gaps"] == [r["score_gap"]]
        assert r["improve_history"] == [] and r["improve_stopped"] is None
    kept = read_jsonl(tmp_path / "out" / "data.jsonl")
    dropped = [d for d in read_jsonl(tmp_path / "out" / "dropped.jsonl") if d["step"] == "gap"]
    assert len(kept) == 2 and len(dropped) == 1 and summary["records"] == 2
    assert all(r["metadata"]["use_case"] == "email writing" for r in kept)
    assert all(r["score_gap"] == 5 and r["response"] == r["strong_response"] for r in kept)
    assert dropped[0]["record"]["metadata"]["use_case"] == "word choice review"
    assert dropped[0]["reason"] == ("score gap 1 < 2 (strong 8, target 7): the target already "
                                    "answers it about as well")
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
    [drop] = read_jsonl(tmp_path / "out" / "dropped.jsonl")
    assert drop["reason"] == "self-rubrics produced no usable action (got ['[1]', '2]'])"
    assert "improve" not in codec.calls and "strong" not in codec.calls


def run_loop(shared_data: Path, out: Path, codec: Codec, rounds: int) -> dict:
    recipe = Recipe.load("codeclm", {"seeds": str(shared_data / SEEDS), "target_tokens": "64",
                                     "improve_rounds": str(rounds)})
    summary = asyncio.run(run_recipe(recipe, out, RunOptions(
        backend=ScriptedTestBackend(codec), limit=3))).to_json()
    for s in summary["steps"]:
        produced = s["expanded"] if s["kind"] == "expand" else s["out"]
        assert s["in"] == produced + s["failed"] + s["dropped"], s
    return summary


def test_small_gap_instruction_improves_and_is_kept(shared_data: Path, tmp_path: Path) -> None:
    # Self-Rubrics adds one constraint; with a second one the target falls behind.
    codec = Codec(improves_after=2)
    summary = run_loop(shared_data, tmp_path / "out", codec, rounds=1)
    # One extra round for the one small-gap item: 1 improvement, 2 responses, 2 verdicts.
    assert codec.calls == {"encode": 3, "decode": 3, "rubric": 3, "improve": 4, "strong": 4,
                           "target": 4, "judge": 8}
    steps = {s["name"]: s for s in summary["steps"]}
    assert steps["contrastive"]["llm_calls"] == 3 * 4 + 5
    assert steps["gap"]["dropped"] == 0 and summary["records"] == 3
    kept = read_jsonl(tmp_path / "out" / "data.jsonl")
    [looped] = [r for r in kept if r["metadata"]["use_case"] == "word choice review"]
    assert looped["improve_round"] == 1 and looped["score_gaps"] == [1, 5]
    assert looped["score_gap"] == 5 and looped["improve_stopped"] is None
    [first] = looped["improve_history"]
    assert first["round"] == 0 and first["score_gap"] == 1 and first["target_score"] == 7
    assert first["instruction"].count("Constraint:") == 1
    assert looped["instruction"].startswith(first["instruction"] + ". Constraint: ")
    # The loop applies an action Self-Rubrics had not applied yet, and records it.
    assert len(looped["applied_actions"]) == 2 == len(set(looped["applied_actions"]))
    assert first["next_actions"] == looped["applied_actions"][1:]
    assert set(looped["applied_actions"]) <= set(looped["actions"])
    assert looped["response"] == looped["strong_response"]
    assert looped["_meta"]["improve_rounds"] == 1
    for r in kept:
        if r is not looped:
            assert r["improve_round"] == 0 and r["score_gaps"] == [5]
    # Each round asks with its own seed: the cache cannot hand round 1 round 0's answer.
    seeds = [seed for seed, text in codec.strong_seeds if "word choice" in text]
    assert len(seeds) == 2 and seeds[0] != seeds[1]


def test_instruction_that_never_improves_is_dropped(shared_data: Path, tmp_path: Path) -> None:
    codec = Codec(improves_after=None)
    summary = run_loop(shared_data, tmp_path / "out", codec, rounds=2)
    assert codec.calls["improve"] == 3 + 2 and codec.calls["judge"] == 6 + 4
    steps = {s["name"]: s for s in summary["steps"]}
    assert steps["gap"]["in"] == 3 and steps["gap"]["dropped"] == 1
    assert summary["records"] == 2
    [drop] = [d for d in read_jsonl(tmp_path / "out" / "dropped.jsonl") if d["step"] == "gap"]
    assert drop["reason"] == (
        "score gap 1 < 2 (strong 8, target 7) after 2 Self-Rubrics improvement rounds "
        "(gap per round: 1, 1, 1): the target already answers it about as well")
    record = drop["record"]
    assert record["improve_round"] == 2 and len(record["improve_history"]) == 2
    assert record["instruction"].count("Constraint:") == 3
    # Three rounds of actions in all: each of the three written actions once.
    assert sorted(record["applied_actions"]) == sorted(record["actions"])
    judged = read_jsonl(tmp_path / "out" / "judged.jsonl")
    assert len(judged) == 3 and sum(r["improve_round"] for r in judged) == 2
    seeds = [seed for seed, text in codec.strong_seeds if "word choice" in text]
    assert len(set(seeds)) == 3


def test_failed_improvement_stops_the_loop(shared_data: Path, tmp_path: Path) -> None:
    class Stuck(Codec):
        def __call__(self, request, seed) -> str:
            text = last_user_text(request)
            # The loop's improvement (its instruction already has a constraint) echoes it.
            if "Rewrite the instruction by applying" in text and "Constraint:" in text:
                self.calls["stuck"] = self.calls.get("stuck", 0) + 1
                return json.dumps({"instruction": text.split('"""')[1].strip()})
            return super().__call__(request, seed)

    codec = Stuck()
    run_loop(shared_data, tmp_path / "out", codec, rounds=3)
    assert codec.calls["stuck"] == 1 and codec.calls["strong"] == 3
    [drop] = [d for d in read_jsonl(tmp_path / "out" / "dropped.jsonl") if d["step"] == "gap"]
    assert drop["reason"] == (
        "score gap 1 < 2 (strong 8, target 7) after 0 Self-Rubrics improvement rounds "
        "(gap per round: 1); loop stopped: improvement for round 1 returned the instruction "
        "unchanged: the target already answers it about as well")
    assert drop["record"]["improve_round"] == 0


def test_gap_filter_reason_names_rounds() -> None:
    step = CodecGapFilter(name="g", min_gap=2)
    record = {"score_gap": 0, "strong_score": 5, "target_score": 5, "improve_round": 1,
              "score_gaps": [1, 0], "improve_stopped": None}
    assert step.process(record, None) == (  # type: ignore[arg-type]
        "score gap 0 < 2 (strong 5, target 5) after 1 Self-Rubrics improvement round "
        "(gap per round: 1, 0): the target already answers it about as well")
    assert CodecContrastive(name="c", improve_rounds=0).reads() == ["instruction"]
    assert "rubric" in CodecContrastive(name="c").reads()


def test_a_named_target_model_is_a_real_second_model(shared_data: Path, tmp_path: Path) -> None:
    """--model-for target=...: the target answers on its own backend (the scripted test
    backend, a second instance) under the strong side's sampling; the strong model judges."""
    strong, target = Codec(), Codec()
    strong_backend = ScriptedTestBackend(strong, name="strong")
    target_backend = ScriptedTestBackend(target, name="target-b")
    params = {"seeds": str(shared_data / SEEDS), "improve_rounds": "0"}
    out = tmp_path / "out"
    summary = asyncio.run(run_recipe(Recipe.load("codeclm", params), out, RunOptions(
        backend=strong_backend, limit=3, model_for={"target": target_backend}))).to_json()
    # The target model wrote only the target responses, with the strong settings (512, 0.7).
    assert target.calls == {"strong": 3} and target.params["strong"] == [(512, 0.7)] * 3
    assert target_backend.calls == 3
    assert "target" not in strong.calls and strong.calls["strong"] == 3
    assert strong.calls["judge"] == 6  # both answers judged by the strong model
    judged = read_jsonl(out / "judged.jsonl")
    assert len(judged) == 3
    for r in judged:
        assert r["_meta"]["target_model"] == "scripted:target-b"
        assert "target_emulated" not in r["_meta"]
        assert r["target_response"].startswith("LONG")  # the second model's own answer
    assert summary["models"]["target"]["calls"] == 3
    assert summary["models"]["target"]["steps"] == ["contrastive"]
    # Back to the emulation in the same folder: only the contrastive step (and the filter
    # after it) recomputes; the target is then the run's model under the target handicap.
    again = Codec(target_tokens=128)
    summary = asyncio.run(run_recipe(Recipe.load("codeclm", params), out, RunOptions(
        backend=ScriptedTestBackend(again, name="strong"), limit=3))).to_json()
    assert set(again.calls) == {"strong", "target", "judge"}
    assert again.params["target"] == [(128, 0.7)] * 3
    steps = {s["name"]: s for s in summary["steps"]}
    assert steps["self_rubrics"]["cached"] == 3 and steps["contrastive"]["cached"] == 0
    assert all(r["_meta"]["target_emulated"]["same_model"] for r in read_jsonl(out / "judged.jsonl"))


def test_emulated_target_keeps_the_fingerprint_of_a_step_without_one(tmp_path: Path) -> None:
    from synthloom.core.context import RunContext

    client = ScriptedTestBackend()
    ctx = RunContext(run_dir=tmp_path, llm=client, models={"default": client, "target": client})
    named = CodecContrastive(name="c", target_model="target")
    plain = CodecContrastive(name="c")
    for step in (named, plain):
        step.setup(ctx)
    assert named.fingerprint(ctx) == plain.fingerprint(ctx)
    other = ScriptedTestBackend(name="other")
    ctx2 = RunContext(run_dir=tmp_path, llm=client, models={"default": client, "target": other})
    assert named.fingerprint(ctx2) != plain.fingerprint(ctx2)
    assert named.model_names() == ["target"]
