"""West-of-N and rubric judging with a reward model (``reward:PATH``) instead of the LLM judge.

The reward model is a real tiny transformers model built in the test (tests/support/
tiny_reward.py; random weights, so scores are arbitrary but deterministic). Answers are
sampled by the ScriptedTestBackend (a test double) where a step samples; the pairs' chosen /
rejected are checked against the reward model's own scores of the same (prompt, answer).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch", reason="the reward backend needs torch (synthloom[reward])")
pytest.importorskip("transformers", reason="the reward backend needs transformers")

from synthloom.api import RunOptions, run_recipe  # noqa: E402
from synthloom.core.errors import RecipeError  # noqa: E402
from synthloom.core.recipe import Recipe  # noqa: E402
from synthloom.export.sinks import JsonlSink  # noqa: E402
from synthloom.llm.backends.reward import RewardModelBackend  # noqa: E402
from synthloom.quality.judges import JudgeRubric  # noqa: E402
from synthloom.quality.preferences import PreferencePairs  # noqa: E402
from synthloom.sources.files import JsonlRows  # noqa: E402
from tests.support.scripted_backend import ScriptedTestBackend, last_user_text  # noqa: E402
from tests.support.tiny_reward import build_tiny_reward_model  # noqa: E402

ROWS = [{"instruction": "explain the rainbow",
         "answers": ["the sun and rain", "light", "", "the sun and water and light because"]},
        {"instruction": "why is the tide", "answers": ["the moon", "the moon is good"]},
        {"instruction": "what is water", "answers": ["only one answer"]}]
ANSWERS = ["the sun", "the moon and the sun", "water is good because rain",
           "a very long answer with detail detail detail", "no", "yes it is the light"]


@pytest.fixture(scope="module")
def rm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_reward_model(tmp_path_factory.mktemp("rm") / "tiny-rm", kind="llama")


def reward_of(folder: Path, prompt: str, answers: list[str]) -> list[float]:
    out = RewardModelBackend(str(folder)).score_batch([(prompt, a) for a in answers])
    return [x.score for x in out]  # type: ignore[union-attr]


def run(out: Path, steps: list, backend, rows=ROWS, models: dict | None = None) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    rows_path = out.parent / f"{out.name}-rows.jsonl"
    rows_path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    recipe = Recipe(name="reward", sources=[JsonlRows(name="rows", path=str(rows_path))],
                    steps=steps, sinks=[JsonlSink(path="data.jsonl")], models=models or {})
    summary = asyncio.run(run_recipe(recipe, out, RunOptions(backend=backend)))
    return summary.to_json()


def read(out: Path, name: str) -> list[dict]:
    path = out / name
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()] \
        if path.exists() else []


def sampler(request, seed) -> str:  # the scripted generator: a different answer per seed
    return ANSWERS[(seed or 0) % len(ANSWERS)]


def test_given_answers_are_ranked_by_the_step_s_reward_model(rm: Path, tmp_path: Path) -> None:
    out = tmp_path / "A"
    summary = run(out, [PreferencePairs(name="pairs", responses="answers")],
                  f"reward:{rm}")
    step = summary["steps"][1]
    assert step["in"] == step["out"] + step["failed"] + step["dropped"] == 3
    pairs = {p["prompt"]: p for p in read(out, "data.jsonl")}
    assert set(pairs) == {"explain the rainbow", "why is the tide"}
    for row in ROWS[:2]:
        answers = [a for a in row["answers"] if a]
        expected = reward_of(rm, row["instruction"], answers)
        pair = pairs[row["instruction"]]
        assert pair["candidate_scores"] == pytest.approx(expected, abs=1e-5)
        assert pair["chosen"] == answers[expected.index(max(expected))]
        assert pair["rejected"] == answers[expected.index(min(expected))]
        assert pair["margin"] == pytest.approx(max(expected) - min(expected), abs=1e-5)
        assert pair["_meta"]["scorer"].startswith("reward:tiny-rm:")
        assert pair["_meta"]["model"] == pair["_meta"]["scorer"]
        assert "chosen_scores" not in pair  # no rubric criteria behind a reward score
    [dropped] = read(out, "dropped.jsonl")
    assert dropped["reason"] == "fewer than 2 non-empty answers (1)"
    # One call per scored answer, all charged to the step; a rerun replays them all.
    assert step["llm_calls"] == 3 + 2 and summary["llm"]["calls"] == 5
    again = run(out, [PreferencePairs(name="pairs", responses="answers")], f"reward:{rm}")
    assert again["steps"][1]["llm_calls"] == 0 and again["records"] == 2


def test_sampled_by_the_step_s_model_scored_by_the_named_reward_model(
        rm: Path, tmp_path: Path) -> None:
    out = tmp_path / "B"
    gen = ScriptedTestBackend(sampler)
    steps = [PreferencePairs(name="pairs", n=4, reward_model="rm")]
    summary = run(out, steps, gen, models={"rm": f"reward:{rm}"})
    pairs = read(out, "data.jsonl")
    assert len(pairs) == 3 and gen.calls == 3 * 4  # sampling only: no judge calls
    for pair in pairs:
        scores = pair["candidate_scores"]
        assert pair["chosen_score"] == max(scores) and pair["rejected_score"] == min(scores)
        assert pair["_meta"]["model"] == gen.model_id
        assert pair["_meta"]["scorer"].startswith("reward:tiny-rm:")
    step = summary["steps"][1]
    assert step["llm_calls"] == 3 * 4 + 3 * 4  # 12 samples + 12 scores


def test_the_pair_follows_the_reward_model_scores_of_the_sampled_answers(
        rm: Path, tmp_path: Path) -> None:
    seen: dict[str, list[str]] = {}

    def recording(request, seed) -> str:
        answer = sampler(request, seed)
        seen.setdefault(last_user_text(request), []).append(answer)
        return answer

    out = tmp_path / "C"
    run(out, [PreferencePairs(name="pairs", n=3, reward_model="rm")],
        ScriptedTestBackend(recording), rows=ROWS[:1], models={"rm": f"reward:{rm}"})
    [pair] = read(out, "data.jsonl")
    [answers] = seen.values()
    expected = reward_of(rm, pair["prompt"], answers)
    by_score = dict(zip(answers, expected, strict=True))
    assert pair["chosen"] == max(by_score, key=by_score.get)
    assert pair["rejected"] == min(by_score, key=by_score.get)
    assert pair["chosen_score"] == pytest.approx(max(expected), abs=1e-5)


def test_another_reward_model_reruns_only_the_scoring(rm: Path, tmp_path: Path) -> None:
    other = build_tiny_reward_model(tmp_path / "other-rm", kind="llama", seed=7)
    out = tmp_path / "D"
    gen = ScriptedTestBackend(sampler)
    run(out, [PreferencePairs(name="pairs", n=3, reward_model="rm")], gen,
        models={"rm": f"reward:{rm}"})
    first = {p["prompt"]: p["candidate_scores"] for p in read(out, "data.jsonl")}
    gen2 = ScriptedTestBackend(sampler)
    summary = run(out, [PreferencePairs(name="pairs", n=3, reward_model="rm")], gen2,
                  models={"rm": f"reward:{other}"})
    assert gen2.calls == 0  # the samples come from the cache
    assert summary["steps"][1]["llm_calls"] == 3 * 3  # every answer scored again
    second = {p["prompt"]: p["candidate_scores"] for p in read(out, "data.jsonl")}
    assert second.keys() <= first.keys() and any(second[k] != first[k] for k in second)


def test_a_reward_model_cannot_sample_and_a_generator_cannot_score(
        rm: Path, tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match=r"is a reward model, which scores answers but "
                                          r"cannot sample them: give the answers in 'responses'"):
        run(tmp_path / "E", [PreferencePairs(name="pairs", n=2)], f"reward:{rm}")
    with pytest.raises(RecipeError, match=r"reward_model 'gen' \(scripted:scripted\) is not a "
                                          r"reward model"):
        run(tmp_path / "F", [PreferencePairs(name="pairs", n=2, reward_model="gen")],
            ScriptedTestBackend(sampler), models={"gen": "default"})


def test_judge_rubric_with_a_reward_model(rm: Path, tmp_path: Path) -> None:
    rows = [{"instruction": "why is the tide", "response": a} for a in
            ("the moon", "the sun", "the moon is good because water")]
    expected = reward_of(rm, "why is the tide", [r["response"] for r in rows])
    cut = sorted(expected)[1]  # keeps the two best, drops the worst
    out = tmp_path / "G"
    summary = run(out, [JudgeRubric(name="judge", model="rm", response="response",
                                    min_total=cut)],
                  ScriptedTestBackend(sampler), rows=rows, models={"rm": f"reward:{rm}"})
    kept = read(out, "data.jsonl")
    assert len(kept) == 2 and summary["steps"][1]["dropped"] == 1
    for row in kept:
        scores = row["scores"]
        assert scores["rubric"] == "reward" and scores["max_total"] is None
        assert scores["total"] == pytest.approx(
            expected[[r["response"] for r in rows].index(row["response"])], abs=1e-5)
        assert row["_meta"]["model"].startswith("reward:tiny-rm:")
    [dropped] = read(out, "dropped.jsonl")
    assert dropped["reason"].startswith("reward total ") and "< min_total" in dropped["reason"]
    with pytest.raises(RecipeError, match="set 'response' to its column"):
        run(tmp_path / "H", [JudgeRubric(name="judge", model="rm")],
            ScriptedTestBackend(sampler), rows=rows, models={"rm": f"reward:{rm}"})


def test_cli_runs_a_preference_recipe_on_a_reward_model(rm: Path, tmp_path: Path) -> None:
    """End to end through ``python -m synthloom run``: the reward model is the run's backend
    and scores answers given in the rows (no text generation anywhere in this recipe)."""
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    recipe = tmp_path / "prefs.yaml"
    recipe.write_text(f"""name: reward-prefs
sources:
  - {{name: rows, type: jsonl, path: "{rows}"}}
steps:
  - {{name: pairs, type: preference_pairs, responses: answers}}
sinks:
  - {{type: jsonl, path: data.jsonl}}
""")
    out = tmp_path / "cli"
    done = subprocess.run([sys.executable, "-m", "synthloom", "run", str(recipe), "--out",
                           str(out), "--backend", f"reward:{rm}", "--quiet"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    pairs = {p["prompt"]: p for p in read(out, "data.jsonl")}
    assert len(pairs) == 2
    answers = [a for a in ROWS[0]["answers"] if a]
    expected = reward_of(rm, ROWS[0]["instruction"], answers)
    assert pairs[ROWS[0]["instruction"]]["chosen"] == answers[expected.index(max(expected))]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["llm"]["calls"] == 5 and summary["llm"]["backend"] == "reward"


def test_a_yaml_recipe_names_the_reward_model_in_its_models_block(
        rm: Path, tmp_path: Path) -> None:
    """The recipe path: ``models: {rm: reward:PATH}`` and ``reward_model: rm`` in YAML, run by
    ``run_recipe``; answers sampled by the ScriptedTestBackend (a test double) as the run's
    model; summary.json accounts the calls per model."""
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({"instruction": r["instruction"]}) + "\n"
                            for r in ROWS))
    recipe = tmp_path / "prefs.yaml"
    recipe.write_text(f"""name: reward-yaml
models:
  rm: "reward:{rm}?batch_size=4"
sources:
  - {{name: rows, type: jsonl, path: "{rows}"}}
steps:
  - {{name: pairs, type: preference_pairs, n: 3, reward_model: rm}}
""")
    gen = ScriptedTestBackend(sampler)
    out = tmp_path / "yaml"
    summary = asyncio.run(run_recipe(recipe, out, RunOptions(backend=gen))).to_json()
    pairs = read(out, "data.jsonl")
    assert len(pairs) == 3 and gen.calls == 9
    models = summary["models"]
    assert models["default"]["calls"] == 9 and models["rm"]["calls"] == 9
    assert models["rm"]["backend"] == "reward" and models["rm"]["model"].startswith(
        "reward:tiny-rm:")
    assert models["rm"]["prompt_tokens"] > 0 and models["rm"]["completion_tokens"] == 0


def test_an_answer_too_long_for_the_reward_model_is_left_out_and_named(
        rm: Path, tmp_path: Path) -> None:
    rows = [{"instruction": "explain the rainbow",
             "answers": ["the sun", "light", "the sun and water and light because the rain "
                         "is very long"]},
            {"instruction": "why is the tide",
             "answers": ["the moon", "the sun and water and light because the rain is long"]}]
    out = tmp_path / "long"
    summary = run(out, [PreferencePairs(name="pairs", responses="answers")],
                  f"reward:{rm}?max_length=16", rows=rows)
    [pair] = read(out, "data.jsonl")
    assert pair["candidate_scores"][2] is None and pair["_meta"]["unscored"] == 1
    assert {pair["chosen"], pair["rejected"]} == {"the sun", "light"}
    [failed] = read(out, "failed.jsonl")  # one answer left: no pair, and it says why
    assert failed["message"].startswith("only 1 of 2 answers could be scored: answer 1: "
                                        "PermanentLLMError")
    assert "max_length 16" in failed["message"]
    step = summary["steps"][1]
    assert (step["out"], step["failed"]) == (1, 1)
