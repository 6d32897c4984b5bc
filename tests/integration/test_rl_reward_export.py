"""RL exports end to end: the logic recipe (every task) and a reasoning-gym run are exported for
verl, TRL GRPO and a verifiers-style environment; a fresh Python process that imports only the
exported module (and through it synthloom's verifiers) scores each record's own verified answer
1 and perturbed answers 0, exactly as synthloom's in-process verifier does."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from synthloom.api import run
from synthloom.core.recipe import Recipe
from synthloom.export.formats import ExportOptions, export
from synthloom.verify.logic import TASKS
from synthloom.verify.rewards import check
from tests.support.runs import read_jsonl

pytestmark = pytest.mark.integration

#: Run in a fresh interpreter: load the exported module by its path and score the cases.
SCORER = r"""
import importlib.util, json, sys
cases = json.load(open(sys.argv[1]))
spec = importlib.util.spec_from_file_location("exported", sys.argv[2])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
kind = sys.argv[3]
if kind == "verl":
    scores = [module.compute_score(c["data_source"], c["reply"], c["ground_truth"],
                                   c["extra_info"]) for c in cases]
elif kind == "grpo":  # one batch, conversational completions, as GRPOTrainer calls it
    scores = module.reward(
        completions=[[{"role": "assistant", "content": c["reply"]}] for c in cases],
        prompts=[c["prompt"] for c in cases], ground_truth=[c["ground_truth"] for c in cases],
        data_source=[c["data_source"] for c in cases], trainer_state=None)
else:
    env = module.load_environment()
    rows = {r["question"]: r for r in env.dataset}
    scores = [env.score([{"role": "assistant", "content": c["reply"]}],
                        rows[c["prompt"][0]["content"]]) for c in cases]
loaded = sorted(m for m in sys.modules if m.split(".")[0] in
                ("synthloom", "trl", "verl", "verifiers"))
print(json.dumps({"scores": scores, "modules": loaded}))
"""


def _perturbations(reference: str) -> list[str]:
    """Wrong-looking variants of an answer: one character changed, the answer reversed."""
    out = []
    for i, ch in enumerate(reference):
        if ch.isalnum():
            swap = ("1" if ch != "1" else "2") if ch.isdigit() else ("a" if ch != "a" else "b")
            out.append(reference[:i] + swap + reference[i + 1:])
            break
    out.append(reference[::-1])
    return out


def _cases(rows: list[dict], truth_of, source_of, reference_of) -> list[dict]:
    """Per row: its own answer as a reasoning model writes it (expected 1) and one perturbed
    answer - another row's answer of the same task, or a mutation - that the in-process
    verifier rejects (expected 0)."""
    by_source: dict[str, list[str]] = {}
    for row in rows:
        by_source.setdefault(source_of(row), []).append(reference_of(row))
    cases = []
    for row in rows:
        truth, reference = truth_of(row), reference_of(row)
        base = {"data_source": source_of(row), "ground_truth": truth, "prompt": row["prompt"],
                "extra_info": row.get("extra_info") or {}}
        own = f"<think>Let me work it out. Answer: nonsense</think>\nAnswer: {reference}"
        assert check(own, truth) is None, (base["data_source"], reference)
        cases.append({**base, "reply": own, "expected": 1.0})
        for wrong in [*by_source[source_of(row)], *_perturbations(reference)]:
            if wrong != reference and check(f"Answer: {wrong}", truth) is not None:
                cases.append({**base, "reply": f"Answer: {wrong}", "expected": 0.0})
                break
    return cases


def _score_in_fresh_process(tmp: Path, cases: list[dict], module: Path, kind: str) -> dict:
    cases_path = tmp / f"{kind}-cases.json"
    cases_path.write_text(json.dumps(cases))
    done = subprocess.run([sys.executable, "-c", SCORER, str(cases_path), str(module), kind],
                          capture_output=True, text=True, timeout=280, cwd=tmp)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _check_format(tmp: Path, run_dir: Path, kind: str, module_name: str) -> Counter:
    out = tmp / f"{run_dir.name}-{kind}"
    result = export(run_dir, out, ExportOptions(format=kind))
    assert result.rows == len(read_jsonl(run_dir / "data.jsonl")) and result.rows > 0
    if kind == "verl":
        import pyarrow.parquet as pq

        rows = pq.read_table(result.data_path).to_pylist()
        assert all(r["reward_model"]["style"] == "rule" and r["prompt"][0]["role"] == "user"
                   for r in rows)
        cases = _cases(rows, lambda r: r["reward_model"]["ground_truth"],
                       lambda r: r["data_source"], lambda r: r["extra_info"]["answer"])
    elif kind == "grpo":
        rows = read_jsonl(result.data_path)
        cases = _cases(rows, lambda r: r["ground_truth"], lambda r: r["data_source"],
                       lambda r: json.loads(r["ground_truth"]).get("item", {}).get("answer")
                       or _gym_answer(run_dir, r))
    else:
        rows = read_jsonl(result.data_path)
        cases = _cases(rows, lambda r: r["answer"], lambda r: r["task"],
                       lambda r: r["info"]["reference"])
    got = _score_in_fresh_process(tmp, cases, out / module_name, kind)
    assert got["scores"] == [c["expected"] for c in cases], [
        (c["data_source"], c["reply"][-80:], c["expected"], s)
        for c, s in zip(cases, got["scores"], strict=True) if s != c["expected"]]
    loaded = {m.split(".")[0] for m in got["modules"]}
    assert loaded == {"synthloom"}, got["modules"]  # no trainer package needed
    assert not any(m.startswith(("synthloom.export", "synthloom.api", "synthloom.core.executor"))
                   for m in got["modules"]), got["modules"]
    return Counter((c["data_source"], c["expected"]) for c in cases)


def _gym_answer(run_dir: Path, row: dict) -> str:
    index = json.loads(row["ground_truth"])["gym_index"]
    dataset = json.loads(row["ground_truth"])["gym_dataset"]
    return next(r["answer"] for r in read_jsonl(run_dir / "data.jsonl")
                if r["gym_index"] == index and r["gym_dataset"] == dataset)


@pytest.mark.parametrize("kind, module_name", [("verl", "reward.py"),
                                               ("grpo", "grpo_reward.py"),
                                               ("verifiers", "environment.py")])
def test_logic_recipe_rewards_score_own_answers_1_and_perturbed_0(
        tmp_path: Path, kind: str, module_name: str) -> None:
    run_dir = tmp_path / "logic"
    summary = run(Recipe.load("logic", {"count": "2"}), run_dir).to_json()
    assert summary["status"] == "ok"
    counts = _check_format(tmp_path, run_dir, kind, module_name)
    for task in TASKS:  # every task: its own answers rewarded, a wrong one not
        assert counts[(f"synthloom/logic/{task}", 1.0)] == 2, task
        assert counts[(f"synthloom/logic/{task}", 0.0)] >= 1, task


@pytest.mark.parametrize("kind, module_name", [("verl", "reward.py"),
                                               ("grpo", "grpo_reward.py")])
def test_gym_rewards_score_own_answers_1_and_perturbed_0(
        tmp_path: Path, kind: str, module_name: str) -> None:
    pytest.importorskip("reasoning_gym", reason="the gym extra is not installed")
    recipe = Recipe.from_dict({
        "name": "gym-rl", "seed": 0,
        "sources": [{"name": "gym", "type": "gym_tasks", "count": 3, "seed": 1,
                     "datasets": {"puzzle24": {}, "mini_sudoku": {}, "knights_knaves": {}}}],
        "steps": [{"name": "verify", "type": "verify_gym"}],
        "sinks": [{"type": "jsonl", "path": "data.jsonl"}]})
    run_dir = tmp_path / "gym"
    assert run(recipe, run_dir).to_json()["records"] == 9
    counts = _check_format(tmp_path, run_dir, kind, module_name)
    for name in ("puzzle24", "mini_sudoku", "knights_knaves"):
        assert counts[(f"reasoning_gym/{name}", 1.0)] == 3
        assert counts[(f"reasoning_gym/{name}", 0.0)] >= 1
