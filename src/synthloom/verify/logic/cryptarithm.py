"""Cryptarithms (SEND + MORE = MONEY, AB * CD = EFGH): letters stand for distinct digits;
exactly one solution. SynLogic's ``cryptarithm`` (games/tasks/cryptarithm), with their three
operator levels: ``+`` only, ``+ -``, ``+ - *`` (``*`` before ``+ -``, as they compute it).

The generator draws the operands as numbers, writes them with a random digit→letter code, and
keeps the puzzle only when a solver finds exactly one solution. Addition uses a column-wise
solver (right to left, with carries). With ``-`` and ``*`` the solver assigns the letters in
the order of the columns they first occur in (units first) and, after each column k, checks the
equation modulo 10^k (addition, subtraction and products of the numbers' last k digits decide
the last k digits of both sides), so a wrong low digit is cut at once; a full assignment is
checked exactly. Departures from the authors: numbers are ``digits`` long and written with an
``alphabet`` of distinct digits (theirs: 1-2 or 3-6 digits from ``num_letter`` digits), a
result must be positive (theirs too) and may use digits outside the operands' alphabet; the
answer is the letter=digit list (theirs: the equation in digits).
"""

from __future__ import annotations

import random
import re
import string
from typing import Any

from synthloom.verify.logic.base import LogicTask, register_task


def cryptarithm_solutions(addends: list[str], result: str, limit: int = 2) -> list[dict]:
    """Solutions (letter → digit), up to ``limit``."""
    words = [w[::-1] for w in addends]  # least significant column first
    total = result[::-1]
    width = len(total)
    if any(len(w) > width for w in words):
        return []
    leading = {w[0] for w in [*addends, result] if len(w) > 1}
    assign: dict[str, int] = {}
    used = [False] * 10
    found: list[dict] = []

    def options(letter: str) -> list[int]:
        low = 1 if letter in leading else 0
        return [d for d in range(low, 10) if not used[d]]

    def column(col: int, row: int, carry: int, acc: int) -> bool:
        """Assign the letters of column ``col`` one addend (``row``) at a time."""
        if col == width:
            if carry == 0:
                found.append(dict(assign))
            return len(found) >= limit
        if row < len(words):
            word = words[row]
            if col >= len(word):
                return column(col, row + 1, carry, acc)
            letter = word[col]
            if letter in assign:
                return column(col, row + 1, carry, acc + assign[letter])
            for d in options(letter):
                assign[letter], used[d] = d, True
                stop = column(col, row + 1, carry, acc + d)
                del assign[letter]
                used[d] = False
                if stop:
                    return True
            return False
        s = acc + carry
        digit, letter = s % 10, total[col]
        if letter in assign:
            if assign[letter] != digit:
                return False
            return column(col + 1, 0, s // 10, 0)
        if used[digit] or (digit == 0 and letter in leading):
            return False
        assign[letter], used[digit] = digit, True
        stop = column(col + 1, 0, s // 10, 0)
        del assign[letter]
        used[digit] = False
        return stop

    column(0, 0, 0, 0)
    return found


def calculate(numbers: list[int], ops: list[str]) -> int:
    """The authors' ``_calculate_equation``: ``*`` first, then ``+ -`` left to right."""
    terms, signs = [numbers[0]], []
    for op, n in zip(ops, numbers[1:], strict=True):
        if op == "*":
            terms[-1] *= n
        else:
            terms.append(n)
            signs.append(op)
    total = terms[0]
    for op, n in zip(signs, terms[1:], strict=True):
        total = total + n if op == "+" else total - n
    return total


def equation_solutions(words: list[str], ops: list[str], result: str,
                       limit: int = 2) -> list[dict]:
    """Solutions (letter → digit) of ``w0 op w1 op ... = result`` for any of ``+ - *``, up to
    ``limit``: letters in units-first column order, the equation checked modulo 10^k after
    column k."""
    if all(op == "+" for op in ops):
        return cryptarithm_solutions(words, result, limit)
    every = [*words, result]
    width = max(len(w) for w in every)
    steps: list[tuple[str, int, bool]] = []  # (letter, column, forced by the column's sum)
    check_at: dict[int, int] = {}  # steps done -> columns to check modulo 10^columns
    seen: set[str] = set()
    for k in range(width):
        for w in words:
            if k < len(w) and w[-1 - k] not in seen:
                seen.add(w[-1 - k])
                steps.append((w[-1 - k], k, False))
        if k < len(result) and result[-1 - k] not in seen:
            seen.add(result[-1 - k])
            steps.append((result[-1 - k], k, True))
        check_at[len(steps)] = k + 1
    leading = {w[0] for w in every if len(w) > 1}
    assign: dict[str, int] = {}
    used = [False] * 10
    found: list[dict] = []

    def tail(word: str, k: int) -> int:
        value = 0
        for ch in word[-k:] if k else "":
            value = value * 10 + assign[ch]
        return value

    def left(k: int) -> int:
        return calculate([tail(w, k) for w in words], ops)

    def search(i: int) -> bool:
        if i in check_at and (left(check_at[i]) - tail(result, check_at[i])) % \
                10 ** check_at[i]:
            return False
        if i == len(steps):
            if left(width) == tail(result, len(result)):
                found.append(dict(assign))
            return len(found) >= limit
        letter, k, forced = steps[i]
        # A result letter's digit is fixed by the left side's last k+1 digits.
        digits = [(left(k + 1) - tail(result, k)) // 10 ** k % 10] if forced else range(10)
        for d in digits:
            if used[d] or (d == 0 and letter in leading):
                continue
            assign[letter], used[d] = d, True
            stop = search(i + 1)
            del assign[letter]
            used[d] = False
            if stop:
                return True
        return False

    search(0)
    return found


def parse_mapping(text: str) -> dict[str, int]:
    """``"S=9, E=5"`` / ``"S: 9; E: 5"`` / ``"S=9 E=5"`` → {"S": 9, "E": 5}."""
    pairs = re.findall(r"([A-Za-z])\s*(?:=|:|->|→)\s*(\d+)", text)
    mapping: dict[str, int] = {}
    for letter, digit in pairs:
        letter = letter.upper()
        if letter in mapping and mapping[letter] != int(digit):
            raise ValueError(f"letter {letter} given two digits")
        mapping[letter] = int(digit)
    return mapping


@register_task
class Cryptarithm(LogicTask):
    name = "cryptarithm"
    synlogic = "games/tasks/cryptarithm/scripts/cryptarithm.py"
    description = "a letter arithmetic puzzle like SEND + MORE = MONEY or AB * C = DEB " \
                  "(exactly one solution)"
    answer_format = ("every letter with its digit, as LETTER=DIGIT pairs separated by commas, "
                     "e.g. A=1, B=0, C=7")
    unique = True
    #: ``alphabet``: how many distinct digits the operands are written with. Fewer letters
    #: repeat more and constrain more: unique puzzles are 5-30x more frequent than with all
    #: ten digits, so the generator retries far less. ``operators``: the authors'
    #: operator_level (1-2: ``+ -``, 3: ``+ - *``; "+" keeps the addition-only puzzles).
    levels = {1: {"addends": 2, "digits": 2, "alphabet": 3, "operators": "+"},
              2: {"addends": 2, "digits": 3, "alphabet": 3, "operators": "+-"},
              3: {"addends": 3, "digits": 3, "alphabet": 3, "operators": "+-"},
              4: {"addends": 2, "digits": 3, "alphabet": 3, "operators": "+-*"},
              5: {"addends": 4, "digits": 2, "alphabet": 3, "operators": "+-*"}}

    def generate(self, rng: random.Random, addends: int = 2, digits: int = 3,
                 alphabet: int = 10, operators: str = "+") -> dict[str, Any]:
        if addends < 2 or digits < 1 or not 2 <= alphabet <= 10 or \
                not operators or set(operators) - set("+-*"):
            raise ValueError("cryptarithm: addends >= 2, digits >= 1, alphabet 2-10, "
                             "operators of + - *")
        best: tuple[list[str], list[str], str, dict] | None = None
        for _ in range(4000):
            pool = rng.sample(range(10), alphabet)
            lead = [d for d in pool if d] if digits > 1 else pool
            numbers = [int("".join(str(rng.choice(lead if i == 0 else pool))
                                   for i in range(digits))) for _ in range(addends)]
            ops = ["+"] * (addends - 1) if operators == "+" else \
                [rng.choice(operators) for _ in range(addends - 1)]
            total = calculate(numbers, ops)
            if total <= 0:  # the authors keep positive results only
                continue
            code = dict(zip(range(10), rng.sample(string.ascii_uppercase, 10), strict=True))
            words = ["".join(code[int(d)] for d in str(n)) for n in numbers]
            result = "".join(code[int(d)] for d in str(total))
            solutions = equation_solutions(words, ops, result, 2)
            if len(solutions) == 1:
                best = (words, ops, result, solutions[0])
                break
        if best is None:
            raise ValueError(f"no unique {addends}x{digits}-digit cryptarithm found")
        words, ops, result, solution = best
        equation = words[0] + "".join(f" {op} {w}" for op, w in zip(ops, words[1:],
                                                                     strict=True))
        equation += " = " + result
        question = (f"Solve the cryptarithm {equation}. Each letter stands for a different "
                    "digit (0-9), the same letter always for the same digit, and no number "
                    "starts with 0." + (" Multiplication is done before addition and "
                                        "subtraction." if "*" in ops else ""))
        answer = ", ".join(f"{k}={v}" for k, v in sorted(solution.items()))
        return {"question": question, "answer": answer, "words": words, "result": result,
                "operators": ops}

    def verify(self, item: dict[str, Any], candidate: str) -> str | None:
        words, result = list(item["words"]), str(item["result"])
        letters = set("".join(words) + result)
        try:
            mapping = parse_mapping(candidate)
        except ValueError as exc:
            return str(exc)
        if set(mapping) != letters:
            missing, extra = sorted(letters - set(mapping)), sorted(set(mapping) - letters)
            return f"letters missing {missing} or extra {extra}"
        if any(not 0 <= d <= 9 for d in mapping.values()):
            return "a digit is outside 0-9"
        if len(set(mapping.values())) != len(mapping):
            return "two letters share a digit"
        if any(mapping[w[0]] == 0 for w in [*words, result] if len(w) > 1):
            return "a number starts with 0"

        def value(word: str) -> int:
            return int("".join(str(mapping[ch]) for ch in word))

        ops = list(item.get("operators") or ["+"] * (len(words) - 1))  # older items: sums
        total = calculate([value(w) for w in words], ops)
        if total != value(result):
            return f"the left side is {total}, not {value(result)}"
        return None

    def count_solutions(self, item: dict[str, Any], limit: int = 2) -> int:
        words = list(item["words"])
        ops = list(item.get("operators") or ["+"] * (len(words) - 1))
        return len(equation_solutions(words, ops, str(item["result"]), limit))
