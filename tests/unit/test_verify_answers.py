"""The shared answer reader: every form reasoning models write, for every logic task (its own
gold answer rendered in each form), for math, SQL and code; hedged answers are wrong."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from synthloom.verify.answers import (
    code_block,
    extract,
    extract_final,
    fenced_blocks,
    is_hedged,
    strip_reasoning,
)
from synthloom.verify.logic import TASKS, make_item, verify_answer
from synthloom.verify.math_answers import answers_equal, extract_answer


def _rows(task: str, gold: str) -> str:
    """The gold answer one row / group per line, as a model writes a grid or a table."""
    if task == "sudoku":
        return gold.replace(" ", "\n")
    return gold.replace("; ", "\n")


#: name -> (task, gold) -> a whole reply stating the gold answer in that form.
FORMS: dict[str, Callable[[str, str], str]] = {
    "answer_line": lambda t, g: f"Let me work through it.\nSome steps.\n\nAnswer: {g}",
    "answer_line_multiline": lambda t, g: f"Work.\n\nAnswer:\n{_rows(t, g)}",
    "answer_line_rows_from_marker": lambda t, g: f"Work.\nAnswer: {_rows(t, g)}\n\nDone!",
    "answer_after_blank_line": lambda t, g: f"Work.\nFinal answer:\n\n{_rows(t, g)}\n",
    "bold_final_answer": lambda t, g: f"Work.\n**Final Answer:** {g}",
    "the_answer_is": lambda t, g: f"Having checked every step, the answer is {g}.",
    "boxed": lambda t, g: f"Therefore the result is $\\boxed{{{g}}}$.",
    "answer_line_boxed": lambda t, g: f"Work.\nAnswer: \\boxed{{{g}}}",
    "answer_tag": lambda t, g: f"I reason first.\n<answer>\n{_rows(t, g)}\n</answer>",
    "fence_plain": lambda t, g: f"The solution:\n```\n{_rows(t, g)}\n```",
    "fence_text": lambda t, g: f"```text\n{g}\n```\nThat is my answer.",
    "answer_line_fence": lambda t, g: f"Work.\nAnswer:\n```\n{_rows(t, g)}\n```",
    "json_final": lambda t, g: f"My answer follows.\n{json.dumps({'answer': g})}",
    "json_fence": lambda t, g: f"```json\n{json.dumps({'final_answer': g})}\n```",
    "json_rows": lambda t, g: json.dumps({"answer": _rows(t, g).split("\n")}),
    "think_then_answer": lambda t, g: f"<think>Maybe it is 7.\nAnswer: 7</think>\nAnswer: {g}",
    "bare": lambda t, g: g,
    "bare_rows": lambda t, g: _rows(t, g),
}

ITEMS = [(name, level) for name in TASKS for level in (1, 3)]


@pytest.mark.parametrize("form", list(FORMS))
@pytest.mark.parametrize("task, level", ITEMS)
def test_every_task_reads_every_form(task: str, level: int, form: str) -> None:
    item = make_item(task, level, 7)
    reply = FORMS[form](task, item["answer"])
    assert verify_answer(item, reply) is None, (reply, extract_final(reply))


@pytest.mark.parametrize("task", list(TASKS))
def test_hedged_and_hidden_answers_are_wrong(task: str) -> None:
    item = make_item(task, 1, 7)
    gold = item["answer"]
    for reply in (f"Answer: {gold} or maybe 7", f"Answer: probably {gold}",
                  f"Answer: {gold}?", f"<think>Answer: {gold}</think>",
                  f"<think>I know it: Answer: {gold}\n", "Answer:", ""):
        assert verify_answer(item, reply) is not None, reply


def test_the_sudoku_of_the_issue_reads_as_81_digits() -> None:
    item = make_item("sudoku", 4, 3)
    assert item["size"] == 9
    rows = item["answer"].split()
    assert verify_answer(item, "I filled it in.\nAnswer:\n" + "\n".join(rows)) is None
    assert verify_answer(item, "Answer: " + "\n".join(rows)) is None
    assert "expected 81 digits, got 72" in verify_answer(
        item, "Answer:\n" + "\n".join(rows[:8]))


@pytest.mark.parametrize("text, value, rule", [
    ("<answer>1</answer> then \\boxed{2}", "1", "answer_tag"),
    ("\\boxed{2}\nAnswer: 3", "2", "boxed"),
    ("Answer: 3\n```\n4\n```", "3", "stated"),
    ("```python\nx = 1\n```\n```\n4\n```", "4", "fence"),
    ('blah {"x": 1}\nmore {"answer": "5"}', "5", "json"),
    ('blah\n\n{"answer": {"Al": "knight", "Bo": "knave"}}', "Al: knight, Bo: knave", "json"),
    ("work\n\nlast\nparagraph", "last\nparagraph", "last_paragraph"),
    (r"so \boxed{\frac{\sqrt{3}}{2}} units", r"\frac{\sqrt{3}}{2}", "boxed"),
    ("first \\boxed{1}, then \\boxed{ {2}^{3} }", "{2}^{3}", "boxed"),
    ("She pays\n#### 1,250", "1,250", "stated"),
    ("Answer: 1\nlater, the answer is 2. Fine.", "2", "stated"),
    ("<think>\\boxed{9}</think>\n<answer>8</answer>", "8", "answer_tag"),
])
def test_rule_order(text: str, value: str, rule: str) -> None:
    found = extract(text)
    assert found is not None and (found.value, found.rule) == (value, rule)


def test_reasoning_is_never_read() -> None:
    assert strip_reasoning("<think>a</think>b<think>c</think>d") == "bd"
    assert strip_reasoning("only the tail</think> kept") == " kept"
    assert strip_reasoning("answer soon <think>cut off") == "answer soon "
    assert extract("<think>Answer: 5") is None
    assert extract_final("<reasoning>Answer: 5</reasoning>") is None


def test_hedges() -> None:
    for hedged in ("4 or maybe 7", "4 or 7", "probably 4", "I think 4", "4?", "maybe x=2"):
        assert is_hedged(hedged), hedged
    for plain in ("4", "Alice: knight, Bob: knave", "ONE OR TWO MAYBE", "x = 2, 3",
                  "coffee, hiking, red"):
        assert not is_hedged(plain), plain


def test_math_reads_tags_boxes_and_stated_answers_but_not_code() -> None:
    assert extract_answer("<answer>\\frac{1}{2}</answer>") == "\\frac{1}{2}"
    assert extract_answer("The answer is 12.\nI double-checked it.") == "12"
    assert extract_answer("Answer: 12\nbecause 3 * 4 = 12 and x", last_number=False) == "12"
    assert extract_answer("<think>the answer is 3</think>so 5 apples") == "5"
    assert extract_answer("```python\nprint(7)\n```", last_number=False) is None
    assert answers_equal(extract_answer("The answer is 4."), "4")
    assert not answers_equal(extract_answer("The answer is 4 or maybe 7."), "4")
    assert not answers_equal("4 or 7", "4")


def test_code_and_sql_blocks() -> None:
    reply = "Plan.\n```python\ndef f():\n    return 1\n```\nTests:\n```py\nassert f() == 1\n```"
    assert code_block(reply) == "def f():\n    return 1"
    assert code_block(reply, which="last") == "assert f() == 1"
    assert code_block("```sql\nSELECT 1;\n```", languages=("sql",)) == "SELECT 1;"
    assert code_block("```sql\nSELECT 1;\n```") is None  # not Python
    assert code_block("<think>```python\nbad()\n```</think>```python\ngood()\n```") == "good()"
    assert code_block("<answer>\n```python\nx = 2\n```\n</answer>") == "x = 2"
    assert code_block("no code at all") is None
    unclosed = fenced_blocks("```python\nprint(1)\n")
    assert [(b.language, b.content) for b in unclosed] == [("python", "print(1)")]
