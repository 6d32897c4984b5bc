"""Cryptarithms (SEND + MORE = MONEY): letters stand for distinct digits; exactly one solution.

The generator draws the addends as numbers, writes them with a random digit→letter code, and
keeps the puzzle only when a column-wise solver (right to left, with carries, letters assigned
as they appear, leading letters non-zero) finds exactly one solution.
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
    description = "a letter addition puzzle like SEND + MORE = MONEY (exactly one solution)"
    answer_format = ("every letter with its digit, as LETTER=DIGIT pairs separated by commas, "
                     "e.g. A=1, B=0, C=7")
    unique = True
    #: ``alphabet``: how many distinct digits the addends are written with. Fewer letters
    #: repeat more and constrain more: unique puzzles are 5-30x more frequent than with all
    #: ten digits, so the generator retries far less.
    levels = {1: {"addends": 2, "digits": 2, "alphabet": 3},
              2: {"addends": 2, "digits": 3, "alphabet": 4},
              3: {"addends": 2, "digits": 4, "alphabet": 5},
              4: {"addends": 3, "digits": 3, "alphabet": 4},
              5: {"addends": 3, "digits": 4, "alphabet": 5}}

    def generate(self, rng: random.Random, addends: int = 2, digits: int = 3,
                 alphabet: int = 10) -> dict[str, Any]:
        if addends < 2 or digits < 1 or not 2 <= alphabet <= 10:
            raise ValueError("cryptarithm: addends >= 2, digits >= 1, alphabet 2-10")
        best: tuple[list[str], str, dict] | None = None
        for _ in range(4000):
            pool = rng.sample(range(10), alphabet)
            lead = [d for d in pool if d] if digits > 1 else pool
            numbers = [int("".join(str(rng.choice(lead if i == 0 else pool))
                                   for i in range(digits))) for _ in range(addends)]
            code = dict(zip(range(10), rng.sample(string.ascii_uppercase, 10), strict=True))
            words = ["".join(code[int(d)] for d in str(n)) for n in numbers]
            result = "".join(code[int(d)] for d in str(sum(numbers)))
            solutions = cryptarithm_solutions(words, result, 2)
            if len(solutions) == 1:
                best = (words, result, solutions[0])
                break
        if best is None:
            raise ValueError(f"no unique {addends}x{digits}-digit cryptarithm found")
        words, result, solution = best
        equation = " + ".join(words) + " = " + result
        question = (f"Solve the cryptarithm {equation}. Each letter stands for a different "
                    "digit (0-9), the same letter always for the same digit, and no number "
                    "starts with 0.")
        answer = ", ".join(f"{k}={v}" for k, v in sorted(solution.items()))
        return {"question": question, "answer": answer, "words": words, "result": result}

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

        total = sum(value(w) for w in words)
        if total != value(result):
            return f"the addends sum to {total}, not {value(result)}"
        return None

    def count_solutions(self, item: dict[str, Any], limit: int = 2) -> int:
        return len(cryptarithm_solutions(list(item["words"]), str(item["result"]), limit))
