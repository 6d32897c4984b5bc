"""RL exports (verl, grpo, verifiers) and the reward core they call: ground truths per kind,
rows a verifier does not cover skipped with the reason, scores 1/0 (the fresh-process check of
the generated modules is tests/integration/test_rl_reward_export.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from synthloom.core.errors import SynthloomError
from synthloom.export.formats import ExportOptions, export
from synthloom.export.registry import formats
from synthloom.verify.logic import make_item
from synthloom.verify.rewards import completion_text, ground_truth, score


def _run_dir(tmp_path: Path, records: list[dict]) -> Path:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (run_dir / "summary.json").write_text(json.dumps({"recipe": "rl-test", "status": "ok"}))
    return run_dir


def test_the_formats_are_registered() -> None:
    known = formats()
    assert {"verl", "grpo", "verifiers"} <= set(known)
    assert known["verl"].file == "train.parquet"


def test_ground_truth_per_kind() -> None:
    item = {**make_item("sudoku", 1, 3), "verified": True, "_meta": {"id": "x"}}
    source, truth = ground_truth(item)
    assert source == "synthloom/logic/sudoku" and truth["kind"] == "logic"
    assert "question" not in truth["item"] and "verified" not in truth["item"]
    assert ground_truth({"question": "2+2?", "gold": "4"}) == \
        ("synthloom/math", {"kind": "math", "answer": "4"})
    with pytest.raises(ValueError, match="no verifier"):
        ground_truth({"instruction": "write a poem", "response": "roses"})


def test_math_reward() -> None:
    truth = json.dumps({"kind": "math", "answer": "1/2"})
    assert score("synthloom/math", r"so \boxed{\frac{1}{2}}", truth) == 1.0
    assert score("synthloom/math", "<think>the answer is 0.5</think>The answer is 3.",
                 truth) == 0.0
    assert score("synthloom/math", "The answer is 0.5 or maybe 3.", truth) == 0.0
    assert score("synthloom/math", "I computed 0.5", truth) == 0.0  # nothing stated
    assert score("synthloom/math", "Answer: 0.5", "not json") == 0.0
    assert completion_text([{"role": "assistant", "content": "hi"}]) == "hi"


def test_export_skips_records_without_a_verifier(tmp_path: Path) -> None:
    puzzle = make_item("game24", 2, 5)
    run_dir = _run_dir(tmp_path, [puzzle, {"question": "Name a color.", "response": "red"},
                                  {"question": "What is 6*7?", "answer": "42"}])
    result = export(run_dir, tmp_path / "out", ExportOptions(format="grpo"))
    assert result.rows == 2 and sum(result.skipped.values()) == 1
    assert "no verifier" in next(iter(result.skipped))
    rows = [json.loads(line) for line in (tmp_path / "out" / "train.jsonl").open()]
    assert [r["data_source"] for r in rows] == ["synthloom/logic/game24", "synthloom/math"]
    assert rows[0]["prompt"] == [{"role": "user", "content": puzzle["question"]}]
    assert (tmp_path / "out" / "grpo_reward.py").exists()


def test_a_file_no_verifier_covers_is_refused(tmp_path: Path) -> None:
    run_dir = _run_dir(tmp_path, [{"instruction": "Name a color.", "response": "red"}])
    with pytest.raises(SynthloomError, match="no record has a verifier"):
        export(run_dir, tmp_path / "out", ExportOptions(format="verl"))
