"""SynLogic's bracket tasks: ``dyck_language`` (complete a prefix) and ``dyck_language_errors``
(find the first error), after games/tasks/dyck_language and dyck_language_errors.

Both answers are functions of the puzzle's own fields: the shortest completion of a prefix is
its open brackets closed in reverse order, and the first error position is found by one pass
with a stack (the authors' ``_find_first_error_position``). The verifiers recompute them.
"""

from __future__ import annotations

import random
import re
from typing import Any

from synthloom.verify.logic.base import LogicTask, register_task

PAIRS = [("(", ")"), ("[", "]"), ("{", "}"), ("<", ">")]
CLOSE_OF = dict(PAIRS)
OPEN_OF = {c: o for o, c in PAIRS}
_KINDS = "parentheses (), square brackets [], curly braces {}, angle brackets <>"


def closing(prefix: str) -> str | None:
    """The shortest completion of ``prefix``; None when the prefix already has an error."""
    stack: list[str] = []
    for ch in prefix:
        if ch in CLOSE_OF:
            stack.append(ch)
        elif ch in OPEN_OF and (not stack or stack.pop() != OPEN_OF[ch]):
            return None
    return "".join(CLOSE_OF[o] for o in reversed(stack))


def first_error(seq: str) -> int:
    """1-based position of the first error; len+1 for unclosed brackets at the end; -1 when the
    sequence is valid (the authors' rule)."""
    stack: list[str] = []
    for i, ch in enumerate(seq):
        if ch in CLOSE_OF:
            stack.append(ch)
        elif not stack or stack.pop() != OPEN_OF[ch]:
            return i + 1
    return len(seq) + 1 if stack else -1


def _prefix(rng: random.Random, pairs: list[tuple[str, str]], length: int, fill: int,
            nesting: int) -> str:
    """A prefix of ``length - fill`` brackets that uses all ``length // 2`` openings and ends
    with ``fill`` open brackets, so the completion is exactly ``fill`` closings (the authors'
    "unique completion" condition, built directly instead of by rejection)."""
    opens, closes = length // 2, length // 2 - fill
    out: list[str] = []
    stack: list[str] = []
    for _ in range(min(nesting, opens)):  # the authors' nesting_depth: open that many first
        o, c = rng.choice(pairs)
        out.append(o)
        stack.append(c)
    opens -= len(stack)
    while opens or closes:
        if opens and (not stack or not closes or rng.random() < 0.5):
            o, c = rng.choice(pairs)
            out.append(o)
            stack.append(c)
            opens -= 1
        else:
            out.append(stack.pop())
            closes -= 1
    return "".join(out)


@register_task
class DyckLanguage(LogicTask):
    name = "dyck_language"
    synlogic = "games/tasks/dyck_language/scripts/dyck_language.py"
    description = "complete a bracket sequence with the shortest closing suffix"
    answer_format = "the complete bracket sequence (the given prefix plus your closing " \
                    "brackets), without spaces, e.g. ([{}])"
    # n_types brackets of the four; total_length 0 = the authors' random 4n..8n pairs.
    levels = {1: {"n_types": 1, "total_length": 10, "nesting_depth": 0},
              2: {"n_types": 2, "total_length": 16, "nesting_depth": 0},
              3: {"n_types": 3, "total_length": 0, "nesting_depth": 0},
              4: {"n_types": 4, "total_length": 0, "nesting_depth": 0},
              5: {"n_types": 4, "total_length": 64, "nesting_depth": 8}}

    def generate(self, rng: random.Random, n_types: int = 3, total_length: int = 0,
                 nesting_depth: int = 0) -> dict[str, Any]:
        if not 1 <= n_types <= len(PAIRS):
            raise ValueError(f"n_types must be 1-{len(PAIRS)}")
        length = total_length or rng.randint(4 * n_types, 8 * n_types) * 2
        length -= length % 2
        fill = rng.randint(max(1, int(length * 0.2)), min(int(length * 0.5), length // 2))
        prefix = _prefix(rng, PAIRS[:n_types], length, fill, nesting_depth)
        question = (f"Complete the following sequence to make it a valid bracket sequence. "
                    f"The sequence may contain: {_KINDS}.\n{prefix}\n\n"
                    "Requirement: use the minimal completion. Give the complete sequence.")
        return {"question": question, "answer": prefix + str(closing(prefix)),
                "prefix": prefix, "n_types": n_types}

    def verify(self, item: dict[str, Any], candidate: str) -> str | None:
        got = re.sub(r"\s+", "", candidate)
        prefix = str(item["prefix"])
        if not got.startswith(prefix):
            return "does not start with the given sequence"
        if got != prefix + str(closing(prefix)):
            return "not the shortest valid completion"
        return None


def _balanced(rng: random.Random, pairs: list[tuple[str, str]], count: int) -> str:
    """The authors' ``_generate_balanced_brackets``: ``count`` pairs, a 50% walk."""
    if count == 0:
        return ""
    out, stack = [], []
    o, c = rng.choice(pairs)
    out.append(o)
    stack.append(c)
    for _ in range(count * 2 - 1):
        if stack and (rng.random() < 0.5 or len(stack) >= count):
            out.append(stack.pop())
        else:
            o, c = rng.choice(pairs)
            out.append(o)
            stack.append(c)
    out.extend(reversed(stack))
    return "".join(out)[:count * 2]


@register_task
class DyckLanguageErrors(LogicTask):
    name = "dyck_language_errors"
    synlogic = "games/tasks/dyck_language_errors/scripts/dyck_language_errors.py"
    description = "find the first error in a bracket sequence (-1 when valid)"
    answer_format = "one integer: the 1-based position of the first error, or -1 if valid"
    levels = {1: {"n_types": 1, "total_length": 10}, 2: {"n_types": 2, "total_length": 16},
              3: {"n_types": 3, "total_length": 20}, 4: {"n_types": 4, "total_length": 30},
              5: {"n_types": 4, "total_length": 50}}

    def generate(self, rng: random.Random, n_types: int = 3,
                 total_length: int = 20) -> dict[str, Any]:
        if not 1 <= n_types <= len(PAIRS) or total_length < 2:
            raise ValueError(f"n_types must be 1-{len(PAIRS)} and total_length >= 2")
        pairs = rng.sample(PAIRS, n_types)
        symbols = [b for pair in pairs for b in pair]
        seq = list(_balanced(rng, pairs, total_length // 2))
        while len(seq) < total_length:  # odd length: one random bracket more
            seq.append(rng.choice(symbols))
        if rng.random() >= 0.2:  # the authors' 80% invalid, by one of three edits
            kind = rng.choice(["mismatch", "unclosed", "extra_closing"])
            closers = [i for i, ch in enumerate(seq) if ch in OPEN_OF]
            if kind == "mismatch" and closers and n_types > 1:
                i = rng.choice(closers)
                seq[i] = rng.choice([c for _, c in pairs if c != seq[i]])
            elif kind in ("mismatch", "unclosed") and closers:
                del seq[rng.choice(closers)]
                seq.append(rng.choice(symbols))
            else:
                seq.insert(rng.randrange(len(seq)), rng.choice([c for _, c in pairs]))
                del seq[total_length:]
        text = "".join(seq)
        question = (f"You are evaluating a bracket sequence with {n_types} different bracket "
                    f"types and a total length of {total_length}.\nDetermine if the sequence "
                    "is valid according to bracket matching rules, where each opening bracket "
                    "must have a matching closing bracket in the correct order. If the sequence "
                    "is invalid, identify the position of the first error (using 1-based "
                    "indexing). Special note: the error position for unclosed brackets at the "
                    "end of the sequence is the sequence length plus 1, but this rule only "
                    "applies when all previous brackets are correctly matched.\n"
                    f"If valid, output -1.\n\nBracket sequence: {text}")
        return {"question": question, "answer": str(first_error(text)), "sequence": text}

    def verify(self, item: dict[str, Any], candidate: str) -> str | None:
        got = candidate.strip()
        if not re.fullmatch(r"-?\d+", got):
            return "not one integer"
        want = first_error(str(item["sequence"]))
        return None if int(got) == want else f"the first error is not at {got}"
