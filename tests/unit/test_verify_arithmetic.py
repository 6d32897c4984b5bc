"""The tool-only arithmetic generator, its scratchpads, and the verify_arithmetic step."""

from __future__ import annotations

import ast
import json
import random
import re
from fractions import Fraction
from pathlib import Path

import pytest

from synthloom.api import run
from synthloom.core.recipe import Recipe
from synthloom.methods.math.arithmetic import LEVELS, make_item, parse_difficulty
from synthloom.methods.math.scratchpad import fmt, work
from synthloom.verify.arithmetic import check_item
from synthloom.verify.expressions import ExpressionError, eval_infix, eval_python, parse_exact

ANSWER_FORM = re.compile(r"-?\d+(\.\d+)?|-?\d+/\d+")


def items(n: int, level: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    return [make_item(rng, level) for _ in range(n)]


@pytest.mark.parametrize("level", sorted(LEVELS))
def test_expression_question_and_answer_agree(level: int) -> None:
    for item in items(400, level):
        # Plain Python eval with Fraction in scope: a route independent of the verifier.
        value = eval(item["expression"], {"__builtins__": {}, "Fraction": Fraction})  # noqa: S307
        assert Fraction(value) == Fraction(item["answer"]), item
        assert ANSWER_FORM.fullmatch(item["answer"]), item["answer"]
        assert check_item(item) is None
        assert item["difficulty"] == level


def test_difficulty_knobs() -> None:
    def numbers(question: str) -> list[str]:
        return re.findall(r"\d+(?:\.\d+)?(?:/\d+)?", question)

    easy = items(300, 1)
    assert all(set(re.findall(r"[×÷]", i["question"])) == set() for i in easy)
    assert all(len(n) <= 2 for i in easy for n in numbers(i["question"]))
    assert all(Fraction(i["answer"]) >= 0 for i in easy)
    assert not any("÷" in i["question"] for i in items(300, 2))
    assert any("÷" in i["question"] for i in items(300, 3))
    hard = items(300, 5)
    assert any("(-" in i["question"] for i in hard)
    assert any("/" in i["answer"] for i in hard) and any("." in i["answer"] for i in hard)
    depth = [max(len(re.findall(r"Step \d+", i["scratchpad"])) for i in items(100, lv))
             for lv in sorted(LEVELS)]
    assert depth[0] == 1 and depth[-1] > depth[1]


def test_deterministic_for_a_seed() -> None:
    assert items(50, 4, seed=7) == items(50, 4, seed=7)
    assert items(50, 4, seed=7) != items(50, 4, seed=8)


def test_no_division_by_zero_ever() -> None:
    for item in items(2000, 5) + items(2000, 4):
        tree = ast.parse(item["expression"], mode="eval")
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and len(node.args) == 2:
                assert eval_python(ast.unparse(node.args[1])) != 0


def test_every_scratchpad_step_is_right() -> None:
    for level in sorted(LEVELS):
        for item in items(300, level, seed=3):
            head = None
            steps = 0
            for line in item["scratchpad"].splitlines():
                if line.startswith("Step "):
                    head = line.split(": ", 1)[1]
                elif line.startswith("  = "):
                    assert eval_infix(head) == parse_exact(line[4:]), (head, line)
                    steps += 1
            assert steps >= 1
            assert item["scratchpad"].splitlines()[-1] == f"Answer: {item['answer']}"


def test_column_methods() -> None:
    lines, result = work("+", 478, 56)
    assert result == 534
    assert lines[1:6] == ["carry  11 ", "       478", "    +   56", "      ----", "       534"]
    lines, result = work("-", 503, 78)
    assert result == 425 and lines[1] == "borrow bb " and lines[-2].strip() == "425"
    lines, result = work("*", Fraction("1.5"), 23)
    assert result == Fraction("34.5")
    assert any("put back 1 decimal place" in ln for ln in lines)
    assert any("(15 × 2, shifted 1)" in ln for ln in lines)
    lines, result = work("/", 1692, 12)
    assert result == 141 and "  quotient 141" in lines
    lines, result = work("/", 10, 4)
    assert result == Fraction(5, 2) and any("bring down 0" in ln for ln in lines)
    lines, result = work("/", 7, 3)
    assert result == Fraction(7, 3) and lines[-1] == "= 7/3"
    lines, result = work("+", Fraction(1, 3), Fraction(1, 6))
    assert result == Fraction(1, 2) and any("divide top and bottom by 3" in ln for ln in lines)
    assert (fmt(Fraction(-7, 4)), fmt(Fraction(1, 3)), fmt(5)) == ("-1.75", "1/3", "5")


def test_verifier_catches_wrong_items() -> None:
    good = items(1, 3, seed=11)[0]
    value = Fraction(good["answer"])
    assert check_item(good) is None
    assert "expression evaluates" in check_item({**good, "answer": fmt(value + 1)})
    assert "question evaluates" in check_item({**good, "question": "What is 1 + 1?"})
    assert "scratchpad" in check_item({**good, "scratchpad": "Answer: 0"})
    assert "cannot check" in check_item({**good, "expression": "__import__('os')"})


@pytest.mark.parametrize("bad", ["__import__('os').system('true')", "(1).real", "2 ** 10",
                                 "1.5 + 1", "Fraction(1, 0)", "[1, 2]", "x + 1"])
def test_python_evaluator_refuses(bad: str) -> None:
    with pytest.raises(ExpressionError):
        eval_python(bad)


def test_infix_evaluator() -> None:
    assert eval_infix("12 × (3.5 - (3/4)) ÷ (-2)") == Fraction(-33, 2)
    assert eval_infix("0.1 + 0.2") == Fraction(3, 10)  # exact, not binary floats
    with pytest.raises(ExpressionError):
        eval_infix("2 ** 3")
    with pytest.raises(ExpressionError):
        eval_infix("1 ÷ (2 - 2)")


def test_parse_difficulty() -> None:
    assert parse_difficulty("mix") == [1, 2, 3, 4, 5]
    assert parse_difficulty("2-4") == [2, 3, 4] and parse_difficulty([1, 5]) == [1, 5]
    with pytest.raises(ValueError):
        parse_difficulty(9)


def test_recipe_runs_through_the_engine(tmp_path: Path) -> None:
    recipe = Recipe.load("arithmetic", {"count": "300", "difficulty": "2-4", "seed": "5"})
    summary = run(recipe, tmp_path / "out").to_json()
    source, verify = summary["steps"]
    assert source["out"] == 300 and verify["in"] == verify["out"] == 300
    assert summary["llm_calls"] == 0 and summary["failed"] == summary["dropped"] == 0
    rows = [json.loads(line) for line in (tmp_path / "out" / "data.jsonl").read_text()
            .splitlines()]
    assert len(rows) == 300 and all(r["verified"] is True for r in rows)
    assert {r["difficulty"] for r in rows} == {2, 3, 4}
    assert len({r["question"] for r in rows}) == 300  # distinct questions
    assert [r["index"] for r in rows] == list(range(300))
    again = run(Recipe.load("arithmetic", {"count": "300", "difficulty": "2-4", "seed": "5"}),
                tmp_path / "out").to_json()
    assert again["steps"][1]["cached"] == 300
    ids = [json.loads(line)["_meta"]["id"] for line in
           (tmp_path / "out" / "data.jsonl").read_text().splitlines()]
    assert ids == [r["_meta"]["id"] for r in rows]
