"""SynLogic's ``boolean_expressions``, after games/tasks/boolean_expressions: options built of
``not``/``and``/``or`` over arithmetic comparisons, facts and True/False; name every true one.

The authors ``eval`` the text after replacing facts and worded operators; here each node is
evaluated as it is built (exact fractions for their true division), so nothing is ``eval``-ed.
Two departures, both to keep the data true: "The Great Wall of China is visible from space"
is not among the true facts (it is a myth), and the comparison between two sub-expressions
uses only comparison words (the authors' list also holds "plus", "times", ... there, which
turns the comparison into a number whose truth value is an accident of Python).
"""

from __future__ import annotations

import operator
import random
import re
from fractions import Fraction
from typing import Any

from synthloom.verify.logic.base import LogicTask, register_task

TRUE_FACTS = [
    "The capital of France is Paris.", "The capital of Japan is Tokyo.",
    "The capital of Nigeria is Abuja.", "Water boils at 100 degrees Celsius at sea level.",
    "The Earth rotates around the Sun.", "The chemical symbol for gold is Au.",
    "Oxygen is necessary for human survival.", "The human body has 206 bones.",
    "Mount Everest is the tallest mountain on Earth.", "Sound cannot travel through a vacuum.",
    "Diamonds are made of carbon.", "Antarctica is the coldest continent.",
    "A day on Earth is 24 hours.", "Humans have five fingers on each hand.",
]
FALSE_FACTS = [
    "The capital of India is Mumbai.", "The capital of Brazil is Rio de Janeiro.",
    "The capital of USA is New York.", "The Sun revolves around the Earth.",
    "Humans have three lungs.", "Pi equals exactly 3.", "Gold is a liquid at room temperature.",
    "The Great Wall of China was built in one year.", "Spiders are insects.",
    "Mars is the closest planet to the Sun.", "Sharks are mammals.", "Penguins can fly.",
    "The Sahara Desert is in Australia.", "Electricity flows faster than light.",
    "The human body has 150 bones.",
]
COMPARE = {"is greater than": operator.gt, "is less than": operator.lt,
           "is greater than or equal to": operator.ge, "is less than or equal to": operator.le,
           "is equal to": operator.eq, "equals": operator.eq, "is not equal to": operator.ne,
           "is not": operator.ne}
_ARITH = {"+": operator.add, "-": operator.sub, "*": operator.mul}
LABELS = "ABCDEFGH"


def _arith(rng: random.Random) -> tuple[str, Fraction]:
    """The authors' ``generate_arithmetic_expr`` (their worded operators are never used)."""
    a, b = rng.randint(-12, 12), rng.randint(-12, 12)
    if rng.random() < 0.3:
        c = rng.choice([v for v in range(-9, 10) if v])
        return f"{a} - ({b} / {c})", a - Fraction(b, c)
    if rng.random() < 0.6:
        c, d = rng.randint(-9, 9), rng.randint(-9, 9)
        op = rng.choice("+-*")
        # Python precedence: * binds tighter than the middle operator.
        if op == "*":
            return f"{a} * {b} * {c} * {d}", Fraction(a * b * c * d)
        return f"{a} * {b} {op} {c} * {d}", Fraction(_ARITH[op](a * b, c * d))
    op = rng.choice("+-*")
    return f"{a} {op} {b}", Fraction(_ARITH[op](a, b))


def _leaf(rng: random.Random) -> tuple[str, bool]:
    choice = rng.random()
    if choice < 0.4:
        (left, lv), (right, rv) = _arith(rng), _arith(rng)
        word = rng.choice(list(COMPARE))
        return f"({left}) {word} ({right})", COMPARE[word](lv, rv)
    if choice < 0.7:
        fact = rng.choice(TRUE_FACTS if rng.random() < 0.5 else FALSE_FACTS)
        return fact, fact in TRUE_FACTS
    value = rng.random() < 0.5
    return str(value), value


class _TooLong(Exception):
    pass


def expression(rng: random.Random, depth: int, limit: int = 10**9) -> tuple[str, bool]:
    """The authors' ``generate_boolean_expr``: text and truth value. Raises ``_TooLong`` as
    soon as the text passes ``limit`` characters (the caller redraws; no need to finish)."""
    if depth <= 0 or (depth <= 2 and rng.random() < 0.3):
        return _leaf(rng)
    choice = rng.random()
    if choice < 0.35:
        text, value = expression(rng, depth - 1, limit)
        nots = rng.randint(1, 3)
        return f"{'not ' * nots}({text})", value if nots % 2 == 0 else not value
    word, combine = ("and", all) if choice < 0.7 else ("or", any)
    parts = [expression(rng, depth - 1, limit)]
    parts.append(expression(rng, depth - 1, limit - len(parts[0][0])))
    if rng.random() < 0.4 and depth > 2:
        parts.insert(1, expression(rng, depth - 2, limit))
    text = f" {word} ".join(f"({t})" for t, _ in parts)
    if len(text) > limit:
        raise _TooLong
    return text, combine(v for _, v in parts)


@register_task
class BooleanExpressions(LogicTask):
    name = "boolean_expressions"
    synlogic = "games/tasks/boolean_expressions/scripts/boolean_expressions.py"
    description = "pick every true option among nested boolean expressions"
    answer_format = "the letters of all true options, separated by commas, e.g. A,C"
    levels = {1: {"depth": 2, "options": 3}, 2: {"depth": 3, "options": 4},
              3: {"depth": 4, "options": 5}, 4: {"depth": 5, "options": 6},
              5: {"depth": 5, "options": 8}}

    def generate(self, rng: random.Random, depth: int = 4, options: int = 5) -> dict[str, Any]:
        if not 2 <= options <= len(LABELS):
            raise ValueError(f"options must be 2-{len(LABELS)}")
        while True:  # the authors redraw until at least one option is true
            exprs = []
            for _ in range(options):
                for attempt in range(6):  # the authors' cap: redraw one over 500 characters
                    try:  # (their sixth draw is kept whatever its length)
                        text, value = expression(rng, depth, 500 if attempt < 5 else 10**9)
                        break
                    except _TooLong:
                        continue
                exprs.append((text, value))
            if any(v for _, v in exprs):
                break
        lines = [f"{LABELS[i]}. {t}" for i, (t, _) in enumerate(exprs)]
        true = [LABELS[i] for i, (_, v) in enumerate(exprs) if v]
        question = ("Evaluate the following boolean expressions and select the ones that are "
                    "true:\n\n" + "\n".join(lines) + "\n\nWhich options are true? List all "
                    "option labels that are true, separated by commas.")
        return {"question": question, "answer": ",".join(true), "true_options": true,
                "options": len(exprs)}

    def verify(self, item: dict[str, Any], candidate: str) -> str | None:
        # Letters as the authors read them, but as whole tokens, so words do not count.
        tokens = re.findall(r"[A-Za-z]+", candidate)
        if any(len(t) != 1 for t in tokens):
            return "not a list of option letters"
        got = {t.upper() for t in tokens}
        want = set(item["true_options"])  # the generator's evaluation of the options it shows
        if got != want:
            return "wrong set of true options"
        return None
