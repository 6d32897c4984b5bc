"""Self-Instruct with the scripted test backend (ScriptedTestBackend, a test double): the ROUGE-L
scorer against a brute-force reference, the paper's filters, pool growth over rounds, the
classification branch (output-first), drop reasons, accounting and a call-free rerun."""

from __future__ import annotations

import asyncio
import json
import random
import re
from pathlib import Path

import pytest

from synthloom.api import RunOptions, run_recipe
from synthloom.core.recipe import Recipe
from synthloom.methods.selfinstruct.bootstrap import parse_instructions
from synthloom.methods.selfinstruct.filters import instance_problems, instruction_problem
from synthloom.methods.selfinstruct.rouge import RougePool, lcs_length, rouge_l, tokenize
from tests.support.runs import read_jsonl, step_closes
from tests.support.scripted_backend import ScriptedTestBackend, last_user_text

WORDS = ("river", "violin", "budget", "glacier", "sonnet", "tax", "orbit", "garden", "cipher",
         "harvest", "lantern", "marathon", "pottery", "volcano", "archive", "compass", "ferry",
         "quartz", "meadow", "bakery", "tunnel", "falcon", "ledger", "canyon", "opera", "pepper",
         "satellite", "harbor", "kettle", "origami", "saddle", "trumpet", "walnut", "zephyr")


def _lcs_dp(a: list[str], b: list[str]) -> int:
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            table[i + 1][j + 1] = table[i][j] + 1 if x == y else max(table[i][j + 1],
                                                                     table[i + 1][j])
    return table[-1][-1]


def test_bit_parallel_lcs_matches_dynamic_programming() -> None:
    rng = random.Random(7)
    for _ in range(2000):
        a = [rng.choice("abcdef") for _ in range(rng.randint(0, 40))]
        b = [rng.choice("abcdefg") for _ in range(rng.randint(0, 40))]
        assert lcs_length(a, b) == _lcs_dp(a, b)
    # rouge_score's tokenisation: lower-case alphanumeric runs.
    assert tokenize("Write a POEM, about 2 cats!") == ["write", "a", "poem", "about", "2", "cats"]
    assert rouge_l("the cat sat on the mat", "the cat sat") == pytest.approx(2 * 3 / 9)


def test_pool_best_is_exact_and_skips_most_pairs() -> None:
    rng = random.Random(3)
    vocab = [f"w{i}" for i in range(300)]
    texts = [" ".join(rng.choice(vocab) for _ in range(rng.randint(4, 20))) for _ in range(400)]
    pool = RougePool()
    for text in texts:
        pool.add(text)
    skipped = 0
    for _ in range(40):
        probe = " ".join(rng.choice(vocab) for _ in range(rng.randint(4, 20)))
        match = pool.best(probe)
        brute = max(rouge_l(probe, t) for t in texts)
        assert match.score == pytest.approx(brute)
        assert rouge_l(probe, match.text) == pytest.approx(brute)
        skipped += len(texts) - match.exact_pairs
    # The overlap bound prunes: far fewer exact LCS runs than pairs.
    assert skipped > 0.8 * 40 * len(texts)
    assert pool.best("zzz unknown words").score == 0.0


def test_instruction_and_instance_filters() -> None:
    assert instruction_problem("Describe the image in detail please.") == \
        "heuristic: contains 'image'"
    assert instruction_problem("Plot the sales numbers for this year.") == \
        "heuristic: contains 'plot'"
    assert instruction_problem("Tell me how to go to the station.") == \
        "heuristic: contains 'go to'"
    assert instruction_problem("Explain mapping functions in Python code.") is None  # whole words
    assert instruction_problem("Write a program that sorts numbers.") == \
        "heuristic: starts with 'Write a program'"
    # The paper's code drops instructions of 3 words or fewer.
    assert instruction_problem("Name three red fruits") is None
    assert instruction_problem("Name three fruits") == "heuristic: 3 words (< 4)"
    assert instruction_problem("- List the planets in order.").startswith(
        "heuristic: starts with punctuation")
    assert instruction_problem("Écris un poème sur la mer.").startswith(
        "heuristic: starts with non-ASCII")
    assert instruction_problem(" ".join(["word"] * 151)) == "heuristic: 151 words (> 150)"
    problems, task = instance_problems([
        {"input": "a", "output": "b"}, {"input": "x", "output": ""},
        {"input": "same", "output": "same"}, {"input": "q", "output": "Answer:"},
        {"input": "a", "output": "b"}])
    assert task is None
    assert problems == [None, "instance: empty output", "instance: output repeats the input",
                        "instance: ends with ':' (cut-off generation)",
                        "instance: exact repeat of an earlier instance of this task"]
    _, task = instance_problems([{"input": "2+2", "output": "4"}, {"input": "2+2", "output": "5"}])
    assert task == "instances: same input '2+2' with different outputs"


def test_parse_instructions_continues_the_numbered_list() -> None:
    text = "Give three tips for sleeping well.\n10. Translate the sentence to French.\n11 . x\n12."
    items = parse_instructions(text, cut_off=False)
    assert [i for i, _ in items] == ["Give three tips for sleeping well.",
                                     "Translate the sentence to French.", "X"]
    items = parse_instructions("9. First task here ok\n10. Second task cut", cut_off=True)
    assert items[0] == ("First task here ok", None)
    assert items[1][1] == "cut off at max_tokens (last item of the completion)"
    assert parse_instructions("   ", cut_off=False) == []
    assert parse_instructions("1. 1. \nPlan a week of vegetarian dinners.\n3.14 is pi",
                              cut_off=False) == [("Plan a week of vegetarian dinners. 3.14 is pi",
                                                  None)]


def _instruction_list(text: str, seed: int | None) -> str:
    """Continue the list: two novel tasks (seeded words), a near-copy of an in-context task,
    a keyword task, a "Write a program" task, and a pair that is novel but near-identical."""
    shown = re.findall(r"^\d+\. (.+)$", text, flags=re.MULTILINE)
    rng = random.Random(seed)
    a, b, c, d, e, f, g = rng.sample(WORDS, 7)
    return "\n".join([
        f"Compose {a} {b} {d} {e} riddles.",
        f"{len(shown) + 2}. Classify the {c} {f} {g} review as helpful or unhelpful.",
        f"{len(shown) + 3}. {shown[0]}",
        f"{len(shown) + 4}. Describe the image of a {a} at night.",
        f"{len(shown) + 5}. Write a program that prints the word {b}.",
        f"{len(shown) + 6}. Compose {a} {b} {d} {e} riddles today.",
    ])


def self_instruct_responder(request, seed) -> str:
    text = last_user_text(request)
    if text.startswith("Come up with a series of tasks"):
        return _instruction_list(text, seed)
    task = re.findall(r"^Task: (.+)$", text, flags=re.MULTILINE)[-1]  # (no repair rounds)
    if "Is it classification?" in text:
        return json.dumps({"is_classification": "Yes" if task.startswith("Classify") else "No"})
    if "class_label" in text:
        return json.dumps({"instances": [{"class_label": "helpful", "input": "Great tips."},
                                         {"class_label": "unhelpful", "input": "Meh."}]})
    return json.dumps({"instances": [{"input": "", "output": f"An answer to: {task}"},
                                     {"input": "same", "output": "same"}]})


def run(recipe: Recipe, out: Path, backend: ScriptedTestBackend, limit: int) -> dict:
    options = RunOptions(backend=backend, limit=limit)
    return asyncio.run(run_recipe(recipe, out, options)).to_json()


def steps_of(summary: dict) -> dict[str, dict]:
    return {s["name"]: s for s in summary["steps"]}


def test_self_instruct_pool_grows_filters_and_replays(tmp_path: Path) -> None:
    params = {"rounds": "2", "prompts_per_round": "2"}
    backend = ScriptedTestBackend(self_instruct_responder)
    out = tmp_path / "out"
    summary = run(Recipe.load("self-instruct", params), out, backend, limit=20)
    steps = steps_of(summary)
    assert all(step_closes(s) for s in steps.values()), steps
    boot = steps["bootstrap"]
    assert boot["in"] == 20 and boot["llm_calls"] == 4  # 2 rounds x 2 prompts
    assert boot["out"] == 4 * 6 and boot["kept"] + boot["dropped"] == 20
    assert summary["llm_calls"] == backend.calls == sum(s["llm_calls"] for s in steps.values())

    dropped = read_jsonl(out / "dropped.jsonl")
    reasons = [d["reason"] for d in dropped if d["step"] == "novel"]
    assert any(r == "heuristic: contains 'image'" for r in reasons)
    assert any(r == "heuristic: starts with 'Write a program'" for r in reasons)
    # The copied in-context task: ROUGE-L 1.00 against that very instruction.
    assert any(re.fullmatch(r"rouge-l 1\.00 vs '.+'", r) for r in reasons)
    # The near-identical twin of a task kept moments earlier in the same completion.
    assert any(re.match(r"rouge-l 0\.9\d vs 'Compose ", r) for r in reasons)
    seed_drops = [d for d in dropped if d["step"] == "bootstrap"]
    assert all(d["reason"].startswith("seed task: in the pool") for d in seed_drops)

    kept = read_jsonl(out / "data.jsonl")
    assert kept, "some generated tasks must survive"
    seeds = [json.loads(x)["instruction"] for x in
             (Path(Recipe.load("self-instruct").path).parents[1] / "data" / "instruct" /
              "seed_tasks.jsonl").read_text().splitlines()]
    for record in kept:
        assert set(record) >= {"instruction", "input", "output", "is_classification", "round",
                               "examples", "rouge_max"}
        assert record["rouge_max"]["score"] <= 0.7  # the authors drop only > 0.7
        against = record["rouge_max"]["against"] or ""
        assert rouge_l(record["instruction"], against) == \
            pytest.approx(record["rouge_max"]["score"], abs=1e-4)
        assert max(rouge_l(record["instruction"], s) for s in seeds) <= 0.7
        assert len(record["examples"]) == 8 and record["output"]
        assert record["is_classification"] is record["instruction"].startswith("Classify")
        generation = record["_meta"]["generation"]
        assert generation == ("output-first" if record["is_classification"] else "input-first")
    # Kept instructions are novel against each other too.
    instructions = sorted({r["instruction"] for r in kept})
    for i, x in enumerate(instructions):
        assert all(rouge_l(x, y) <= 0.7 for y in instructions[i + 1:])
    # Round 2 prompts show 2 generated tasks among their 8 in-context examples.
    round2 = [r for r in kept if r["round"] == 2]
    assert round2 and all(sum(e.startswith("si-r1-") for e in r["examples"]) == 2
                          for r in round2)
    assert all(not any(e.startswith("si-") for e in r["examples"])
               for r in kept if r["round"] == 1)
    # An output that repeats its input is dropped with the paper's instance filter reason.
    assert any(d["reason"] == "instance: output repeats the input" for d in dropped
               if d["step"] == "valid_instances")

    # A rerun sends no request: the global step's result and every item replay.
    again = ScriptedTestBackend(self_instruct_responder)
    summary2 = run(Recipe.load("self-instruct", params), out, again, limit=20)
    assert again.calls == 0 and summary2["llm_calls"] == 0
    assert read_jsonl(out / "data.jsonl") == kept

    # One more round in a fresh run folder replays nothing from the item cache, but its
    # sampling is seeded by (run seed, round, prompt): rounds 1-2 send the same requests.
    more = ScriptedTestBackend(self_instruct_responder)
    run(Recipe.load("self-instruct", {**params, "rounds": "3"}), tmp_path / "more", more, limit=20)
    first = set(backend.prompts)
    assert first <= set(more.prompts) and len(set(more.prompts) - first) >= 2


def test_bootstrap_with_two_seeds_and_a_failing_prompt(tmp_path: Path) -> None:
    """--limit 2: prompts hold only the 2 seeds; a failed call fails its anchor seed (not
    cached: the rerun retries it) and the accounting still closes."""
    from synthloom.llm.types import PermanentLLMError

    backend = ScriptedTestBackend(self_instruct_responder,
                                  errors=[PermanentLLMError("scripted: bad request")])
    params = {"rounds": "1", "prompts_per_round": "2"}
    summary = run(Recipe.load("self-instruct", params), tmp_path / "o", backend, limit=2)
    boot = steps_of(summary)["bootstrap"]
    assert step_closes(boot) and boot["in"] == 2 and boot["failed"] >= 1
    [failure] = [r for r in read_jsonl(tmp_path / "o" / "failed.jsonl") if r["step"] == "bootstrap"]
    assert "PermanentLLMError" in failure["message"] and "round 1 prompt" in failure["message"]
    again = ScriptedTestBackend(self_instruct_responder)
    summary = run(Recipe.load("self-instruct", params), tmp_path / "o", again, limit=2)
    boot = steps_of(summary)["bootstrap"]
    assert boot["failed"] == 0 and again.calls >= 1 and step_closes(boot)


def test_rouge_exactly_threshold_is_kept_and_presence_penalty_is_2(tmp_path: Path) -> None:
    """The authors' bootstrap_instructions.py: ``if max(rouge_scores) > 0.7: continue`` (0.7
    itself is kept) and ``presence_penalty=2`` on the instruction-generation call."""
    seed = "alpha bravo charlie delta echo foxtrot golf hotel india juliet"
    at = "alpha bravo charlie delta echo foxtrot golf kilo lima mike"  # LCS 7 of 10 + 10
    above = "alpha bravo charlie delta echo foxtrot golf hotel india mike"  # 0.9
    assert rouge_l(seed, at) == 0.7 and rouge_l(seed, above) == pytest.approx(0.9)
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text(json.dumps({"id": "s0", "instruction": seed, "instances": [
        {"input": "", "output": "ok"}], "is_classification": False}) + "\n")
    penalties: list[float] = []

    def responder(request, seed_):
        if last_user_text(request).startswith("Come up with a series of tasks"):
            penalties.append(request.params.presence_penalty)
            return f"2. {at}\n3. {above}\n"
        return self_instruct_responder(request, seed_)

    out = tmp_path / "out"
    run(Recipe.load("self-instruct", {"seeds": str(seeds), "rounds": "1",
                                      "prompts_per_round": "1"}),
        out, ScriptedTestBackend(responder), limit=1)
    assert penalties == [2.0]
    reasons = [d["reason"] for d in read_jsonl(out / "dropped.jsonl") if d["step"] == "novel"]
    assert reasons == [f"rouge-l 0.90 vs {seed!r}"]
    [kept] = read_jsonl(out / "data.jsonl")
    assert kept["instruction"] == at.capitalize() and kept["rouge_max"]["score"] == 0.7
