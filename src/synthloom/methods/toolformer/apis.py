"""The three APIs of the recipe: a calculator, a calendar and BM25 search over the user's corpus.

Each turns the call's input text into a short result text (the paper's ``r``); a call that
cannot run raises :class:`ApiError` (the candidate is rejected at the execution stage).
"""

from __future__ import annotations

import ast
import calendar as _calendar
import datetime as _dt
import operator
import re

#: Tool name as written in the text ("[Calculator(...)]") by the recipe's tool key.
TOOL_NAMES = {"calculator": "Calculator", "calendar": "Calendar", "search": "Search"}
TOOLS = tuple(TOOL_NAMES)


class ApiError(Exception):
    """The call's input is not something the API can run."""


_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
           ast.Div: operator.truediv}


def _eval(node: ast.AST) -> float:
    if isinstance(node, ast.Expression):
        return _eval(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float) \
            and not isinstance(node.value, bool):
        return float(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        value = _eval(node.operand)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        return _BINARY[type(node.op)](_eval(node.left), _eval(node.right))
    raise ApiError(f"not arithmetic: {ast.dump(node)[:60]}")


def calculator(expression: str) -> str:
    """The four operations, rounded to two decimals (the paper's calculator). Thousands
    separators ("1,400") and ``x`` for times are read as the texts write them."""
    text = expression.strip().replace("×", "*").replace("x", "*").replace("÷", "/")
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text)
    if not text or len(text) > 80 or not re.fullmatch(r"[\d\s.+\-*/()]+", text):
        raise ApiError(f"not an arithmetic expression: {expression!r}")
    if not re.search(r"\d\s*[+\-*/]\s*[\d(]", text):
        raise ApiError(f"no operation in {expression!r}")
    try:
        value = _eval(ast.parse(text, mode="eval"))
    except (SyntaxError, ZeroDivisionError) as exc:
        raise ApiError(f"{type(exc).__name__}: {expression!r}") from None
    value = round(value, 2)
    return str(int(value)) if value == int(value) else str(value)


def calendar(today: str | None) -> str:
    """"Today is Monday, January 30, 2023." for the text's date (ISO ``YYYY-MM-DD``): the
    paper used the date the web page was written, we read it from the record or the config."""
    if not today:
        raise ApiError("no date for this text (give a date column or the step's today)")
    try:
        day = _dt.date.fromisoformat(str(today)[:10])
    except ValueError:
        raise ApiError(f"not an ISO date: {today!r}") from None
    return (f"Today is {_calendar.day_name[day.weekday()]}, "
            f"{_calendar.month_name[day.month]} {day.day}, {day.year}.")


def call_text(tool: str, argument: str, result: str | None = None, arrow: str = " → ") -> str:
    """``[Calculator(400 / 1400) → 0.29]``, or without ``result`` ``[Calculator(400 / 1400)]``
    (the paper's e(c, r) and e(c, ε) with "[", "]" and "→" for <API>, </API> and ->)."""
    head = f"[{TOOL_NAMES[tool]}({argument})"
    return f"{head}{arrow}{result}]" if result is not None else f"{head}]"


def parse_argument(tool: str, sampled: str) -> str:
    """The call's input from the text the model wrote after ``[Tool(``: up to ``)``, quotes
    stripped; empty when the model wrote nothing usable."""
    arg = re.split(r"\)|\]|\n", sampled, maxsplit=1)[0].strip()
    if tool == "search":
        arg = arg.strip("\"'“”").strip()
    return arg[:120]
