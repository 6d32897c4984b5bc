"""Game of 24: combine the given numbers with + - * / and parentheses to make the target.

Only solvable instances are generated: an exhaustive solver over exact rationals (every pair,
every operation, recursively, memoized) finds one expression and counts the ways. The verifier never
``eval``s: it walks the ``ast`` of the candidate, allowing only integer literals, the four
binary operators and parentheses, checks the literals are exactly the given numbers (each used
once) and evaluates with Fractions (a division by zero fails the candidate).
"""

from __future__ import annotations

import ast
import random
import re
from fractions import Fraction
from functools import lru_cache
from math import gcd
from typing import Any

from synthloom.verify.logic.base import LogicTask, register_task

_OPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}

#: The 16 sets of four numbers 1-13 that make 24 only through a fraction (found by
#: ``solve24`` over all 1,820 sets; tests/unit/test_logic_tasks.py re-derives a sample).
#: Drawing among them is faster than rejection sampling (16 of 1,820 sets).
FRACTION_ONLY = [(1, 3, 4, 6), (1, 4, 5, 6), (1, 5, 5, 5), (1, 6, 6, 8), (1, 8, 12, 12),
                 (2, 2, 11, 11), (2, 2, 13, 13), (2, 3, 5, 12), (2, 4, 10, 10), (2, 5, 5, 10),
                 (2, 7, 7, 10), (3, 3, 7, 7), (3, 3, 8, 8), (4, 4, 7, 7), (5, 5, 7, 11),
                 (5, 7, 7, 11)]


Q = tuple[int, int]  # an exact rational as (numerator, denominator > 0), in lowest terms


def _q(n: int, d: int) -> Q:
    if d < 0:
        n, d = -n, -d
    g = gcd(n, d)
    return (n // g, d // g)


def _results(a: Q, b: Q) -> list[Q]:
    """a+b, a*b, a-b, b-a, a/b, b/a (divisions by zero left out). Integer pairs, not
    Fraction: the solver is about 6x faster on them."""
    (an, ad), (bn, bd) = a, b
    diff = an * bd - bn * ad
    out = [_q(an * bd + bn * ad, ad * bd), _q(an * bn, ad * bd), _q(diff, ad * bd),
           _q(-diff, ad * bd)]
    if bn:
        out.append(_q(an * bd, ad * bn))
    if an:
        out.append(_q(bn * ad, bd * an))
    return out


@lru_cache(maxsize=20_000)
def _ways(values: tuple[Q, ...], integral: bool) -> dict[Q, int]:
    """Every value the multiset ``values`` (sorted) can make → the number of ways to make it
    (pair, operation, recursively). ``integral``: no intermediate result leaves the integers."""
    if len(values) == 1:
        return {values[0]: 1}
    out: dict[Q, int] = {}
    for value, rest in _steps(values, integral):
        for result, ways in _ways(tuple(sorted((*rest, value))), integral).items():
            out[result] = out.get(result, 0) + ways
    return out


def _steps(values: tuple[Q, ...], integral: bool) -> list[tuple[Q, tuple[Q, ...]]]:
    """Every (result of one operation on a pair, the other values)."""
    steps = []
    seen: set[tuple[Q, Q]] = set()
    n = len(values)
    for i in range(n):
        for j in range(i + 1, n):
            a, b = values[i], values[j]
            if (a, b) in seen:
                continue  # equal numbers: the same split twice
            seen.add((a, b))
            rest = values[:i] + values[i + 1:j] + values[j + 1:]
            steps.extend((v, rest) for v in _results(a, b) if not integral or v[1] == 1)
    return steps


def _target_ways(values: tuple[Q, ...], goal: Q, integral: bool) -> int:
    """Ways to make ``goal``; the top level is not memoized (only the target is wanted)."""
    if len(values) == 1:
        return int(values[0] == goal)
    return sum(_ways(tuple(sorted((*rest, value))), integral).get(goal, 0)
               for value, rest in _steps(values, integral))


def _find(items: list[tuple[Q, str]], goal: Q, integral: bool) -> str | None:
    """One expression over ``items`` (value, text) reaching ``goal``; the memoized counts
    prune every branch that cannot reach it."""
    if len(items) == 1:
        return items[0][1] if items[0][0] == goal else None
    for i in range(len(items)):
        for j in range(i + 1, len(items)):
            (va, ta), (vb, tb) = items[i], items[j]
            rest = items[:i] + items[i + 1:j] + items[j + 1:]
            texts = [f"({ta} + {tb})", f"({ta} * {tb})", f"({ta} - {tb})", f"({tb} - {ta})"]
            texts += ([f"({ta} / {tb})"] if vb[0] else []) + ([f"({tb} / {ta})"] if va[0] else [])
            for value, text in zip(_results(va, vb), texts, strict=True):
                if integral and value[1] != 1:
                    continue
                merged = [*rest, (value, text)]
                if goal in _ways(tuple(sorted(v for v, _ in merged)), integral):
                    found = _find(merged, goal, integral)
                    if found is not None:
                        return found
    return None


def solve24(numbers: list[int], target: int = 24,
            integral: bool = False) -> tuple[str | None, int]:
    """(one expression reaching ``target``, number of ways) or (None, 0)."""
    goal: Q = (target, 1)
    ways = _target_ways(tuple(sorted((v, 1) for v in numbers)), goal, integral)
    if not ways:
        return None, 0
    expr = _find([((v, 1), str(v)) for v in numbers], goal, integral)
    return (_tidy(expr) if expr else None), ways


def _tidy(expr: str) -> str:
    """Drop the outer parentheses of the generated expression (the verifier re-parses it)."""
    return expr[1:-1] if expr.startswith("(") and expr.endswith(")") and \
        _balanced(expr[1:-1]) else expr


def _balanced(text: str) -> bool:
    depth = 0
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        if depth < 0:
            return False
    return depth == 0


class ExpressionRejected(ValueError):
    pass


def evaluate(expression: str) -> tuple[Fraction, list[int]]:
    """(exact value, the integer literals used) of an arithmetic expression, via ``ast``."""
    text = expression.replace("×", "*").replace("÷", "/").replace("−", "-")
    text = text.replace("x", "*").replace("X", "*")
    text = re.split(r"=", text)[0].strip()  # "(8 - 2) * 4 = 24": judge the left side
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise ExpressionRejected(f"not an arithmetic expression ({exc.msg})") from None
    used: list[int] = []

    def walk(node: ast.AST) -> Fraction:
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            left, right = walk(node.left), walk(node.right)
            if isinstance(node.op, ast.Add):
                return left + right
            if isinstance(node.op, ast.Sub):
                return left - right
            if isinstance(node.op, ast.Mult):
                return left * right
            if right == 0:
                raise ExpressionRejected("division by zero")
            return left / right
        if isinstance(node, ast.Constant) and type(node.value) is int:
            used.append(node.value)
            return Fraction(node.value)
        raise ExpressionRejected(f"only integers, + - * / and parentheses are allowed, "
                                 f"not {type(node).__name__}")

    return walk(tree.body), used


@register_task
class Game24(LogicTask):
    name = "game24"
    synlogic = "games/tasks/game_of_24/scripts/game_of_24.py"
    description = "make the target (24) from the given numbers with + - * / (each used once)"
    answer_format = ("one arithmetic expression that uses each given number exactly once, with "
                     "+ - * / and parentheses only, e.g. (8 - 4) * (7 - 1)")
    levels = {
        1: {"count": 4, "low": 1, "high": 9, "min_ways": 16},  # many routes (top quarter)
        2: {"count": 4, "low": 1, "high": 10, "min_ways": 6},
        3: {"count": 4, "low": 1, "high": 13, "min_ways": 1},
        4: {"count": 4, "low": 1, "high": 13, "min_ways": 1, "max_ways": 3},  # few routes
        5: {"count": 4, "low": 1, "high": 13, "min_ways": 1, "needs_fractions": True},
    }

    def generate(self, rng: random.Random, count: int = 4, low: int = 1, high: int = 13,
                 target: int = 24, min_ways: int = 1, max_ways: int | None = None,
                 needs_fractions: bool = False) -> dict[str, Any]:
        fallback: tuple[list[int], str] | None = None
        table = [q for q in FRACTION_ONLY if low <= q[0] and q[-1] <= high]
        for _ in range(5000):
            if needs_fractions and target == 24 and count == 4 and table:
                numbers = list(rng.choice(table))
            else:
                numbers = sorted(rng.randint(low, high) for _ in range(count))
            expr, ways = solve24(numbers, target)
            if expr is None:
                continue
            fallback = fallback or (numbers, expr)
            if ways < min_ways or (max_ways is not None and ways > max_ways):
                continue
            if needs_fractions and solve24(numbers, target, integral=True)[0] is not None:
                continue  # solvable without leaving the integers: not a fraction puzzle
            break
        else:
            if fallback is None:
                raise ValueError(f"no solvable {count} numbers in {low}-{high} for {target}")
            numbers, expr = fallback  # knobs too strict: the first solvable draw
        shown = ", ".join(map(str, numbers))
        question = (f"Use the numbers {shown} to make {target}. Use each number exactly once; "
                    "you may use +, -, *, / and parentheses, and intermediate results may be "
                    "fractions. Numbers may not be joined into new numbers (no 1 and 2 → 12).")
        return {"question": question, "answer": expr, "numbers": numbers, "target": target}

    def verify(self, item: dict[str, Any], candidate: str) -> str | None:
        try:
            value, used = evaluate(candidate)
        except ExpressionRejected as exc:
            return str(exc)
        if sorted(used) != sorted(int(n) for n in item["numbers"]):
            return f"uses {sorted(used)}, not each of {sorted(item['numbers'])} once"
        target = Fraction(int(item.get("target", 24)))
        if value != target:
            return f"evaluates to {value}, not {target}"
        return None
