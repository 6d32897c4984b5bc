"""``--regenerate rejected`` on the local executor: an item named in RUN/review/resample.json is
computed again under a bumped sample (new seed, new record id, ``_meta.resample``), and every
other item comes from the cache unchanged. LLM calls go to the ScriptedTestBackend (a test
double, no model), which counts them."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from synthloom.api import RunOptions, run_recipe
from synthloom.core.recipe import Recipe
from tests.support.scripted_backend import ScriptedTestBackend, last_user_text

RECIPE = """
name: regen-local
seed: 11
sources:
  - {name: seeds, type: jsonl, path: SEEDS}
steps:
  - name: answer
    type: generate
    template: answer.jinja
    output: answer
sinks:
  - {type: jsonl, path: data.jsonl}
"""
N = 5


def responder(request, seed) -> str:
    # The seed shows in the text: a regenerated item's answer differs from its first one.
    return f"answer to {last_user_text(request)} (seed {seed})"


def write_recipe(tmp_path: Path) -> Recipe:
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text("".join(json.dumps({"q": f"question {i}"}) + "\n" for i in range(N)))
    (tmp_path / "answer.jinja").write_text("Answer: {{ q }}")
    path = tmp_path / "regen.yaml"
    path.write_text(RECIPE.replace("SEEDS", str(seeds)))
    return Recipe.load(path)


def go(recipe: Recipe, out: Path, backend: ScriptedTestBackend) -> dict:
    return asyncio.run(run_recipe(recipe, out, RunOptions(backend=backend))).to_json()


def lines(path: Path) -> list[str]:
    return [x for x in path.read_text().splitlines() if x.strip()]


def test_a_bumped_item_alone_is_recomputed_with_a_new_sample(tmp_path: Path) -> None:
    recipe = write_recipe(tmp_path)
    out = tmp_path / "run"
    first = go(recipe, out, ScriptedTestBackend(responder))
    assert first["status"] == "ok" and first["records"] == N and first["llm_calls"] == N
    before = lines(out / "data.jsonl")
    target = json.loads(before[2])
    parent = target["_meta"]["parents"][0]
    (out / "review").mkdir()
    (out / "review" / "resample.json").write_text(
        json.dumps([{"step": "answer", "parent": parent, "bump": 1}]))

    backend = ScriptedTestBackend(responder)
    second = go(recipe, out, backend)
    answer = next(s for s in second["steps"] if s["name"] == "answer")
    assert second["status"] == "ok" and second["records"] == N
    assert (answer["in"], answer["out"], answer["cached"], answer["llm_calls"]) == (N, N, N - 1, 1)
    assert second["llm_calls"] == 1 and backend.calls == 1
    assert backend.prompts == {"Answer: question 2": 1}

    after = lines(out / "data.jsonl")
    assert len(after) == N
    for i, (old, new) in enumerate(zip(before, after, strict=True)):
        if i != 2:
            assert new == old, i  # byte-identical: from the cache, same id
    redone = json.loads(after[2])
    meta = redone["_meta"]
    assert meta["parents"] == [parent]
    assert meta["id"] != target["_meta"]["id"]
    assert meta["sample_index"] == 1 and meta["resample"] == 1
    assert target["_meta"]["sample_index"] == 0 and "resample" not in target["_meta"]
    assert redone["answer"] != target["answer"]  # a new seed, a new sample

    # The bump is remembered: a third run recomputes nothing and keeps the regenerated record.
    third_backend = ScriptedTestBackend(responder)
    third = go(recipe, out, third_backend)
    assert third["llm_calls"] == 0 and third_backend.calls == 0
    assert lines(out / "data.jsonl") == after
