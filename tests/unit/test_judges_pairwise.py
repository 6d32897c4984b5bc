"""Pairwise judge with position swapping, on the ScriptedTestBackend (a test double): a verdict
only when both orders agree; a judge that always prefers the first answer is caught."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from synthloom.quality.judges import JudgePairwise, combine_verdicts
from tests.support.scripted_backend import ScriptedTestBackend, last_user_text
from tests.unit.test_judges_rubric import read, run

ROWS = [
    {"instruction": "Name a prime", "response_a": "7 is prime because its only divisors are 1 "
                    "and 7.", "response_b": "7"},
    {"instruction": "Capital of France?", "response_a": "Paris",
     "response_b": "Paris is the capital of France."},
    {"instruction": "Say hi", "response_a": "hi", "response_b": "yo"},
]


def answers(text: str) -> tuple[str, str]:
    found = re.findall(r'Answer (A|B):\n"""\n(.*?)\n"""', text, re.DOTALL)
    return dict(found)["A"], dict(found)["B"]


def prefers_longer(request, seed) -> str:
    a, b = answers(last_user_text(request))
    verdict = "A" if len(a) > len(b) + 2 else "B" if len(b) > len(a) + 2 else "tie"
    return json.dumps({"analysis": f"A has {len(a)} chars, B has {len(b)}", "verdict": verdict})


@pytest.mark.parametrize(("first", "swapped", "winner"), [
    ("A", "B", "a"), ("B", "A", "b"), ("tie", "tie", "tie"),
    ("A", "A", "inconsistent"), ("B", "B", "inconsistent"), ("A", "tie", "inconsistent"),
    ("tie", "B", "inconsistent"),
])
def test_combine_verdicts(first: str, swapped: str, winner: str) -> None:
    assert combine_verdicts(first, swapped) == winner


def test_consistent_judge_gives_verdicts_in_both_orders(tmp_path: Path) -> None:
    backend = ScriptedTestBackend(prefers_longer)
    summary = run(tmp_path, [JudgePairwise(name="pair")], backend, rows=ROWS)
    rows = read(tmp_path, "data.jsonl")
    assert [r["pairwise"]["winner"] for r in rows] == ["a", "b", "tie"]
    first = rows[0]["pairwise"]
    assert first["consistent"] is True
    assert [o["order"] for o in first["orders"]] == ["ab", "ba"]
    assert [o["verdict"] for o in first["orders"]] == ["A", "B"]
    assert first["orders"][0]["analysis"] == f"A has {len(ROWS[0]['response_a'])} chars, B has 1"
    # Two calls per record: both orders were really asked.
    assert backend.calls == 6 and summary["steps"][1]["llm_calls"] == 6
    prompts = list(backend.prompts)
    assert any(answers(p) == (ROWS[0]["response_b"], ROWS[0]["response_a"]) for p in prompts)


def test_position_biased_judge_is_inconsistent_or_dropped(tmp_path: Path) -> None:
    def always_first(request, seed):
        return json.dumps({"analysis": "the first one", "verdict": "A"})

    run(tmp_path, [JudgePairwise(name="pair")], ScriptedTestBackend(always_first), rows=ROWS)
    rows = read(tmp_path, "data.jsonl")
    assert [r["pairwise"]["winner"] for r in rows] == ["inconsistent"] * 3
    assert all(r["pairwise"]["consistent"] is False for r in rows)

    summary = run(tmp_path / "drop", [JudgePairwise(name="pair", drop_inconsistent=True)],
                  ScriptedTestBackend(always_first), rows=ROWS)
    assert summary["steps"][1]["dropped"] == 3 and summary["records"] == 0
    reasons = {d["reason"] for d in read(tmp_path / "drop", "dropped.jsonl")}
    assert reasons == {"inconsistent pairwise verdicts: A in order ab, A in order ba"}


def test_invalid_verdict_is_a_counted_failure(tmp_path: Path) -> None:
    def bad(request, seed):
        return json.dumps({"verdict": "C"})

    summary = run(tmp_path, [JudgePairwise(name="pair", rationale=False)],
                  ScriptedTestBackend(bad), rows=ROWS[:1])
    assert summary["steps"][1]["failed"] == 1
    [failed] = read(tmp_path, "failed.jsonl")
    assert failed["error_class"] == "StructuredOutputError" and "'C' is not one of" in \
        failed["message"]
