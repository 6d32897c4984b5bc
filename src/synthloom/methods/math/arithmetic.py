"""Rule-generated arithmetic with exact answers and worked scratchpads (no LLM).

An item is a random expression tree whose size and number kinds follow a difficulty level;
values are :class:`fractions.Fraction` throughout, so answers are exact. Division by zero never
happens: a divisor that evaluates to zero is drawn again. Each item renders three ways: the
question (``12 × (3.5 - (3/4))``), a Python expression with the same value
(``12 * (Fraction('3.5') - Fraction(3, 4))``; evaluate with ``Fraction`` in scope), and a
step-by-step scratchpad (column addition and subtraction, long multiplication, long division).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from synthloom.methods.math.scratchpad import fmt, work
from synthloom.verify.levels import parse_levels

PREC = {"+": 1, "-": 1, "*": 2, "/": 2}
SHOWN = {"+": "+", "-": "-", "*": "×", "/": "÷"}


@dataclass(frozen=True)
class Level:
    ops: str
    depth: int  # nesting depth of the tree (1: a single operation)
    digits: int  # integers have 1..digits digits
    decimals: int = 0  # decimal operands have up to this many places (0: none)
    fractions: bool = False
    negatives: bool = False


LEVELS: dict[int, Level] = {
    1: Level(ops="+-", depth=1, digits=2),
    2: Level(ops="+-*", depth=2, digits=3),
    3: Level(ops="+-*/", depth=2, digits=3, decimals=1),
    4: Level(ops="+-*/", depth=3, digits=4, decimals=2, fractions=True),
    5: Level(ops="+-*/", depth=3, digits=5, decimals=3, fractions=True, negatives=True),
}

Value = int | Fraction  # ints where exact integers (much faster than Fraction)
Node = int | Fraction | tuple  # a leaf value, or (op, left, right, value)


def parse_difficulty(value: int | str | list[int]) -> list[int]:
    """``3``, ``"mix"`` (all levels in turn), ``"1-3"``, ``"1,4"`` or ``[1, 4]`` → levels."""
    return parse_levels(value, LEVELS)


class _Builder:
    def __init__(self, rng: random.Random, level: Level) -> None:
        self.rng = rng
        self.level = level

    def leaf(self) -> Value:
        rng, lv = self.rng, self.level
        roll = rng.random()
        if lv.fractions and roll < 0.2:
            den = rng.randint(2, 12)
            num = rng.randint(1, 3 * den)
            if num % den == 0:
                num += 1
            value: Value = Fraction(num, den)
        elif lv.decimals and roll < 0.45:
            places = rng.randint(1, lv.decimals)
            value = _norm(Fraction(rng.randint(1, 10 ** min(lv.digits, 3 + places) - 1),
                                   10 ** places))
        else:
            digits = rng.randint(1, lv.digits)
            value = rng.randint(10 ** (digits - 1) if digits > 1 else 0, 10 ** digits - 1)
        if lv.negatives and rng.random() < 0.2 and value:
            value = -value
        return value

    def tree(self, depth: int) -> Node:
        if depth == 0:
            return self.leaf()
        rng = self.rng
        op = rng.choice(self.level.ops)
        # One side carries the full depth; the other is shallower at random.
        deep, shallow = depth - 1, rng.randint(0, depth - 1)
        left_depth, right_depth = (deep, shallow) if rng.random() < 0.5 else (shallow, deep)
        left = self.tree(left_depth)
        right = self._divisor(left, right_depth) if op == "/" else self.tree(right_depth)
        a, b = value_of(left), value_of(right)
        if op == "-" and not self.level.negatives and a < b:
            left, right, a, b = right, left, b, a
        return (op, left, right, _apply(op, a, b))

    def _divisor(self, left: Node, depth: int) -> Node:
        dividend = value_of(left)
        if depth == 0 and dividend.denominator == 1 and self.rng.random() < 0.8:
            # Prefer a divisor that divides exactly: friendlier answers at low levels.
            n = abs(dividend.numerator)
            divisors = [d for d in range(2, 13) if n % d == 0]
            if divisors:
                return self.rng.choice(divisors)
        for _ in range(8):
            right = self.tree(depth)
            if value_of(right) != 0:
                return right
        return self.rng.randint(1, 9)


def value_of(node: Node) -> Value:
    return node[3] if type(node) is tuple else node  # type: ignore[return-value]


def _norm(value: Value) -> Value:
    """Integral Fractions become ints (the fast path everywhere downstream)."""
    if type(value) is Fraction and value.denominator == 1:
        return value.numerator
    return value


def _apply(op: str, a: Value, b: Value) -> Value:
    if op == "+":
        return _norm(a + b)
    if op == "-":
        return _norm(a - b)
    if op == "*":
        return _norm(a * b)
    return _norm(Fraction(a, b))


def _needs_parens(child: Node, parent_op: str, right: bool) -> bool:
    if type(child) is not tuple:
        return False
    if PREC[child[0]] < PREC[parent_op]:
        return True
    return right and PREC[child[0]] == PREC[parent_op] and parent_op in "-/"


def render_question(node: Node) -> str:
    if type(node) is not tuple:
        text = fmt(node)  # type: ignore[arg-type]
        return f"({text})" if text[0] == "-" or "/" in text else text
    op, left, right, _ = node
    lt, rt = render_question(left), render_question(right)
    if _needs_parens(left, op, False):
        lt = f"({lt})"
    if _needs_parens(right, op, True):
        rt = f"({rt})"
    return f"{lt} {SHOWN[op]} {rt}"


def render_python(node: Node) -> str:
    if type(node) is not tuple:
        if type(node) is int:
            return f"({node})" if node < 0 else str(node)
        text = fmt(node)  # type: ignore[arg-type]
        if "/" in text:
            return f"Fraction({node.numerator}, {node.denominator})"  # type: ignore[union-attr]
        return f"Fraction('{text}')"
    op, left, right, _ = node
    if op == "/":
        # Fraction(a, b) divides exactly whatever a and b are (int or Fraction).
        return f"Fraction({render_python(left)}, {render_python(right)})"
    lt, rt = render_python(left), render_python(right)
    if _needs_parens(left, op, False):
        lt = f"({lt})"
    if _needs_parens(right, op, True):
        rt = f"({rt})"
    return f"{lt} {op} {rt}"


def scratchpad(node: Node) -> str:
    lines: list[str] = []
    _steps(node, lines, [0])
    lines.append(f"Answer: {fmt(value_of(node))}")
    return "\n".join(lines)


def _steps(node: Node, lines: list[str], counter: list[int]) -> Value:
    if type(node) is not tuple:
        return node  # type: ignore[return-value]
    op, left, right, _ = node
    a = _steps(left, lines, counter)
    b = _steps(right, lines, counter)
    counter[0] += 1
    worked, result = work(op, a, b)
    lines.append(f"Step {counter[0]}: {worked[0]}")
    lines.extend("  " + line for line in worked[1:])
    return result


def make_item(rng: random.Random, level_number: int) -> dict[str, Any]:
    """One problem drawn from ``rng`` (a seeded generator gives a reproducible sequence)."""
    level = LEVELS[level_number]
    node = _Builder(rng, level).tree(level.depth)
    return {
        "question": f"What is {render_question(node)}?",
        "expression": render_python(node),
        "answer": fmt(value_of(node)),
        "scratchpad": scratchpad(node),
        "difficulty": level_number,
    }
