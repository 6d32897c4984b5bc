"""Knights and knaves: knights always tell the truth, knaves always lie; one consistent answer.

Statements are small propositional formulas over "X is a knight", stored as JSON lists
(``["and", ["is", 0, true], ["not", ["is", 1, false]]]``) and rendered to English. The generator
draws a hidden assignment, gives each person a statement whose truth matches their kind, and
keeps the puzzle only when brute force over all 2^n assignments finds exactly one in which
every speaker's statement is true exactly when the speaker is a knight.
"""

from __future__ import annotations

import itertools
import random
import re
from typing import Any

from synthloom.verify.logic.base import LogicTask, register_task

NAMES = ["Alice", "Bob", "Carol", "David", "Emma", "Frank", "Grace", "Henry", "Iris", "Jack",
         "Kate", "Liam", "Mia", "Noah", "Olivia", "Paul", "Quinn", "Rose", "Sam", "Tara"]

Formula = list  # ["is", person, knight?] | ["not", f] | [op, f, g] | ["count", k]


def holds(formula: Formula, roles: tuple[bool, ...]) -> bool:
    """Truth of ``formula`` when ``roles[i]`` says whether person i is a knight."""
    op = formula[0]
    if op == "is":
        return roles[formula[1]] == formula[2]
    if op == "not":
        return not holds(formula[1], roles)
    if op == "count":  # "exactly k of us are knights"
        return sum(roles) == formula[1]
    if op == "same":  # "X and Y are the same kind"
        return roles[formula[1]] == roles[formula[2]]
    a, b = holds(formula[1], roles), holds(formula[2], roles)
    if op == "and":
        return a and b
    if op == "or":
        return a or b
    if op == "if":
        return (not a) or b
    if op == "iff":
        return a == b
    raise ValueError(f"unknown connective {op!r}")


def render(formula: Formula, names: list[str], speaker: int, top: bool = True) -> str:
    op = formula[0]

    def who(i: int) -> str:
        return "I" if i == speaker else names[i]

    if op == "is":
        verb = "am" if formula[1] == speaker else "is"
        return f"{who(formula[1])} {verb} a {'knight' if formula[2] else 'knave'}"
    if op == "count":
        k = formula[1]
        return f"exactly {k} of us {'is a knight' if k == 1 else 'are knights'}"
    if op == "same":
        a, b = formula[1], formula[2]
        if speaker in (a, b):
            other = b if a == speaker else a
            return f"{names[other]} and I are the same kind"
        return f"{names[a]} and {names[b]} are the same kind"
    if op == "not":
        inner = formula[1]
        if inner[0] == "is":  # "X is not a knight": no scope to misread
            verb = "am not" if inner[1] == speaker else "is not"
            return f"{who(inner[1])} {verb} a {'knight' if inner[2] else 'knave'}"
        if inner[0] == "same":
            return render(inner, names, speaker, top).replace("the same kind",
                                                              "different kinds")
        text = f"it is not true that {render(inner, names, speaker, False)}"
        return text if top else f"({text})"
    left = render(formula[1], names, speaker, False)
    right = render(formula[2], names, speaker, False)
    text = {"and": f"{left} and {right}", "or": f"{left} or {right}",
            "if": f"if {left}, then {right}", "iff": f"{left} if and only if {right}"}[op]
    return text if top else f"({text})"


def consistent(statements: list[Formula], roles: tuple[bool, ...]) -> bool:
    return all(holds(s, roles) == roles[i] for i, s in enumerate(statements))


def knights_solutions(statements: list[Formula], limit: int = 2) -> list[tuple[bool, ...]]:
    found = []
    for roles in itertools.product((True, False), repeat=len(statements)):
        if consistent(statements, roles):
            found.append(roles)
            if len(found) >= limit:
                break
    return found


def _atom(rng: random.Random, n: int, speaker: int, counts: bool) -> Formula:
    roll = rng.random()
    if counts and roll < 0.15:
        return ["count", rng.randint(0, n)]
    if roll < 0.3:
        a, b = rng.sample(range(n), 2)
        return ["same", a, b]
    others = [i for i in range(n) if i != speaker]
    return ["is", rng.choice(others) if rng.random() < 0.85 else speaker, rng.random() < 0.5]


def _informative(formula: Formula, n: int) -> bool:
    """False for a statement true (or false) whoever is what: "if A is a knight then A is a
    knight" tells nothing."""
    seen = {holds(formula, roles) for roles in itertools.product((True, False), repeat=n)}
    return len(seen) == 2


def _formula(rng: random.Random, n: int, speaker: int, depth: int, counts: bool) -> Formula:
    if depth <= 1:
        atom = _atom(rng, n, speaker, counts)
        return ["not", atom] if rng.random() < 0.1 else atom
    op = rng.choice(["and", "or", "if", "iff"])
    left = _formula(rng, n, speaker, depth - 1, counts)
    right = _formula(rng, n, speaker, 1, counts)
    while right == left or right == ["not", left] or left == ["not", right]:
        right = _formula(rng, n, speaker, 1, counts)
    return [op, left, right]


@register_task
class KnightsKnaves(LogicTask):
    name = "knights_knaves"
    description = "decide who is a knight (truthful) and who a knave (liar); one answer"
    answer_format = "each person's kind, e.g. Alice: knight, Bob: knave"
    unique = True
    levels = {1: {"people": 2, "depth": 1, "counts": False},
              2: {"people": 3, "depth": 1, "counts": False},
              3: {"people": 3, "depth": 2, "counts": False},
              4: {"people": 4, "depth": 2, "counts": True},
              5: {"people": 5, "depth": 2, "counts": True}}

    def generate(self, rng: random.Random, people: int = 3, depth: int = 2,
                 counts: bool = False) -> dict[str, Any]:
        if not 2 <= people <= len(NAMES):
            raise ValueError(f"people must be 2-{len(NAMES)}")
        for _ in range(2000):
            names = rng.sample(NAMES, people)
            roles = tuple(rng.random() < 0.5 for _ in range(people))
            statements = []
            for i in range(people):
                for _ in range(30):  # a statement whose truth matches the speaker's kind
                    formula = _formula(rng, people, i, depth, counts)
                    if holds(formula, roles) == roles[i] and _informative(formula, people):
                        break
                else:
                    formula = ["not", formula]
                statements.append(formula)
            if len(knights_solutions(statements, 2)) == 1:
                break
        else:
            raise ValueError("no knights-and-knaves puzzle with a unique answer found")
        said = "\n".join(f"{names[i]} says: \"{_sentence(render(s, names, i))}.\""
                         for i, s in enumerate(statements))
        question = ("On an island, every inhabitant is either a knight, who always tells the "
                    "truth, or a knave, who always lies. You meet "
                    f"{_join(names)}.\n\n{said}\n\nWho is a knight and who is a knave?")
        answer = ", ".join(f"{n}: {'knight' if r else 'knave'}"
                           for n, r in zip(names, roles, strict=True))
        return {"question": question, "answer": answer, "people": names,
                "statements": statements}

    def verify(self, item: dict[str, Any], candidate: str) -> str | None:
        names = list(item["people"])
        roles = []
        for name in names:
            found = re.findall(rf"\b{re.escape(name)}\b\W*(?:is\s+)?(?:an?\s+)?(knight|knave)",
                               candidate, flags=re.IGNORECASE)
            if len(set(f.lower() for f in found)) != 1:
                return f"no single kind given for {name}"
            roles.append(found[0].lower() == "knight")
        if not consistent(list(item["statements"]), tuple(roles)):
            bad = next(names[i] for i, s in enumerate(item["statements"])
                       if holds(s, tuple(roles)) != roles[i])
            return f"{bad}'s statement contradicts the kind given"
        return None

    def count_solutions(self, item: dict[str, Any], limit: int = 2) -> int:
        return len(knights_solutions(list(item["statements"]), limit))


def _sentence(text: str) -> str:
    return text[0].upper() + text[1:]


def _join(names: list[str]) -> str:
    return ", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else names[0]
