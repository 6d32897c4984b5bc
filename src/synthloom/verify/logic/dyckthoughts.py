"""SynLogic's ``dyck_language_reasoning_errors``, after games/tasks/dyck_language_reasoning_errors:
a valid bracket sequence is read one bracket per thought, each thought stating the stack after
it, and a last thought says whether the stack ends empty; name every wrong thought.

The generator follows the authors' ``_generate_thoughts_with_errors``: ``n_errors`` (1-5 drawn
when not set) brackets get a wrong stack (a wrong top, a missing pop, a wrong push or a
corrupted entry), the final thought is flipped with probability 1/2 while errors are still
owed, and a puzzle left without any error gets one stack edited (a bracket dropped or
inserted). Each thought states the stack from the correct one before it, so errors do not carry
over. The verifier rebuilds the correct thoughts from the sequence and the answer is every
thought that differs. Departures: the answer lists *all* wrong thoughts (the authors' label
keeps a random ``n_errors`` of them when more were made, leaving wrong thoughts out of the
"right" answer); the thoughts are in English (the authors' are in Chinese in both prompts).
"""

from __future__ import annotations

import random
import re
from typing import Any

from synthloom.verify.logic.base import LogicTask, register_task
from synthloom.verify.logic.brackets import PAIRS

EMPTY = "empty"
PROMPT = ("You are an expert in a language called dyck where you must complete the language "
          "sequence of unclosed brackets of all types (e.g., [], {{}}, <>). You are given an "
          "initial dyck language sequence and the steps, provided as thoughts, that were used "
          "to arrive at the closing bracket sequence in the dyck language.\n\nYour job is to "
          "identify any steps that were mistakes in reasoning about the closing bracket "
          "sequence in dyck language, as there may be multiple errors. Each thought reads one "
          "bracket and states the stack of open brackets after it; the last one says whether "
          "the final stack is empty.\n\nTask: Examine the sequence, making sure that the "
          "parentheses are closed properly.\nInput: {sequence}\n{thoughts}\nQ: Is there any "
          "mistake in this sequence? List the numbers N of every Thought N with a mistake, "
          "comma-separated like 7,9,12, or None if there are no mistakes.")


def _valid(rng: random.Random, pairs: list[tuple[str, str]], length: int) -> str:
    """The authors' ``_generate_valid_dyck_sequence``."""
    length += length % 2
    out: list[str] = []
    stack: list[str] = []
    remaining = length
    while remaining > 0:
        if not stack or (rng.random() < 0.5 and remaining > len(stack) * 2):
            o, c = rng.choice(pairs)
            out.append(o)
            stack.append(c)
        else:
            out.append(stack.pop())
        remaining -= 1
    return "".join(out + stack[::-1])


def _show(stack: list[str] | str) -> str:
    return "".join(stack) or EMPTY


def _ending(empty: bool) -> str:
    return f"Now, we have reached the end. The final stack is {'' if empty else 'not '}empty."


def correct_thoughts(sequence: str) -> list[str]:
    """One thought per bracket (``"( ; stack: ([" ``) and the final one."""
    close_of = dict(PAIRS)
    stack: list[str] = []
    out = []
    for ch in sequence:
        if ch in close_of:
            stack.append(ch)
        elif stack and close_of[stack[-1]] == ch:
            stack.pop()
        else:  # not in a valid sequence; kept like the authors
            stack.append(ch)
        out.append(f"{ch} ; stack: {_show(stack)}")
    return out + [_ending(not stack)]


def wrong_thoughts(sequence: str, thoughts: list[str]) -> list[int]:
    """1-based numbers of the thoughts that differ from the correct ones."""
    right = correct_thoughts(sequence)
    return [i + 1 for i, t in enumerate(thoughts) if i >= len(right) or t != right[i]]


def _bad_stack(rng: random.Random, ch: str, stack: str, opens: str, everything: str) -> str:
    """The authors' ``_generate_error_thought``: up to 5 tries of a random error kind, then a
    random stack of the same size."""
    kind = rng.choice(["wrong_pop", "no_pop", "wrong_push", "stack_corruption"])
    for _ in range(5):
        s = list(stack)
        if kind == "wrong_pop" and s:
            s[-1] = rng.choice(opens)
        elif kind == "no_pop" and ch not in opens:
            if s:
                s[-1] = rng.choice(opens)
            else:
                s.append(rng.choice(opens))
        elif kind == "wrong_push":
            s.append(rng.choice(everything))
        elif kind == "stack_corruption":
            if s:
                s[rng.randrange(len(s))] = rng.choice(everything)
            else:
                s.append(rng.choice(opens))
        if "".join(s) != stack:
            return "".join(s)
        kind = rng.choice(["wrong_pop", "no_pop", "wrong_push", "stack_corruption"])
    return "".join(rng.choice(everything) for _ in range(max(1, len(stack))))


@register_task
class DyckLanguageReasoningErrors(LogicTask):
    name = "dyck_language_reasoning_errors"
    synlogic = "games/tasks/dyck_language_reasoning_errors/scripts/" \
               "dyck_language_reasoning_errors.py"
    description = "name every wrong stack in a bracket-by-bracket reading"
    answer_format = "the numbers of all wrong thoughts, comma-separated (e.g. 3,7,9), or None"
    # The authors' knobs: n_types, total_length, n_errors (0 = their random 1-5).
    levels = {1: {"n_types": 1, "total_length": 8, "n_errors": 1},
              2: {"n_types": 2, "total_length": 12, "n_errors": 0},
              3: {"n_types": 3, "total_length": 20, "n_errors": 0},
              4: {"n_types": 4, "total_length": 30, "n_errors": 0},
              5: {"n_types": 4, "total_length": 40, "n_errors": 5}}

    def generate(self, rng: random.Random, n_types: int = 3, total_length: int = 20,
                 n_errors: int = 0) -> dict[str, Any]:
        if not 1 <= n_types <= len(PAIRS) or total_length < 4 or not 0 <= n_errors <= 10:
            raise ValueError("n_types 1-4, total_length >= 4, n_errors 0-10")
        pairs = rng.sample(PAIRS[:n_types], n_types)
        opens = "".join(o for o, _ in pairs)
        everything = opens + "".join(c for _, c in pairs)
        sequence = _valid(rng, pairs, total_length)
        errors = n_errors or rng.randint(1, 5)
        thoughts = correct_thoughts(sequence)
        for i in rng.sample(range(len(sequence)), min(errors, len(sequence))):
            ch, stack = thoughts[i].split(" ; stack: ")
            stack = "" if stack == EMPTY else stack
            thoughts[i] = f"{ch} ; stack: {_show(_bad_stack(rng, ch, stack, opens, everything))}"
        if len(wrong_thoughts(sequence, thoughts)) < errors and rng.random() < 0.5:
            thoughts[-1] = _ending(thoughts[-1].endswith("not empty."))  # flipped
        if not wrong_thoughts(sequence, thoughts):
            i = rng.randint(2, len(thoughts) - 2)  # the authors' forced error
            ch, stack = thoughts[i].split(" ; stack: ")
            stack = "" if stack == EMPTY else stack
            if stack and rng.random() < 0.5:
                pos = rng.randrange(len(stack))
                stack = stack[:pos] + stack[pos + 1:]
            else:
                pos = rng.randint(0, len(stack))
                stack = stack[:pos] + rng.choice(everything) + stack[pos:]
            thoughts[i] = f"{ch} ; stack: {_show(stack)}"
        wrong = wrong_thoughts(sequence, thoughts)
        numbered = "\n".join(f"Thought {i}: {t}" for i, t in enumerate(thoughts, 1))
        return {"question": PROMPT.format(sequence=sequence, thoughts=numbered),
                "answer": ",".join(map(str, wrong)) or "None", "sequence": sequence,
                "thoughts": thoughts, "n_types": n_types}

    def verify(self, item: dict[str, Any], candidate: str) -> str | None:
        text = candidate.strip().strip("\"'").strip()
        want = wrong_thoughts(item["sequence"], item["thoughts"])
        if re.fullmatch(r"(?i)none|no|", text):
            return None if not want else "there are wrong thoughts"
        if not re.fullmatch(r"\d+(\s*[,，]\s*\d+)*", text):
            return "not a comma-separated list of thought numbers"
        got = sorted({int(n) for n in re.findall(r"\d+", text)})
        return None if got == want else "wrong set of thoughts"
