"""Exact, safe evaluation of arithmetic: Python expressions (``ast``) and written questions.

Both walk Python's parse tree (``ast``), never ``eval``: the Python one accepts only integer
literals, ``+ - * /`` (and unary minus), parentheses and ``Fraction(...)`` calls; the written
one accepts ``+ - × ÷ * /``, parentheses and decimal literals, read exactly from their digits.
Arithmetic is exact (ints, Fractions). They share no code with the generator in
``methods/math``, so a verified item was checked by an independent route.
"""

from __future__ import annotations

import ast
import re
from fractions import Fraction

Value = int | Fraction


class ExpressionError(ValueError):
    """Not an expression these evaluators accept, or a division by zero."""


def eval_python(expression: str) -> Value:
    """Value of a Python arithmetic expression such as ``Fraction(3, 4) * (2 - Fraction('1.5'))``.

    Integers stay ints (exact and fast); ``/`` divides exactly; float literals are refused."""
    return _evaluate(expression, infix=False)


def eval_infix(text: str) -> Value:
    """Value of written arithmetic like ``12 × (3.5 - (3/4)) ÷ (-2)``: ``×``/``*`` multiply,
    ``÷``/``/`` divide exactly, decimal literals are read exactly from their digits."""
    if not _INFIX_CHARS.fullmatch(text):
        raise ExpressionError(f"unexpected characters in {text[:40]!r}")
    return _evaluate(text.replace("×", "*").replace("÷", "/"), infix=True)


_INFIX_CHARS = re.compile(r"[0-9.+\-×÷*/() ]+")


def _evaluate(source: str, infix: bool) -> Value:
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"not an expression: {exc.msg}") from None
    text = source.strip()
    return _Walker(text, infix).eval(tree.body)


class _Walker:
    def __init__(self, text: str, infix: bool) -> None:
        self.text = text
        self.infix = infix

    def eval(self, node: ast.AST) -> Value:
        kind = type(node)
        if kind is ast.BinOp:
            left, right = self.eval(node.left), self.eval(node.right)  # type: ignore[attr-defined]
            return _apply(type(node.op), left, right)  # type: ignore[attr-defined]
        if kind is ast.Constant:
            value = node.value  # type: ignore[attr-defined]
            if type(value) is int:
                return value
            if type(value) is float and self.infix:
                # Exactly the digits written, not the nearest binary float.
                segment = self.text[node.col_offset:node.end_col_offset]  # type: ignore[attr-defined]
                return _norm(Fraction(segment))
            raise ExpressionError(f"unsupported literal {value!r}")
        if kind is ast.UnaryOp and type(node.op) in (ast.USub, ast.UAdd):  # type: ignore[attr-defined]
            value = self.eval(node.operand)  # type: ignore[attr-defined]
            return -value if type(node.op) is ast.USub else value  # type: ignore[attr-defined]
        if kind is ast.Call and not self.infix:
            return self._fraction(node)  # type: ignore[arg-type]
        raise ExpressionError(f"unsupported syntax: {ast.dump(node)[:80]}")

    def _fraction(self, node: ast.Call) -> Value:
        if not (isinstance(node.func, ast.Name) and node.func.id == "Fraction"
                and not node.keywords and 1 <= len(node.args) <= 2):
            raise ExpressionError("only Fraction(...) calls are allowed")
        args = node.args
        if len(args) == 1 and isinstance(args[0], ast.Constant) and isinstance(args[0].value, str):
            try:
                return _norm(Fraction(args[0].value))
            except ValueError:
                raise ExpressionError(f"bad Fraction literal {args[0].value!r}") from None
        values = [self.eval(a) for a in args]
        if len(values) == 2:
            return _apply(ast.Div, values[0], values[1])
        return values[0]


def _norm(value: Value) -> Value:
    if type(value) is Fraction and value.denominator == 1:
        return value.numerator
    return value


def _apply(op: type, left: Value, right: Value) -> Value:
    if op is ast.Add:
        return _norm(left + right)
    if op is ast.Sub:
        return _norm(left - right)
    if op is ast.Mult:
        return _norm(left * right)
    if op is ast.Div:
        if right == 0:
            raise ExpressionError("division by zero")
        return _norm(Fraction(left, right))
    raise ExpressionError(f"unsupported operator {op.__name__}")


def parse_exact(answer: str) -> Value:
    """An answer written as an integer, an exact decimal or ``a/b``."""
    try:
        return _norm(Fraction(answer.strip()))
    except (ValueError, ZeroDivisionError):
        raise ExpressionError(f"not an exact number: {answer!r}") from None
