"""The paper's filters on generated instructions and on their instances.

Instructions (``bootstrap_instructions.py`` of the Self-Instruct code): 4..150 words (the
code drops ``<= 3`` words), no keyword a text model cannot act on (image, graph, picture, file,
map, draw, plot, go to - whole words), not "Write a program...", not starting with punctuation
or a non-ASCII character. Instances (``prepare_for_finetuning.py``): the output is empty, equal to
the input, or an input/output ends with a colon (a cut-off generation); instances of one task
with the same input but different outputs make the whole task unusable; exact repeats go.
"""

from __future__ import annotations

import re
import string
from typing import Any

MIN_WORDS = 4
MAX_WORDS = 150
BLOCKED_KEYWORDS = ("image", "images", "graph", "graphs", "picture", "pictures", "file", "files",
                    "map", "maps", "draw", "plot", "go to")
_KEYWORD_RES = [(word, re.compile(rf"\b{re.escape(word)}\b", re.IGNORECASE))
                for word in BLOCKED_KEYWORDS]
BLOCKED_PREFIXES = ("Write a program",)


def clean_instruction(text: str) -> str:
    """Whitespace collapsed, stripped, first letter capitalised (as the paper's code does,
    without lower-casing the rest)."""
    text = re.sub(r"\s+", " ", text).strip()
    return text[:1].upper() + text[1:]


def instruction_problem(text: str, min_words: int = MIN_WORDS,
                        max_words: int = MAX_WORDS) -> str | None:
    """Why a generated instruction is unusable (a drop reason), or None."""
    if not text:
        return "heuristic: empty instruction"
    words = len(text.split())
    if words < min_words:
        return f"heuristic: {words} words (< {min_words})"
    if words > max_words:
        return f"heuristic: {words} words (> {max_words})"
    for word, pattern in _KEYWORD_RES:
        if pattern.search(text):
            return f"heuristic: contains {word!r}"
    for prefix in BLOCKED_PREFIXES:
        if text.lower().startswith(prefix.lower()):
            return f"heuristic: starts with {prefix!r}"
    if text[0] in string.punctuation:
        return f"heuristic: starts with punctuation {text[0]!r}"
    if not text[0].isascii():
        return f"heuristic: starts with non-ASCII {text[0]!r}"
    return None


def instance_problems(instances: list[dict[str, Any]]) -> tuple[list[str | None], str | None]:
    """Per instance: why it is unusable (or None); and a reason that rejects the whole task
    (same input, different outputs), or None."""
    pairs = [(str(i.get("input") or "").strip(), str(i.get("output") or "").strip())
             for i in instances]
    outputs_by_input: dict[str, str] = {}
    for inp, out in pairs:
        if inp and inp in outputs_by_input and outputs_by_input[inp] != out:
            return [None] * len(pairs), f"instances: same input {inp[:60]!r} with different outputs"
        outputs_by_input.setdefault(inp, out)
    problems: list[str | None] = []
    seen: set[tuple[str, str]] = set()
    for inp, out in pairs:
        if not out:
            problems.append("instance: empty output")
        elif inp == out:
            problems.append("instance: output repeats the input")
        elif inp.endswith(":") or out.endswith(":"):
            problems.append("instance: ends with ':' (cut-off generation)")
        elif (inp, out) in seen:
            problems.append("instance: exact repeat of an earlier instance of this task")
        else:
            problems.append(None)
        seen.add((inp, out))
    return problems, None
