"""Math tools (self-contained: run in the sandbox from this source)."""

from __future__ import annotations

import math


def add(a: float, b: float) -> float:
    """Add two numbers.

    Args:
        a: The first number.
        b: The second number.
    """
    return a + b


def multiply(a: float, b: float) -> float:
    """Multiply two numbers.

    Args:
        a: The first number.
        b: The second number.
    """
    return a * b


def power(base: float, exponent: float) -> float:
    """Raise a number to a power.

    Args:
        base: The base.
        exponent: The exponent.
    """
    if abs(exponent) > 1000:
        raise ValueError("exponent too large")
    return base ** exponent


def sqrt(x: float) -> float:
    """The square root of a non-negative number.

    Args:
        x: The number.
    """
    if x < 0:
        raise ValueError("square root of a negative number")
    return math.sqrt(x)


def gcd(a: int, b: int) -> int:
    """The greatest common divisor of two integers.

    Args:
        a: The first integer.
        b: The second integer.
    """
    return math.gcd(a, b)


def factorial(n: int) -> int:
    """n! for 0 <= n <= 100.

    Args:
        n: The integer.
    """
    if not 0 <= n <= 100:
        raise ValueError("n must be between 0 and 100")
    return math.factorial(n)
