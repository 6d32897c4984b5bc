"""Final-answer extraction and equivalence with gold answers."""

from __future__ import annotations

from fractions import Fraction

import pytest

from synthloom.verify.math_answers import (
    answers_equal,
    extract_answer,
    extract_boxed,
    gsm8k_gold,
    parse_number,
)


@pytest.mark.parametrize("text, answer", [
    (r"so the total is \boxed{\frac{\sqrt{3}}{2}} units", r"\frac{\sqrt{3}}{2}"),
    (r"first \boxed{1}, then corrected: \boxed{ {2}^{3} }", "{2}^{3}"),
    (r"\fbox{42}", "42"),
    ("She pays 3 * 4 = 12\n#### 1,250", "1,250"),
    ("Thus, the final answer is 7.5 dollars. Done.", "7.5 dollars"),
    ("The answer is: 36", "36"),
    ("There were 12 apples, then 4 more, 16 apples in all", "16"),
    ("no numbers here", None),
    ("", None),
])
def test_extract_answer(text: str, answer: str | None) -> None:
    assert extract_answer(text) == answer


def test_boxed_with_unbalanced_braces_is_not_an_answer() -> None:
    assert extract_boxed(r"\boxed{\frac{1}{2}") is None


def test_gsm8k_gold() -> None:
    assert gsm8k_gold("6 * 2 = <<6*2=12>>12\n#### 1,200") == "1200"
    with pytest.raises(ValueError):
        gsm8k_gold("no marker")


@pytest.mark.parametrize("pred, gold", [
    ("$1,234.00", "1234"),
    ("1234", "$1,234"),
    (r"\$18", "18"),
    ("18 dollars", "18"),
    ("3 hours.", "3"),
    ("50%", "50"),
    ("50%", "0.5"),
    (r"50\%", "1/2"),
    ("0.5", r"\frac{1}{2}"),
    (r"\dfrac{3}{4}", "0.75"),
    (r"\frac34", "3/4"),
    ("-7/3", r"-\frac{7}{3}"),
    ("1e3", "1000"),
    (r"\text{12 cm}", "12"),
    (r"2\sqrt{2}", r"\sqrt{8}"),
    (r"\frac{\sqrt{2}}{2}", r"\frac{1}{\sqrt{2}}"),
    ("sqrt(13)/4 - 1/4", r"-\frac14+\frac{\sqrt{13}}4"),
    (r"(2\sqrt{2}, 4)", "(2*sqrt(2), 4)"),
    (r"\pi r^2", r"r^2\pi"),
    (r"\text{(C)}", "(C)"),
])
def test_equal(pred: str, gold: str) -> None:
    assert answers_equal(pred, gold)


@pytest.mark.parametrize("pred, gold", [
    ("1235", "1234"),
    ("18.01", "18"),
    ("50", "0.5"),
    (r"\frac{1}{3}", "0.33"),
    ("2", "3*sqrt(3) + 2*pi"),  # a plain parser that keeps the last number would say yes
    (r"\sqrt{12}", r"\sqrt{13}"),
    ("(4, 2)", "(2, 4)"),
    ('__import__("os").system("true")', "0"),
    (None, "1"),
    ("", "1"),
    ("1", ""),
])
def test_not_equal(pred: str | None, gold: str) -> None:
    assert not answers_equal(pred, gold)


def test_parse_number() -> None:
    assert parse_number("$1,234.50") == (Fraction(2469, 2), False)
    assert parse_number("12%") == (Fraction(12), True)
    assert parse_number("x + 1") is None
    assert parse_number(r"\frac{1}{0}") is None
