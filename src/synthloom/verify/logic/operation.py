"""SynLogic's ``operation``, after games/tasks/operation: new operator symbols (△, ◇, ⊕, ...)
are defined by formulas in x and y, some with a condition ("when x is even, x ◇ y = ...;
otherwise ..."), each with a precedence among ``** * / % + -``; compute an expression using them.

The generator follows the authors' ``generate_problem``: 1-4 symbols, each definition drawn by
their ``_generate_random_operation`` (2 to ``definition_num_symbols_max`` elements of x, y and
constants 1-5, operators ``+ - * / **`` weighted .3/.3/.25/.1/.05, a 20% chance of one earlier
symbol, a parenthesis pair with ``bracket_rate``, made ``abs(...)`` with ``abs_rate``; both x
and y must matter), a condition with ``condition_rate`` (their fifteen), precedence 1-5, an
expression of k to k+3 operands 1-10 using every symbol, kept when its value is under 100,000.
Evaluation is exact (Fractions) by one precedence parser for definitions and expression alike,
left to right at equal precedence as in the authors' parser; the verifier recomputes the value.

Departures: the definitions are shown as drawn (the authors print sympy's simplification of
those without a custom symbol); the question states what the authors' code does silently -
operators of equal precedence group left to right (``**`` too), ``%`` is Python's modulo, and
a condition is checked only when both operands are integers (the authors check it only when
both are Python ints, so an integral value reached by ``/``, a float, takes the "otherwise"
rule there and the condition here); draws that divide by zero or raise to a non-integer or
huge power are redrawn (the authors' ``eval`` gives floats or complex numbers or times out);
the answer is exact (a fraction where not an integer; decimals within 1e-6 are accepted).
English only.
"""

from __future__ import annotations

import random
from fractions import Fraction
from functools import lru_cache
from typing import Any

from synthloom.verify.logic.base import LogicTask, register_task
from synthloom.verify.math_answers import answers_equal

SYMBOLS = ["△", "▽", "◇", "○", "☆", "◎", "□", "♡", "♢", "⊕", "⊗", "⊙"]
BASE = {"**": 3, "*": 2, "/": 2, "%": 2, "+": 1, "-": 1}
CONDITIONS = {
    "x and y are both even": lambda x, y: x % 2 == 0 and y % 2 == 0,
    "x and y are both odd": lambda x, y: x % 2 != 0 and y % 2 != 0,
    "x is even": lambda x, y: x % 2 == 0, "x is odd": lambda x, y: x % 2 != 0,
    "y is even": lambda x, y: y % 2 == 0, "y is odd": lambda x, y: y % 2 != 0,
    "x is greater than y": lambda x, y: x > y, "x is less than y": lambda x, y: x < y,
    "x is equal to y": lambda x, y: x == y,
    "x is a multiple of 3": lambda x, y: x % 3 == 0,
    "y is a multiple of 3": lambda x, y: y % 3 == 0,
    "x is a multiple of 5": lambda x, y: x % 5 == 0,
    "y is a multiple of 5": lambda x, y: y % 5 == 0,
    "the sum of x and y is even": lambda x, y: (x + y) % 2 == 0,
    "the sum of x and y is odd": lambda x, y: (x + y) % 2 != 0,
}
LIMIT_BITS = 256  # a value past 2^256 is a runaway power: the draw is redrawn


class Undefined(ValueError):
    """Division by zero, a non-integer or huge power: not a value the task keeps."""


Symbols = dict[str, dict[str, Any]]  # symbol -> {precedence, condition, if, else}
Value = int | Fraction


def _binary(op: str, a: Value, b: Value, symbols: Symbols, depth: int,
            prec: dict[str, int]) -> Value:
    if op in symbols:
        if depth > 8:
            raise Undefined("definitions nest too deep")
        spec = symbols[op]
        rule = spec["else"]
        cond = spec.get("condition")
        if cond and a.denominator == 1 and b.denominator == 1 and \
                CONDITIONS[cond](int(a), int(b)):
            rule = spec["if"]
        return evaluate(rule, symbols, {"x": a, "y": b}, depth + 1, prec)
    # Values are ints while they are whole (int arithmetic is ~10x Fraction's; a Fraction
    # appears only from / or a negative power, and compares and prints the same).
    if op in "/%" and b == 0:
        raise Undefined("division by zero")
    if op == "+":
        out = a + b
    elif op == "-":
        out = a - b
    elif op == "*":
        out = a * b
    elif op == "/":
        out = Fraction(a, b) if type(a) is int and type(b) is int else a / b
    elif op == "%":
        out = a % b
    else:  # **
        if b.denominator != 1 or abs(b) > 12 or (a == 0 and b < 0):
            raise Undefined("power")
        out = Fraction(a) ** int(b) if b < 0 else a ** int(b)
    if out.numerator.bit_length() > LIMIT_BITS or out.denominator.bit_length() > LIMIT_BITS:
        raise Undefined("too large")
    return out


@lru_cache(maxsize=4096)
def _postfix(tokens: tuple[str, ...], prec: tuple[tuple[str, int], ...]) -> tuple[str, ...]:
    """Shunting-yard, left to right at equal precedence: the tokens in the order their
    operations apply (``abs`` marks an absolute value). Cached: a definition is evaluated
    many times, its parse is the same each time."""
    rank = dict(prec)
    out: list[str] = []
    ops: list[str] = []
    for tok in tokens:
        if tok in ("(", "abs("):
            ops.append(tok)
        elif tok == ")":
            while ops[-1] not in ("(", "abs("):
                out.append(ops.pop())
            if ops.pop() == "abs(":
                out.append("abs")
        elif tok in rank:
            while ops and ops[-1] not in ("(", "abs(") and rank[ops[-1]] >= rank[tok]:
                out.append(ops.pop())
            ops.append(tok)
        else:
            out.append(tok)
    out.extend(reversed(ops))
    return tuple(out)


def evaluate(tokens: list[str], symbols: Symbols, env: dict[str, Value] | None = None,
             depth: int = 0, prec: dict[str, int] | None = None) -> Value:
    """Value of an infix token list (numbers, x, y, operators, ``(``, ``abs(``, ``)``):
    shunting-yard with the symbols' precedence, left to right at equal precedence."""
    if prec is None:  # built once per expression, passed down to the definitions
        prec = {**BASE, **{s: int(v["precedence"]) for s, v in symbols.items()}}
    values: list[Value] = []
    for tok in _postfix(tuple(tokens), tuple(prec.items())):
        if tok == "abs":
            values.append(abs(values.pop()))
        elif tok in prec:
            b = values.pop()
            values.append(_binary(tok, values.pop(), b, symbols, depth, prec))
        else:
            values.append(env[tok] if env and tok in env else int(tok))
    if len(values) != 1:
        raise ValueError("malformed expression")
    return values[0]


def _definition(rng: random.Random, earlier: list[str], most: int, bracket_rate: float,
                abs_rate: float, symbols: Symbols) -> list[str]:
    """The authors' ``_generate_random_operation``, redrawn until x and y both matter."""
    while True:
        n_vars = rng.randint(2, most)
        elements = [rng.choice("xy") for _ in range(n_vars)] + \
            [str(rng.randint(1, 5)) for _ in range(rng.randint(0, most - n_vars))]
        rng.shuffle(elements)
        ops, custom = [], False
        for _ in range(len(elements) - 1):
            if earlier and not custom and rng.random() < 0.2:
                custom = True
                ops.append(rng.choice(earlier))
            else:
                ops.append(rng.choices(["+", "-", "*", "/", "**"],
                                       weights=[0.3, 0.3, 0.25, 0.1, 0.05])[0])
        rng.shuffle(ops)
        left = right = -1
        wrap = "("
        if rng.random() < bracket_rate:
            a, b = rng.randrange(len(elements)), rng.randrange(len(elements))
            left, right = min(a, b), max(a, b)
            if rng.random() < abs_rate:
                wrap = "abs("
        tokens: list[str] = []
        for i, el in enumerate(elements):
            if i:
                tokens.append(ops[i - 1])
            if i == left:
                tokens.append(wrap)
            tokens.append(el)
            if i == right:
                tokens.append(")")
        if _depends_on_both(tokens, symbols):
            return tokens


def _depends_on_both(tokens: list[str], symbols: Symbols) -> bool:
    """x and y both change the value somewhere (the authors ask sympy for free symbols)."""
    if "x" not in tokens or "y" not in tokens:
        return False
    points = [(2, 3), (5, 7), (4, 9)]
    try:
        base = [evaluate(tokens, symbols, {"x": x, "y": y}) for x, y in points]
        moved_x = [evaluate(tokens, symbols, {"x": x + 1, "y": y}) for x, y in points]
        moved_y = [evaluate(tokens, symbols, {"x": x, "y": y + 1}) for x, y in points]
    except (Undefined, ZeroDivisionError):
        return False
    return base != moved_x and base != moved_y


def _show(tokens: list[str]) -> str:
    return " ".join(tokens).replace("( ", "(").replace(" )", ")")


def _value_text(value: Value) -> str:
    return str(value.numerator) if value.denominator == 1 else \
        f"{value.numerator}/{value.denominator}"


@register_task
class Operation(LogicTask):
    name = "operation"
    synlogic = "games/tasks/operation/scripts/operation.py"
    description = "evaluate an expression with newly defined (conditional) operators"
    answer_format = "the exact value: an integer or a fraction a/b"
    # The authors' knobs (their run.sh sweeps 1-4 symbols and definition sizes 3-5).
    levels = {1: {"num_symbols": 1, "definition_num_symbols_max": 3},
              2: {"num_symbols": 1, "definition_num_symbols_max": 4},
              3: {"num_symbols": 2, "definition_num_symbols_max": 4},
              4: {"num_symbols": 3, "definition_num_symbols_max": 5},
              5: {"num_symbols": 4, "definition_num_symbols_max": 5}}

    def generate(self, rng: random.Random, num_symbols: int = 2,
                 definition_num_symbols_max: int = 4, condition_rate: float = 0.5,
                 bracket_rate: float = 0.3, abs_rate: float = 0.4) -> dict[str, Any]:
        if not 1 <= num_symbols <= len(SYMBOLS) or definition_num_symbols_max < 2:
            raise ValueError("num_symbols 1-12 and definition_num_symbols_max >= 2")
        while True:
            symbols: Symbols = {}
            for sym in rng.sample(SYMBOLS, num_symbols):
                spec: dict[str, Any] = {"condition": None}
                if rng.random() < condition_rate:
                    spec["condition"] = rng.choice(list(CONDITIONS))
                    spec["if"] = _definition(rng, list(symbols), definition_num_symbols_max,
                                             bracket_rate, abs_rate, symbols)
                spec["else"] = _definition(rng, list(symbols), definition_num_symbols_max,
                                           bracket_rate, abs_rate, symbols)
                spec["precedence"] = rng.randint(1, 5)  # (the authors draw these after all
                symbols[sym] = spec  # definitions; a later one's check needs the earlier's)
            count = rng.randint(num_symbols, num_symbols + 3)
            ops = list(symbols) + [rng.choice(list(BASE) + list(symbols))
                                   for _ in range(count - num_symbols - 1)]
            rng.shuffle(ops)
            expression = [str(rng.randint(1, 10))]
            for op in ops:
                expression += [op, str(rng.randint(1, 10))]
            try:
                value = evaluate(expression, symbols)
            except Undefined:
                continue
            if abs(value) < 100_000:
                break
        lines = []
        for sym, spec in symbols.items():
            rules = f"Define {sym}, the rules are as follows:\n"
            if spec["condition"]:
                rules += f"when {spec['condition']}, x {sym} y = {_show(spec['if'])};\n" \
                         f"otherwise, x {sym} y = {_show(spec['else'])}.\n"
            else:
                rules += f"on the real number field, x {sym} y = {_show(spec['else'])}.\n"
            lines.append(rules)
        order = sorted([*BASE.items(), *((s, v["precedence"]) for s, v in symbols.items())],
                       key=lambda kv: -kv[1])
        ranking = order[0][0]
        for (_, before), (op, level) in zip(order, order[1:], strict=False):
            ranking += (" = " if level == before else " > ") + op
        question = ("".join(lines) + f"The precedence of operations: {ranking}.\n"
                    "Parentheses have the highest priority, and the expression inside the "
                    "parentheses is calculated first. Operators of equal precedence are "
                    "applied from left to right (** too); % is the remainder with the sign of "
                    "the divisor (Python's %); a condition on x and y applies only when both "
                    "are integers, otherwise the 'otherwise' rule is used.\n"
                    f"Please calculate the value of the expression: {_show(expression)}")
        return {"question": question, "answer": _value_text(value), "symbols": symbols,
                "expression": expression, "num_symbols": num_symbols}

    def verify(self, item: dict[str, Any], candidate: str) -> str | None:
        want = _value_text(evaluate(item["expression"], item["symbols"]))
        return None if answers_equal(candidate, want) else f"{candidate.strip()} is not the value"
