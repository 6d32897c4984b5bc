"""West-of-N preference pairs on the ScriptedTestBackend (a test double): best vs worst by the
rubric judge, ties and small margins dropped with reasons, unscorable answers left out."""

from __future__ import annotations

import json
from pathlib import Path

from synthloom.quality.judges import RUBRICS, JudgeOptions
from synthloom.quality.preferences import PreferencePairs
from tests.support.scripted_backend import ScriptedTestBackend
from tests.unit.test_judges_rubric import judged_text, quoted, read, run

UF = RUBRICS["ultrafeedback"].criteria
PROMPTS = [{"instruction": "Explain rainbows"}, {"instruction": "Say the same thing"},
           {"instruction": "Describe tides"}]


def detail_score(answer: str) -> int:
    return 1 + min(4, answer.count("detail"))


def responder(request, seed) -> str:
    text = judged_text(request)
    if request.json_schema is None:  # sampling an answer
        if text == "Say the same thing":
            return "Always this answer."
        return f"Answer {seed}:" + " detail" * (seed % 6)
    _, answer = quoted(text)
    if "unscorable" in answer:
        return "I refuse to grade."
    return json.dumps({c: {"analysis": "ok", "score": detail_score(answer)} for c in UF})


def judge(**kw) -> JudgeOptions:
    return JudgeOptions(rubric="ultrafeedback", rationale=True, **kw)


def test_best_and_worst_become_a_dpo_pair(tmp_path: Path) -> None:
    backend = ScriptedTestBackend(responder)
    summary = run(tmp_path, [PreferencePairs(name="pairs", n=4, min_margin=1, judge=judge())],
                  backend, rows=PROMPTS)
    step = summary["steps"][1]
    assert step["in"] == step["out"] + step["failed"] + step["dropped"] == 3
    pairs = read(tmp_path, "data.jsonl")
    assert pairs, "at least one pair"
    for pair in pairs:
        assert pair["prompt"] == pair["instruction"]
        assert pair["chosen"] != pair["rejected"]
        assert pair["chosen_score"] == 4 * detail_score(pair["chosen"])
        assert pair["rejected_score"] == 4 * detail_score(pair["rejected"])
        assert pair["chosen_score"] == max(pair["candidate_scores"])
        assert pair["rejected_score"] == min(pair["candidate_scores"])
        assert pair["margin"] == pair["chosen_score"] - pair["rejected_score"] >= 1
        assert len(pair["candidate_scores"]) == 4
        assert pair["chosen_scores"]["rubric"] == "ultrafeedback"
        assert set(pair["chosen_scores"]["criteria"]) == set(UF)
        meta = pair["_meta"]
        assert meta["chosen_index"] != meta["rejected_index"] and meta["unscored"] == 0
    dropped = read(tmp_path, "dropped.jsonl")
    tie = [d for d in dropped if d["record"]["instruction"] == "Say the same thing"]
    assert tie and tie[0]["reason"] == "tie: all 4 scored answers have total 4"
    # 4 samples + 4 judge calls per prompt, all charged to the step.
    assert step["llm_calls"] == backend.calls == 24


def test_margin_below_minimum_is_dropped_with_reason(tmp_path: Path) -> None:
    summary = run(tmp_path, [PreferencePairs(name="pairs", n=3, min_margin=100,
                                             judge=judge())],
                  ScriptedTestBackend(responder), rows=PROMPTS)
    assert summary["records"] == 0 and summary["steps"][1]["dropped"] == 3
    reasons = [d["reason"] for d in read(tmp_path, "dropped.jsonl")]
    margins = [r for r in reasons if r.startswith("margin ")]
    assert margins and all("< min_margin 100 (best " in r for r in margins)


def test_given_answers_and_scores_need_no_model(tmp_path: Path) -> None:
    rows = [{"instruction": "Q1", "answers": ["good", "", "bad", "meh"], "s": [9, 10, 1, 5]},
            {"instruction": "Q2", "answers": ["a", "b"], "s": [3, 3]},
            {"instruction": "Q3", "answers": ["only one"], "s": [1]}]
    backend = ScriptedTestBackend(responder)
    run(tmp_path, [PreferencePairs(name="pairs", responses="answers", score_column="s")],
        backend, rows=rows)
    assert backend.calls == 0
    [pair] = read(tmp_path, "data.jsonl")
    # The empty answer (score 10) is no candidate: best is "good", worst "bad".
    assert (pair["chosen"], pair["rejected"], pair["margin"]) == ("good", "bad", 8)
    assert pair["candidate_scores"] == [9, 1, 5]
    reasons = sorted(d["reason"] for d in read(tmp_path, "dropped.jsonl"))
    assert reasons == ["fewer than 2 non-empty answers (1)", "tie: all 2 scored answers have "
                       "total 3"]


def test_unscorable_answers_are_left_out_and_too_few_is_a_failure(tmp_path: Path) -> None:
    rows = [{"instruction": "Q1", "answers": ["detail detail", "unscorable", "plain"]},
            {"instruction": "Q2", "answers": ["unscorable 1", "unscorable 2", "fine"]}]
    backend = ScriptedTestBackend(responder)
    summary = run(tmp_path, [PreferencePairs(name="pairs", responses="answers", judge=judge())],
                  backend, rows=rows)
    [pair] = read(tmp_path, "data.jsonl")
    assert (pair["chosen"], pair["rejected"]) == ("detail detail", "plain")
    assert pair["candidate_scores"] == [12, None, 4] and pair["_meta"]["unscored"] == 1
    [failed] = read(tmp_path, "failed.jsonl")
    assert failed["step"] == "pairs" and failed["error_class"] == "ValueError"
    assert failed["message"].startswith("only 1 of 3 answers could be scored: answer 0: "
                                        "StructuredOutputError")
    assert summary["steps"][1]["failed"] == 1
    # An unscorable answer takes 3 calls (two re-asks); every call is counted on the step.
    assert summary["steps"][1]["llm_calls"] == backend.calls == (2 + 3) + (3 + 3 + 1)
