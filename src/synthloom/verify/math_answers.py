"""Final answers of math solutions: extraction, and equivalence with a gold answer.

Extraction is :mod:`synthloom.verify.answers` (one reader for every verifier) with math's
rules: ``<answer>`` tags, the last ``\\boxed{...}`` (nested braces), the last stated answer
("the (final) answer is X", "Answer: X", GSM8K's ``#### N``; its first line), then the last
number in the text. A hedged answer ("4 or maybe 7") equals nothing.

Equivalence: numbers are compared exactly (fractions, decimals, thousands separators, currency,
units and percentages handled here, fast); anything else (LaTeX, expressions, intervals, tuples)
goes to math-verify, which parses LaTeX and plain expressions into sympy and compares them
symbolically. Model output is never ``eval``-ed.
"""

from __future__ import annotations

import re
import threading
from fractions import Fraction
from typing import Any

from synthloom.verify import answers

_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_TEXT = re.compile(r"\\(?:text|textbf|mathrm|mbox)\s*\{([^{}]*)\}")
_FRAC = re.compile(r"^(-?)\\[dt]?frac\s*\{\s*(-?\d+)\s*\}\s*\{\s*(-?\d+)\s*\}$")
_FRAC_SHORT = re.compile(r"^(-?)\\[dt]?frac\s*(\d)\s*(\d)$")
_UNITS = re.compile(
    r"\s*(?:dollars?|cents?|usd|euros?|pounds?|percent|per cent|units?|hours?|hrs?|minutes?|"
    r"mins?|seconds?|secs?|days?|weeks?|months?|years?|miles?|km|meters?|metres?|cm|mm|m|kg|"
    r"grams?|g|lbs?|ounces?|oz|feet|foot|ft|inches?|in|degrees?|people|students?|apples?|"
    r"items?|pieces?|points?|times?)\.?$", re.IGNORECASE)


def extract_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` / ``\\fbox{...}``, braces matched."""
    return answers.boxed(text)


#: Math reads tags, boxes and stated answers; a code block or JSON in a solution is work.
MATH_RULES = ("answer_tag", "boxed", "stated")


def extract_answer(text: str | None, *, last_number: bool = True) -> str | None:
    """The final answer of a solution text, or None when it states none. With
    ``last_number=False`` only a stated answer counts (tag, boxed, ####, "the answer is")."""
    found = answers.extract(text, rules=MATH_RULES, multiline=False,
                            fallback="number" if last_number else "none")
    if found is None:
        return None
    value = found.value.strip().strip("*").strip() if found.rule == "stated" else found.value
    return value or None


def gsm8k_gold(answer_field: str) -> str:
    """The gold answer of a GSM8K ``answer`` field: what follows ``####``, without commas."""
    if "####" not in answer_field:
        raise ValueError("not a GSM8K answer: no '####' line")
    return answer_field.rsplit("####", 1)[1].strip().replace(",", "")


def clean_answer(text: str) -> str:
    """Strip what does not change the value: $ math delimiters, \\text units, currency,
    thousands separators, trailing dots and unit words."""
    s = text.strip()
    for _ in range(3):
        s = s.strip().rstrip(".").strip()
        if s.startswith("$") and s.endswith("$") and len(s) > 1:
            s = s.strip("$")
        if s.startswith(r"\(") and s.endswith(r"\)"):
            s = s[2:-2]
        if s.startswith(r"\[") and s.endswith(r"\]"):
            s = s[2:-2]
    s = _TEXT.sub(lambda m: m.group(1), s)
    s = s.replace(r"\!", "").replace(r"\,", "").replace(r"\ ", " ").replace("\\$", "$")
    s = s.replace(r"\%", "%").replace("^\\circ", "").replace("^{\\circ}", "").replace("°", "")
    s = _THOUSANDS.sub("", s)
    s = re.sub(r"^([-+]?)\s*(?:\$|€|£|USD\s*)\s*", r"\1", s)
    s = _UNITS.sub("", s).strip()
    return s.strip().rstrip(".").strip()


def parse_number(text: str) -> tuple[Fraction, bool] | None:
    """(value, is_percentage) for plain numbers, decimals, a/b and \\frac{a}{b}; else None."""
    s = clean_answer(text).replace(" ", "")
    percent = s.endswith("%")
    if percent:
        s = s[:-1]
    if s.startswith("+"):
        s = s[1:]
    frac = _FRAC.match(s) or _FRAC_SHORT.match(s)
    if frac:
        sign, num, den = frac.groups()
        if int(den) == 0:
            return None
        value = Fraction(int(num), int(den))
        return (-value if sign else value), percent
    if not re.fullmatch(r"-?(\d+(\.\d*)?|\.\d+)(/-?\d+)?|-?\d+(\.\d+)?[eE][-+]?\d+", s):
        return None
    try:
        return Fraction(s), percent
    except (ValueError, ZeroDivisionError):
        return None


def _numbers_equal(pred: tuple[Fraction, bool], gold: tuple[Fraction, bool],
                   rel_tol: float) -> bool:
    (p, p_pct), (g, g_pct) = pred, gold
    candidates = {p}
    if p_pct != g_pct:  # "50%" against 0.5, or 0.5 against "50%"; "50%" against 50 too
        candidates.add(p / 100 if p_pct else p * 100)
    for value in candidates:
        if value == g:
            return True
        if g != 0 and abs(float(value - g)) <= rel_tol * abs(float(g)):
            return True
    return False


def answers_equal(pred: str | None, gold: str | None, *, rel_tol: float = 1e-6) -> bool:
    """Whether a predicted final answer equals the gold one (numbers exactly, else
    symbolically with math-verify, else as normalised text)."""
    if pred is None or gold is None or not pred.strip() or not gold.strip():
        return False
    if answers.is_hedged(pred) and not answers.is_hedged(gold):
        return False  # "4 or maybe 7" offers two answers: wrong, even when one is right
    p_num, g_num = parse_number(pred), parse_number(gold)
    if p_num is not None and g_num is not None:
        return _numbers_equal(p_num, g_num, rel_tol)
    if _plain(pred) == _plain(gold):
        return True
    return _math_verify(pred, gold)


def _plain(text: str) -> str:
    return re.sub(r"\s+", "", clean_answer(text)).lower()


_SAFE_EXPR = re.compile(r"[0-9A-Za-z\s.+\-*/()\[\],^]+")
_NAME = re.compile(r"[A-Za-z_][A-Za-z_0-9]*(?:\.[A-Za-z_]+)?")
#: Names a plain (sympy-style) answer may use; anything else is not parsed (never eval-ed).
_SYMPY_NAMES = frozenset({
    "sqrt", "pi", "I", "E", "exp", "log", "ln", "sin", "cos", "tan", "oo", "Rational", "Abs",
    "Interval", "Interval.open", "Interval.Lopen", "Interval.Ropen", "x", "y", "z", "n", "k",
    "a", "b", "c", "p", "q", "r", "t"})


def _latex_like(text: str) -> bool:
    return any(c in text for c in "\\{}")


def _sympy_plain(text: str) -> Any:
    """A plain expression ("3*sqrt(3) + 2*pi", "(1, 2)", "Interval.Lopen(0, 1)") as sympy, or
    None. Only allow-listed names get through, so parse_expr never sees arbitrary code."""
    s = clean_answer(text)
    if not s or not _SAFE_EXPR.fullmatch(s) or "__" in s:
        return None
    names = set(_NAME.findall(s))
    if not names <= _SYMPY_NAMES:
        return None
    import sympy
    from sympy.parsing.sympy_parser import convert_xor, parse_expr, standard_transformations

    allowed = {name: getattr(sympy, name) for name in
               ("sqrt", "pi", "I", "E", "exp", "log", "sin", "cos", "tan", "oo", "Rational",
                "Abs", "Interval")}
    allowed["ln"] = sympy.log
    allowed.update({v: sympy.Symbol(v) for v in "xyznkabcpqrt"})
    try:
        # The transformations emit Integer/Float/Symbol calls: the only other globals.
        basics = {"Integer": sympy.Integer, "Float": sympy.Float, "Symbol": sympy.Symbol,
                  "Rational": sympy.Rational, "__builtins__": {}}
        value = parse_expr(s, local_dict=allowed, global_dict=basics,
                           transformations=(*standard_transformations, convert_xor))
    except Exception:  # noqa: BLE001 - not an expression: the caller falls back
        return None
    if isinstance(value, tuple | list):
        value = sympy.Tuple(*value)
    return value


def _math_verify(pred: str, gold: str) -> bool:
    try:
        from math_verify import parse, verify
    except ImportError as exc:  # pragma: no cover - a core dependency
        from synthloom.core.errors import SynthloomError

        raise SynthloomError("math answer checking needs math-verify: "
                             "pip install 'math-verify>=0.7'") from exc
    # math-verify's timeouts use SIGALRM, which only works in the main thread.
    main = threading.current_thread() is threading.main_thread()
    timeout: Any = 5 if main else None
    def parsed(text: str) -> Any:
        if not _latex_like(text):
            plain = _sympy_plain(text)
            # A plain answer sympy cannot read is not guessed at: math-verify would pick
            # its last number ("3*sqrt(3) + 2*pi" -> 2).
            return [plain] if plain is not None else []
        return parse(f"${clean_answer(text)}$", parsing_timeout=timeout)

    try:
        gold_parsed = parsed(gold)
        pred_parsed = parsed(pred)
        if not gold_parsed or not pred_parsed:
            return False
        return bool(verify(gold_parsed, pred_parsed, timeout_seconds=timeout))
    except Exception:  # noqa: BLE001 - an unparsable answer is simply not equal
        return False
