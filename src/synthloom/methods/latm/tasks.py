"""BBH-style tasks of synthloom's own making (the authors' ``bbh/*.json`` shape) and their split.

Each task is ``{"name", "description", "examples": [{"input", "target"}]}``, generated here with
a seeded ``random`` and solved by the generator itself, so every target is right by
construction. The shipped files under ``synthloom/data/latm/`` are ``write_tasks()``'s output
(a unit test checks they still are). ``split`` is the authors' ``get_task``: examples 0-4 train,
5-9 validation, the rest test.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _split(text: str) -> list[str]:
    return text.split()


_WORDS = _split("harbour lantern orchard glacier meadow canyon compass ledger beacon quarry archive "
          "festival bakery workshop garden library market bridge river tunnel station museum "
          "ferry village castle island forest desert valley summit reef lagoon prairie delta "
          "violin kettle falcon otter badger heron salmon beetle walrus koala lynx pelican "
          "tomato lentil barley pepper ginger walnut apricot cherry mango olive basil")
_PEOPLE = ("Alice", "Bob", "Claire", "Dave", "Eve")
_THINGS = ("red ball", "blue ball", "green ball", "yellow ball", "white ball")
_PAIRS = {"(": ")", "[": "]", "{": "}", "<": ">"}
_LETTERS = "ABCDEFGHIJ"


def _word_sorting(rng: random.Random) -> dict[str, str]:
    words = rng.sample(_WORDS, rng.randint(5, 9))
    return {"input": "Sort the following words alphabetically: List: " + " ".join(words),
            "target": " ".join(sorted(words))}


def _swap_tracking(rng: random.Random) -> dict[str, str]:
    n = rng.choice((3, 4, 5))
    people, things = list(_PEOPLE[:n]), list(_THINGS[:n])
    rng.shuffle(things)
    held = dict(zip(people, things, strict=True))
    start = ", ".join(f"{p} has a {t}" for p, t in held.items())
    steps = []
    for i in range(n):
        a, b = rng.sample(people, 2)
        held[a], held[b] = held[b], held[a]
        steps.append(f"{'First' if i == 0 else 'Then'}, {a} and {b} swap balls.")
    who = rng.choice(people)
    options = sorted(_THINGS[:n])
    lines = "\n".join(f"({_LETTERS[i]}) {t}" for i, t in enumerate(options))
    question = (f"{', '.join(people[:-1])}, and {people[-1]} are playing a game. At the start, "
                f"{start}. As the game goes on, pairs of players swap balls. "
                f"{' '.join(steps)} At the end of the game, {who} has the\nOptions:\n{lines}")
    return {"input": question, "target": f"({_LETTERS[options.index(held[who])]})"}


def _remainders(rng: random.Random) -> dict[str, str]:
    mods = sorted(rng.sample((3, 4, 5, 7), 3))
    limit = mods[0] * mods[1] * mods[2]
    n = rng.randint(1, limit)
    facts = ", ".join(f"when divided by {m} it leaves {n % m}" for m in mods)
    return {"input": f"A whole number is between 1 and {limit}; {facts}. What is the number?",
            "target": str(n)}


def _bracket_closing(rng: random.Random) -> dict[str, str]:
    stack: list[str] = []
    seq: list[str] = []
    for _ in range(rng.randint(4, 10)):
        if stack and rng.random() < 0.4:
            seq.append(_PAIRS[stack.pop()])
        else:
            stack.append(rng.choice(tuple(_PAIRS)))
            seq.append(stack[-1])
    if not stack:
        stack.append(rng.choice(tuple(_PAIRS)))
        seq.append(stack[-1])
    return {"input": "Complete the rest of the sequence, making sure that the parentheses are "
                     "closed properly. Input: " + " ".join(seq),
            "target": " ".join(_PAIRS[c] for c in reversed(stack))}


#: name -> (description, generator).
GENERATORS: dict[str, tuple[str, Callable[[random.Random], dict[str, str]]]] = {
    "word_sorting": ("Sort a list of words alphabetically.", _word_sorting),
    "swap_tracking": ("Track which object a player holds after a sequence of swaps "
                      "(multiple choice).", _swap_tracking),
    "remainders": ("Find the number in a range from its remainders (Chinese remainder "
                   "theorem).", _remainders),
    "bracket_closing": ("Close an open sequence of brackets properly.", _bracket_closing),
}


def make_task(name: str, examples: int = 20, seed: int = 0) -> dict[str, Any]:
    description, generate = GENERATORS[name]
    rng = random.Random(f"{name}:{seed}")
    return {"name": name, "description": description,
            "origin": "synthloom (methods/latm/tasks.py), BBH-style, made for LATM",
            "examples": [generate(rng) for _ in range(examples)]}


def write_tasks(folder: Path, examples: int = 20) -> list[Path]:
    """Write every task as ``<name>.json`` (the shipped files come from this)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in GENERATORS:
        path = folder / f"{name}.json"
        path.write_text(json.dumps(make_task(name, examples), indent=1) + "\n", encoding="utf-8")
        paths.append(path)
    return paths


def split(examples: list[dict[str, Any]]) -> tuple[list[dict[str, str]], ...]:
    """The authors' ``get_task``: (train = 0-4, validation = 5-9, test = the rest), each item
    ``{"question", "answer"}``."""
    samples = [{"question": str(e["input"]), "answer": str(e["target"])} for e in examples]
    return samples[:5], samples[5:10], samples[10:]
