"""SynLogic's ``math_path``, after games/tasks/math_path: an equation over one-digit numbers
and ``+ - * / %`` whose left-side digits are partly hidden as ``?``; restore them.

Any restoration that makes the equation true counts (the authors' verifier). It must keep the
shown digits, the operators and - stricter than the authors, who compare only digits and
operators - the parentheses where they were. The equation is evaluated exactly as Python's
``eval`` would (true division, ``%`` with the divisor's sign), with fractions instead of
floats.
"""

from __future__ import annotations

import random
import re
from fractions import Fraction
from typing import Any

from synthloom.verify.logic.base import LogicTask, register_task

_TOKEN = re.compile(r"\d+|[-+*/%()=]")


class _Bad(ValueError):
    pass


def evaluate(tokens: list[str], integer_division: bool = False) -> Fraction:
    """Value of ``tokens`` (an expression); ``integer_division`` = the generator's rule that
    every division is exact."""
    pos = 0

    def factor() -> Fraction:
        nonlocal pos
        if pos >= len(tokens):
            raise _Bad("unexpected end")
        tok = tokens[pos]
        pos += 1
        if tok == "(":
            value = expr()
            if pos >= len(tokens) or tokens[pos] != ")":
                raise _Bad("missing )")
            pos += 1
            return value
        if tok.isdigit():
            return Fraction(int(tok))
        raise _Bad(f"unexpected {tok!r}")

    def term() -> Fraction:
        nonlocal pos
        value = factor()
        while pos < len(tokens) and tokens[pos] in "*/%":
            op = tokens[pos]
            pos += 1
            right = factor()
            if op == "*":
                value *= right
            elif right == 0:
                raise _Bad("division by zero")
            elif op == "/":
                if integer_division and value % right:
                    raise _Bad("inexact division")
                value /= right
            else:
                value %= right
        return value

    def expr() -> Fraction:
        nonlocal pos
        value = term()
        while pos < len(tokens) and tokens[pos] in "+-":
            op = tokens[pos]
            pos += 1
            value = value + term() if op == "+" else value - term()
        return value

    value = expr()
    if pos != len(tokens):
        raise _Bad("trailing tokens")
    return value


def _wrap(rng: random.Random, tokens: list[str]) -> list[str]:
    """The authors' ``attempt_add_parentheses``: bracket one ``digit op digit``."""
    spots = [i for i in range(1, len(tokens) - 1) if tokens[i] in "+-*/%"
             and tokens[i - 1].isdigit() and tokens[i + 1].isdigit()]
    if not spots:
        return tokens
    i = rng.choice(spots)
    return [*tokens[:i - 1], "(", *tokens[i - 1:i + 2], ")", *tokens[i + 2:]]


def _show(tokens: list[str]) -> str:
    return " ".join(tokens).replace("( ", "(").replace(" )", ")")


@register_task
class MathPath(LogicTask):
    name = "math_path"
    synlogic = "games/tasks/math_path/scripts/math_path.py"
    description = "restore the hidden digits (?) of an arithmetic equation"
    answer_format = "the whole equation with every ? replaced by a digit, e.g. 2 + 4 * 3 - 4 = 10"
    # n operators (the authors require > 2); x_prob: percent of digits hidden.
    levels = {1: {"n": 3, "x_prob": 40}, 2: {"n": 4, "x_prob": 60}, 3: {"n": 5, "x_prob": 80},
              4: {"n": 6, "x_prob": 100}, 5: {"n": 8, "x_prob": 100}}

    def generate(self, rng: random.Random, n: int = 4, x_prob: int = 100) -> dict[str, Any]:
        if n <= 2 or not 0 < x_prob <= 100:
            raise ValueError("n must be > 2 and x_prob in 1-100")
        while True:
            tokens = [str(rng.randint(0, 9))]
            for _ in range(n):
                tokens += [rng.choice("+-*/%"), str(rng.randint(0, 9))]
            for _ in range(rng.randint(0, 2)):
                tokens = _wrap(rng, tokens)
            try:
                value = evaluate(tokens, integer_division=True)
            except _Bad:
                continue
            break
        shown = ["?" if t.isdigit() and rng.random() <= x_prob / 100 else t for t in tokens]
        query = f"{''.join(shown)} = {value}"
        question = (f"Here is an operation expression {query}, and the numbers on the left "
                    "side of the equal sign are missing, presented as '?'. Each '?' means a "
                    "number between 0 and 9. Please restore the expression.")
        return {"question": question, "answer": f"{_show(tokens)} = {value}",
                "query": query}

    def verify(self, item: dict[str, Any], candidate: str) -> str | None:
        text = candidate.strip().removeprefix("[[").removesuffix("]]")
        if text.count("=") != 1:
            return "not one equation"
        left_text, right_text = text.split("=")
        q_left, q_right = str(item["query"]).split("=")
        if re.sub(r"\s+", "", right_text) != q_right.strip():
            return "changes the right side"
        got = _TOKEN.findall(left_text)
        if "".join(got) != re.sub(r"\s+", "", left_text):
            return "not an expression of digits and + - * / % ( )"
        query = re.findall(r"\?|\d+|[-+*/%()]", q_left)
        if len(got) != len(query):
            return "not the shape of the given equation"
        for q, g in zip(query, got, strict=True):
            if q == "?" and not (len(g) == 1 and g.isdigit()):
                return f"{g!r} is not one digit"
            if q != "?" and q != g:
                return "changes a shown digit, operator or parenthesis"
        try:
            left = evaluate(got)
        except _Bad as exc:
            return f"cannot evaluate: {exc}"
        return None if left == int(q_right) else "the equation does not hold"
