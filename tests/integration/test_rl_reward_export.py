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


def test_trl_grpo_trains_two_steps_with_the_exported_reward(tmp_path: Path) -> None:
    """TRL's own GRPOTrainer (CPU, a tiny randomly initialised Llama built here: no hub) reads
    the grpo export and calls the exported reward function with its columns."""
    datasets = pytest.importorskip("datasets")
    transformers = pytest.importorskip("transformers")
    trl = pytest.importorskip("trl")
    import importlib.util

    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    run_dir = tmp_path / "logic"
    run(Recipe.load("logic", {"count": "2", "tasks": "game24,knights_knaves"}), run_dir)
    result = export(run_dir, tmp_path / "grpo", ExportOptions(format="grpo"))
    spec = importlib.util.spec_from_file_location("grpo_reward",
                                                  tmp_path / "grpo" / "grpo_reward.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    calls: list[dict] = []

    def reward(completions: list, **kwargs: object) -> list[float]:
        scores = module.reward(completions, **kwargs)
        calls.append({"n": len(completions), "keys": sorted(kwargs), "scores": scores})
        return scores

    dataset = datasets.load_dataset("json", data_files=str(result.data_path), split="train")
    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator([r["prompt"][0]["content"] for r in dataset], trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<pad>", "<unk>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok = transformers.PreTrainedTokenizerFast(
        tokenizer_object=bpe, pad_token="<pad>", unk_token="<unk>", eos_token="<|im_end|>",
        bos_token="<|im_start|>")
    tok.chat_template = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}"
                         "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}"
                         "<|im_start|>assistant\n{% endif %}")
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(transformers.LlamaConfig(
        vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=2048,
        pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
        bos_token_id=tok.bos_token_id))
    args = trl.GRPOConfig(output_dir=str(tmp_path / "out"), max_steps=2,
                          per_device_train_batch_size=2, num_generations=2,
                          max_completion_length=8, learning_rate=1e-3, report_to=[],
                          save_strategy="no", logging_steps=1, use_cpu=True,
                          disable_tqdm=True, seed=0)
    trainer = trl.GRPOTrainer(model=model, reward_funcs=reward, args=args,
                              train_dataset=dataset, processing_class=tok)
    trainer.train()
    assert calls and all(c["n"] == len(c["scores"]) for c in calls)
    assert {"ground_truth", "data_source"} <= set(calls[0]["keys"])
    assert all(s in (0.0, 1.0) for c in calls for s in c["scores"])
