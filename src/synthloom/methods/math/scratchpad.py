"""Worked steps for one operation: column addition and subtraction, long multiplication,
long division, fraction arithmetic. Exact: numbers are ints or Fractions; decimals are worked as
scaled integers with the point put back, as on paper."""

from __future__ import annotations

from fractions import Fraction
from functools import lru_cache
from math import gcd

SYMBOL = {"+": "+", "-": "-", "*": "×", "/": "÷"}


Value = int | Fraction


def fmt(value: Value) -> str:
    """Integer, exact decimal (denominator 2^a·5^b), or a/b."""
    if type(value) is int:
        return str(value)
    return _fmt_ratio(value.numerator, value.denominator)


@lru_cache(maxsize=8192)
def _fmt_ratio(numerator: int, denominator: int) -> str:
    if denominator == 1:
        return str(numerator)
    places = decimal_places(denominator)
    if places is None:
        return f"{numerator}/{denominator}"
    scaled = abs(numerator) * (10 ** places // denominator)
    digits = str(scaled).rjust(places + 1, "0")
    sign = "-" if numerator < 0 else ""
    return f"{sign}{digits[:-places]}.{digits[-places:]}"


@lru_cache(maxsize=4096)
def decimal_places(denominator: int) -> int | None:
    """Digits after the point of 1/denominator, or None when it does not terminate."""
    if denominator == 1:
        return 0
    twos = fives = 0
    while denominator % 2 == 0:
        denominator //= 2
        twos += 1
    while denominator % 5 == 0:
        denominator //= 5
        fives += 1
    return max(twos, fives) if denominator == 1 else None


def _is_decimal(value: Value) -> bool:
    return type(value) is int or decimal_places(value.denominator) is not None


def work(op: str, a: Value, b: Value) -> tuple[list[str], Value]:
    """Lines showing how ``a op b`` is computed, and the exact result."""
    result = _exact(op, a, b)
    head = f"{fmt_operand(a)} {SYMBOL[op]} {fmt_operand(b)}"
    if op in "+-" and _is_decimal(a) and _is_decimal(b):
        lines = _add_sub(op, a, b)
    elif op == "*" and _is_decimal(a) and _is_decimal(b):
        lines = _multiply(a, b)
    elif op == "/" and _is_decimal(a) and _is_decimal(b):
        lines = _divide(a, b)
    else:
        lines = _fractions(op, a, b)
    return [head, *lines, f"= {fmt(result)}"], result


def fmt_operand(value: Value) -> str:
    text = fmt(value)
    return f"({text})" if text[0] == "-" or "/" in text else text


def _exact(op: str, a: Value, b: Value) -> Value:
    if op == "+":
        result = a + b
    elif op == "-":
        result = a - b
    elif op == "*":
        result = a * b
    else:
        result = Fraction(a, b)
    if type(result) is Fraction and result.denominator == 1:
        return result.numerator
    return result


def _scale(*values: Value) -> int:
    return max(decimal_places(v.denominator) or 0 for v in values)


def _as_int(value: Value, places: int) -> int:
    if type(value) is int:
        return value * 10 ** places
    return int(value * 10 ** places)


def _point(n: int, places: int) -> str:
    """A scaled integer with its point put back, always ``places`` decimals (for columns)."""
    if not places:
        return str(n)
    sign = "-" if n < 0 else ""
    whole, frac = divmod(abs(n), 10 ** places)
    return f"{sign}{whole}.{frac:0{places}d}"


def _add_sub(op: str, a: Value, b: Value) -> list[str]:
    places = _scale(a, b)
    x, y = _as_int(a, places), _as_int(b, places)
    lines: list[str] = []
    if op == "-":
        if b < 0:
            lines.append("subtracting a negative number adds its size")
        y = -y
    # Signs first: add the sizes, or take the smaller size from the larger.
    if (x >= 0) == (y >= 0) or not x or not y:
        if x < 0 and y < 0:
            lines.append("both negative: add the sizes, keep the minus sign")
        _column_add(abs(x), abs(y), places, lines)
        return lines
    big, small = (x, y) if abs(x) >= abs(y) else (y, x)
    if big < 0 or op == "+":
        sign = "minus" if big < 0 else "plus"
        lines.append(f"signs differ: take {_point(abs(small), places)} from "
                     f"{_point(abs(big), places)}, the result has the {sign} sign")
    elif big is y:
        lines.append(f"{_point(abs(x), places)} is smaller: take it from "
                     f"{_point(abs(y), places)}, the result is negative")
    _column_sub(abs(big), abs(small), places, lines)
    return lines


def _marks(out_of_column: list[str], places: int) -> str:
    """Carry / borrow marks (units column first) as a row above the columns: the mark of
    column i stands over column i+1, which receives the carry or gives the borrow."""
    marks = [" ", *out_of_column]
    if places:
        marks.insert(places, " ")  # the decimal point's column
    return "".join(reversed(marks))


def _column_add(x: int, y: int, places: int, lines: list[str]) -> int:
    total = x + y
    width = len(str(total)) + 1
    carries = []
    carry = 0
    xs, ys = str(x)[::-1], str(y)[::-1]
    for i in range(max(len(xs), len(ys))):
        s = int(xs[i]) if i < len(xs) else 0
        s += int(ys[i]) if i < len(ys) else 0
        s += carry
        carry = s // 10
        carries.append(str(carry) if carry else " ")
    lines.append("carry " + _marks(carries, places).rjust(width))
    lines.append("      " + _point(x, places).rjust(width))
    lines.append("    + " + _point(y, places).rjust(width))
    lines.append("      " + "-" * width)
    lines.append("      " + _point(total, places).rjust(width))
    return total


def _column_sub(x: int, y: int, places: int, lines: list[str]) -> int:
    diff = x - y
    width = len(str(x)) + 1
    borrows = []
    borrow = 0
    xs, ys = str(x)[::-1], str(y)[::-1]
    for i in range(len(xs)):
        d = int(xs[i]) - borrow - (int(ys[i]) if i < len(ys) else 0)
        borrow = 1 if d < 0 else 0
        borrows.append("b" if borrow else " ")
    lines.append("borrow" + _marks(borrows, places).rjust(width))
    lines.append("      " + _point(x, places).rjust(width))
    lines.append("    - " + _point(y, places).rjust(width))
    lines.append("      " + "-" * width)
    lines.append("      " + _point(diff, places).rjust(width))
    return diff


def _multiply(a: Value, b: Value) -> list[str]:
    pa, pb = decimal_places(a.denominator) or 0, decimal_places(b.denominator) or 0
    x, y = abs(_as_int(a, pa)), abs(_as_int(b, pb))
    lines = []
    if (a < 0) != (b < 0) and a and b:
        lines.append("one factor is negative: the product is negative")
    if pa or pb:
        lines.append(f"multiply {x} × {y}, then put back {pa + pb} decimal place(s)")
    product = x * y
    width = len(str(product)) + 1
    lines.append("      " + str(x).rjust(width))
    lines.append("    × " + str(y).rjust(width))
    lines.append("      " + "-" * width)
    partials = [(i, int(d)) for i, d in enumerate(reversed(str(y))) if d != "0"]
    for shift, digit in partials:
        lines.append("      " + str(x * digit * 10 ** shift).rjust(width)
                     + f"   ({x} × {digit}{', shifted ' + str(shift) if shift else ''})")
    if len(partials) > 1:
        lines.append("      " + "-" * width)
        lines.append("      " + str(product).rjust(width))
    return lines


def _divide(a: Value, b: Value) -> list[str]:
    places = _scale(a, b)
    x, y = abs(_as_int(a, places)), abs(_as_int(b, places))
    lines = []
    if places:
        lines.append(f"scale both by 10^{places}: {x} ÷ {y}")
    if (a < 0) != (b < 0) and a:
        lines.append("one number is negative: the quotient is negative")
    g = gcd(x, y)
    terminates = decimal_places(y // g) is not None
    lines.extend(_long_division(x, y, max_decimals=12 if terminates else 0))
    if not terminates:
        simplest = fmt(Fraction(x, y))
        note = f" = {simplest} (divide top and bottom by {g})" if g > 1 else ""
        lines.append(f"the remainder never divides out: keep the fraction {x}/{y}{note}")
    return lines


def _long_division(x: int, y: int, max_decimals: int) -> list[str]:
    lines = [f"long division of {x} by {y}:"]
    rem = 0
    quotient = ""
    for digit in str(x):
        rem = rem * 10 + int(digit)
        q = rem // y
        if quotient.lstrip("0") or q:
            lines.append(f"  {rem} ÷ {y} = {q}, remainder {rem - q * y}")
        quotient += str(q)
        rem -= q * y
    decimals = ""
    while rem and len(decimals) < max_decimals:
        rem *= 10
        q = rem // y
        lines.append(f"  bring down 0: {rem} ÷ {y} = {q}, remainder {rem - q * y}")
        decimals += str(q)
        rem -= q * y
    whole = quotient.lstrip("0") or "0"
    lines.append(f"  quotient {whole}{'.' + decimals if decimals else ''}"
                 + (f", remainder {rem}" if rem else ""))
    return lines


def _fractions(op: str, a: Value, b: Value) -> list[str]:
    fa = f"{a.numerator}/{a.denominator}"
    fb = f"{b.numerator}/{b.denominator}"
    if op in "+-":
        den = a.denominator * b.denominator // gcd(a.denominator, b.denominator)
        na, nb = a.numerator * (den // a.denominator), b.numerator * (den // b.denominator)
        raw = na + nb if op == "+" else na - nb
        lines = [f"as fractions: {fa} {op} {fb}",
                 f"common denominator {den}: {na}/{den} {op} {nb}/{den} = {raw}/{den}"]
        return _simplified(lines, raw, den)
    if op == "*":
        num, den = a.numerator * b.numerator, a.denominator * b.denominator
        lines = [f"as fractions: {fa} × {fb}",
                 f"multiply tops and bottoms: ({a.numerator} × {b.numerator})/"
                 f"({a.denominator} × {b.denominator}) = {num}/{den}"]
        return _simplified(lines, num, den)
    num, den = a.numerator * b.denominator, a.denominator * b.numerator
    if den < 0:
        num, den = -num, -den
    lines = [f"as fractions: {fa} ÷ {fb}",
             f"multiply by the reciprocal: {fa} × {b.denominator}/{b.numerator} = {num}/{den}"]
    return _simplified(lines, num, den)


def _simplified(lines: list[str], num: int, den: int) -> list[str]:
    g = gcd(num, den)
    if g > 1:
        lines.append(f"divide top and bottom by {g}: {num // g}/{den // g}")
    return lines
