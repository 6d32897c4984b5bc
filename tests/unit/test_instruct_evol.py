"""Evol-Instruct with the scripted test backend (ScriptedTestBackend, a test double): each
eliminator case with its reason, the failed evolution's parent evolved again next round,
lineage, deterministic operators, the WizardCoder variant, accounting and cached replays."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

from synthloom.api import RunOptions, run_recipe
from synthloom.core.recipe import Recipe
from synthloom.methods.evol.evolve import clean_evolved, copied_phrase, only_stop_words
from tests.support.runs import read_jsonl
from tests.support.scripted_backend import ScriptedTestBackend, last_user_text

SEEDS = [
    "Explain how a rainbow forms in the sky.",      # evolves fine every round
    "Write an SQL query listing all customers.",    # responses say sorry: eliminated
    "Give an antonym for the word happy.",          # judged Equal: no information gain
    "Write a haiku about autumn leaves.",           # the rewrite copies "given prompt"
    "Name a color please now.",                     # the rewrite is one word: too short
]
GENERAL = {"add_constraints", "deepening", "concretizing", "increase_reasoning",
           "complicate_input", "in_breadth"}
CODE = {"add_constraints", "less_common_requirement", "add_reasoning_steps", "erroneous_code",
        "higher_complexity"}


def _given(text: str) -> str:
    for start, end in (("#The Given Prompt#:\n", "\n#Rewritten Prompt#:"),
                       ("#Given Prompt#:\n", "\n#Created Prompt#:")):
        if start in text:
            return text.split(start, 1)[1].split(end, 1)[0].strip()
    return text.rsplit("\n\n", 1)[1].strip()  # the WizardCoder prompt ends with the question


def evol_responder(request, seed) -> str:
    text = last_user_text(request)
    if "Your Judgement" in text:
        second = text.split("The Second Prompt:", 1)[1]
        return json.dumps({"judgement": "Equal" if "antonym" in second else "Not Equal"})
    if "Prompt Rewriter" in text or "Prompt Creator" in text or "programming test" in text:
        given = _given(text)
        if "haiku" in given:
            return "Rewrite the given prompt as a haiku about rain."
        if "color" in given:
            return "Blue."
        if "programming test" in text:
            return f"{given} Do it in linear time."
        if "Prompt Creator" in text:
            return f"#Created Prompt#: Create a rare puzzle inspired by: {given}"
        return f"#Rewritten Prompt#: {given} Also justify each step."
    if "SQL" in text:
        return "Sorry, I cannot help with that."
    return "Here is a detailed and helpful answer with several words in it."


def write_seeds(path: Path, seeds: list[str]) -> Path:
    path.write_text("".join(json.dumps({"instruction": s}) + "\n" for s in seeds))
    return path


def run(recipe: Recipe, out: Path, backend: ScriptedTestBackend) -> dict:
    return asyncio.run(run_recipe(recipe, out, RunOptions(backend=backend))).to_json()


def step(summary: dict, name: str) -> dict:
    return next(s for s in summary["steps"] if s["name"] == name)


def test_helpers() -> None:
    assert clean_evolved("#Rewritten Prompt#: Do X now.") == "Do X now."
    assert clean_evolved("Rewritten prompt: Do X now.") == "Do X now."
    assert clean_evolved("Given that X, do Y.") == "Given that X, do Y."
    assert copied_phrase("Improve the given prompt below") == "given prompt"
    assert copied_phrase("A fine #Rewritten Prompt# here") == "#rewritten prompt#"
    assert copied_phrase("Explain photosynthesis.") is None
    assert only_stop_words("... and the, of it!") and not only_stop_words("the cat")


def test_evol_instruct_rounds_elimination_and_lineage(tmp_path: Path) -> None:
    seeds = write_seeds(tmp_path / "seeds.jsonl", SEEDS)
    params = {"seeds": str(seeds), "rounds": "2"}
    backend = ScriptedTestBackend(evol_responder)
    out = tmp_path / "out"
    summary = run(Recipe.load("evol-instruct", params), out, backend)
    evolve = step(summary, "evolve")
    assert evolve["in"] == 5 and evolve["expanded"] == 5 and evolve["out"] == 5 * 3
    assert evolve["in"] == evolve["expanded"] + evolve["failed"] + evolve["dropped"]
    # Calls per seed: its response, then per round evolve (+ judge if the cheap checks pass)
    # (+ response if not Equal): 7 + 7 + 5 + 3 + 3.
    assert evolve["llm_calls"] == backend.calls == 25
    eliminated = step(summary, "eliminated")
    assert eliminated["in"] == 15 and eliminated["out"] == 7 and eliminated["dropped"] == 8

    kept = read_jsonl(out / "data.jsonl")
    seeds_out = [r for r in kept if r["evol_round"] == 0]
    assert [r["instruction"] for r in seeds_out] == SEEDS
    assert all(r["operator"] is None and r["response"] for r in seeds_out)
    rainbow = [r for r in kept if r["evol_round"] > 0]
    assert [r["evol_round"] for r in rainbow] == [1, 2]
    r1, r2 = rainbow
    assert r1["parent_instruction"] == SEEDS[0] and r2["parent_instruction"] == r1["instruction"]
    assert SEEDS[0] in r2["instruction"] and not r2["instruction"].startswith("#")
    assert [x["instruction"] for x in r2["lineage"]] == [SEEDS[0], r1["instruction"]]
    assert r1["operator"] in GENERAL and r2["operator"] in GENERAL and r2["response"]
    assert {"instruction", "parent_instruction", "evol_round", "operator", "response",
            "lineage"} <= set(r2)

    dropped = read_jsonl(out / "dropped.jsonl")
    by_seed: dict[str, list[dict]] = {}
    for d in dropped:
        root = (d["record"]["lineage"] or [{"instruction": d["record"]["instruction"]}])[0]
        by_seed.setdefault(root["instruction"], []).append(d)
    pattern = r"eliminated \(round [12], [a-z_]+\): "
    for seed, reason in [
        (SEEDS[1], r"the model struggles to answer: response says 'sorry' in 6 words \(< 80\)"),
        (SEEDS[2], r"no information gain: judged Equal to its parent"),
        (SEEDS[3], r"copies the evolving prompt's words: 'given prompt'"),
        (SEEDS[4], r"too short: 1 words \(< 3\)"),
    ]:
        drops = by_seed[seed]
        assert len(drops) == 2 and all(re.fullmatch(pattern + reason, d["reason"])
                                       for d in drops), drops
        # A failed evolution goes back to the pool: round 2 evolves the seed again.
        assert [d["record"]["parent_instruction"] for d in drops] == [seed, seed]
    operators = [r["operator"] for r in kept + [d["record"] for d in dropped] if r["operator"]]
    assert len(operators) == 10 and len(set(operators)) > 1 and set(operators) <= GENERAL

    # Rerun: every item replays, no call.
    again = ScriptedTestBackend(evol_responder)
    run(Recipe.load("evol-instruct", params), out, again)
    assert again.calls == 0 and read_jsonl(out / "data.jsonl") == kept

    # A third round: the item cache misses (new config), but rounds 1-2 (operators and seeds
    # drawn from run seed, seed instruction and round) replay from the response cache.
    more = ScriptedTestBackend(evol_responder)
    summary = run(Recipe.load("evol-instruct", {**params, "rounds": "3"}), out, more)
    assert more.calls == 3 + 3 + 2 + 1 + 1
    assert step(summary, "evolve")["llm_cache_hits"] == 25
    third = [r for r in read_jsonl(out / "data.jsonl") if r["evol_round"] == 3]
    assert [r["parent_instruction"] for r in third] == [r2["instruction"]]


def test_evol_code_variant_and_no_judge(tmp_path: Path) -> None:
    seeds = write_seeds(tmp_path / "seeds.jsonl", ["Write a function that reverses a string."])
    params = {"seeds": str(seeds), "rounds": "3", "variant": "code", "judge": "false",
              "keep_seeds": "false"}
    backend = ScriptedTestBackend(evol_responder)
    summary = run(Recipe.load("evol-instruct", params), tmp_path / "out", backend)
    assert step(summary, "evolve")["llm_calls"] == backend.calls == 3 * 2  # evolve + response
    kept = read_jsonl(tmp_path / "out" / "data.jsonl")
    assert [r["evol_round"] for r in kept] == [1, 2, 3]
    assert all(r["operator"] in CODE for r in kept)
    assert kept[-1]["instruction"].count("Do it in linear time.") == 3
    prompts = list(backend.prompts)
    assert all("programming test question" in p for p in prompts
               if "reverses a string" in p and "increase the difficulty" in p)
    assert sum("increase the difficulty" in p for p in prompts) == 3
