"""Zebra (Einstein) puzzles: houses in a row, attributes as permutations, clues; one solution.

The solver is a small constraint-propagation search: every attribute value is a variable whose
domain is a bitmask of houses; clues are unary (house k / not house k) or binary relations
(same house, different houses, directly left of, next to, somewhere left of), each propagated
to arc consistency; values of one attribute are all different (a singleton removes its house
from its siblings; a house left to one value only fixes it). It counts solutions up to a limit.
The generator draws a hidden solution, adds true clues in random order until the solver counts
exactly one solution, then removes clues that are not needed (each removal re-checked).
"""

from __future__ import annotations

import random
import re
from typing import Any

from synthloom.verify.logic.base import LogicTask, register_task

ATTRIBUTES: dict[str, tuple[list[str], str]] = {
    # attribute: (values, how a value names its house's person)
    "color": (["red", "green", "blue", "yellow", "white"], "the person in the {} house"),
    "pet": (["dog", "cat", "bird", "fish", "horse"], "the {} owner"),
    "drink": (["tea", "coffee", "milk", "juice", "water"], "the {} drinker"),
    "job": (["doctor", "teacher", "pilot", "baker", "farmer"], "the {}"),
    "hobby": (["chess", "painting", "hiking", "reading", "gardening"], "the {} fan"),
}

#: relation → (test on houses (a, b), inverse relation)
RELATIONS = {
    "same": (lambda a, b: a == b, "same"),
    "differ": (lambda a, b: a != b, "differ"),
    "left_of": (lambda a, b: a + 1 == b, "right_of"),
    "right_of": (lambda a, b: a == b + 1, "left_of"),
    "next_to": (lambda a, b: abs(a - b) == 1, "next_to"),
    "before": (lambda a, b: a < b, "after"),
    "after": (lambda a, b: a > b, "before"),
}
BINARY = ["same", "differ", "left_of", "next_to", "before"]


class ZebraSolver:
    """Counts the solutions of a clue list over ``houses`` houses and the given attributes."""

    def __init__(self, houses: int, attributes: list[str], clues: list[list]) -> None:
        self.n = houses
        self.values = [(a, v) for a in attributes for v in ATTRIBUTES[a][0][:houses]]
        self.index = {item: i for i, item in enumerate(self.values)}
        self.groups = [[self.index[(a, v)] for v in ATTRIBUTES[a][0][:houses]]
                       for a in attributes]
        full = (1 << houses) - 1
        self.start = [full] * len(self.values)
        self.arcs: list[list[tuple[int, list[int]]]] = [[] for _ in self.values]
        support = {rel: [sum(1 << b for b in range(houses) if test(a, b))
                         for a in range(houses)] for rel, (test, _) in RELATIONS.items()}
        for clue in clues:
            kind = clue[0]
            x = self.index[tuple(clue[1])]
            if kind == "at":
                self.start[x] &= 1 << (clue[2] - 1)
            elif kind == "not_at":
                self.start[x] &= ~(1 << (clue[2] - 1))
            else:
                y = self.index[tuple(clue[2])]
                self.arcs[x].append((y, support[kind]))
                self.arcs[y].append((x, support[RELATIONS[kind][1]]))

    def _propagate(self, dom: list[int], queue: list[int]) -> bool:
        while queue:
            x = queue.pop()
            dx = dom[x]
            for y, table in self.arcs[x]:
                allowed = 0
                bits = dx
                while bits:
                    low = bits & -bits
                    allowed |= table[low.bit_length() - 1]
                    bits ^= low
                new = dom[y] & allowed
                if new != dom[y]:
                    if not new:
                        return False
                    dom[y] = new
                    queue.append(y)
            if dx & (dx - 1) == 0:  # a singleton: its house is taken for the siblings
                for group in self.groups:
                    if x in group:
                        for y in group:
                            if y != x and dom[y] & dx:
                                dom[y] &= ~dx
                                if not dom[y]:
                                    return False
                                queue.append(y)
                        break
        for group in self.groups:  # a house only one value can take is that value's
            for house in range(self.n):
                bit = 1 << house
                holders = [y for y in group if dom[y] & bit]
                if not holders:
                    return False
                if len(holders) == 1 and dom[holders[0]] != bit:
                    dom[holders[0]] = bit
                    return self._propagate(dom, [holders[0]])
        return True

    def count(self, limit: int = 2) -> list[list[int]]:
        found: list[list[int]] = []
        dom = list(self.start)
        if not self._propagate(dom, list(range(len(dom)))):
            return found

        def search(dom: list[int]) -> bool:
            best, best_k = -1, self.n + 1
            for i, d in enumerate(dom):
                k = d.bit_count()
                if 1 < k < best_k:
                    best, best_k = i, k
            if best < 0:
                found.append([d.bit_length() - 1 for d in dom])
                return len(found) >= limit
            bits = dom[best]
            while bits:
                low = bits & -bits
                bits ^= low
                trial = list(dom)
                trial[best] = low
                if self._propagate(trial, [best]) and search(trial):
                    return True
            return False

        search(dom)
        return found


def _true_clue(rng: random.Random, solution: dict[tuple[str, str], int],
               houses: int) -> list:
    items = list(solution)
    x = rng.choice(items)
    roll = rng.random()
    if roll < 0.12:
        return ["at", list(x), solution[x] + 1]
    if roll < 0.22:
        wrong = [h for h in range(houses) if h != solution[x]]
        return ["not_at", list(x), rng.choice(wrong) + 1]
    for _ in range(50):
        y = rng.choice(items)
        if y[0] == x[0]:
            continue  # two values of one attribute are trivially in different houses
        kind = rng.choice(BINARY)
        if RELATIONS[kind][0](solution[x], solution[y]):
            return [kind, list(x), list(y)]
    same = next(y for y in items if y[0] != x[0] and solution[y] == solution[x])
    return ["same", list(x), list(same)]


def _name(item: list | tuple) -> str:
    return ATTRIBUTES[item[0]][1].format(item[1])


def render_clue(clue: list) -> str:
    kind, x = clue[0], _name(clue[1])
    if kind == "at":
        text = f"{x} lives in house {clue[2]}"
    elif kind == "not_at":
        text = f"{x} does not live in house {clue[2]}"
    else:
        y = _name(clue[2])
        text = {"same": f"{x} is the same person as {y}",
                "differ": f"{x} and {y} live in different houses",
                "left_of": f"{x} lives directly left of {y}",
                "next_to": f"{x} lives next to {y}",
                "before": f"{x} lives somewhere to the left of {y}"}[kind]
    return text[0].upper() + text[1:] + "."


@register_task
class Zebra(LogicTask):
    name = "zebra"
    synlogic = "corpus/misc/tasks/zebra_puzzle/scripts/zebra_puzzle_verifier.py"
    description = "a zebra (Einstein) puzzle: who lives where, from clues (one solution)"
    answer_format = ("one group per house from house 1 to the last, groups separated by "
                     "semicolons, each group listing that house's values separated by commas, "
                     "e.g. red, dog, tea; blue, cat, milk; green, bird, juice")
    unique = True
    levels = {1: {"houses": 3, "attributes": 2}, 2: {"houses": 3, "attributes": 3},
              3: {"houses": 4, "attributes": 3}, 4: {"houses": 5, "attributes": 3},
              5: {"houses": 5, "attributes": 4}}

    def generate(self, rng: random.Random, houses: int = 4, attributes: int = 3,
                 prune: bool = True) -> dict[str, Any]:
        if not 2 <= houses <= 5 or not 1 <= attributes <= len(ATTRIBUTES):
            raise ValueError(f"zebra: 2-5 houses, 1-{len(ATTRIBUTES)} attributes")
        names = rng.sample(sorted(ATTRIBUTES), attributes)
        solution: dict[tuple[str, str], int] = {}
        for attr in names:
            values = ATTRIBUTES[attr][0][:houses]
            for value, house in zip(values, rng.sample(range(houses), houses), strict=True):
                solution[(attr, value)] = house
        clues: list[list] = []
        while len(ZebraSolver(houses, names, clues).count(2)) > 1:
            clue = _true_clue(rng, solution, houses)
            if clue not in clues:
                clues.append(clue)
        if prune:  # drop clues the others already imply; the answer stays unique
            for clue in rng.sample(clues, len(clues)):
                rest = [c for c in clues if c is not clue]
                if len(ZebraSolver(houses, names, rest).count(2)) == 1:
                    clues = rest
        listing = "\n".join(f"- {attr}: {', '.join(ATTRIBUTES[attr][0][:houses])}"
                            for attr in names)
        numbered = "\n".join(f"{i}. {render_clue(c)}" for i, c in enumerate(clues, 1))
        question = (f"There are {houses} houses in a row, numbered 1 to {houses} from left to "
                    f"right, each with one person. Each house has a different value of each "
                    f"attribute:\n{listing}\n\nClues:\n{numbered}\n\nWhich values belong to "
                    f"each house? List each house's values in the order "
                    f"{', '.join(names)}.")
        by_house = [[v for attr in names for (a, v), h in solution.items()
                     if a == attr and h == house] for house in range(houses)]
        answer = "; ".join(", ".join(group) for group in by_house)
        return {"question": question, "answer": answer, "houses": houses,
                "attributes": names, "clues": clues}

    def verify(self, item: dict[str, Any], candidate: str) -> str | None:
        houses, names = int(item["houses"]), list(item["attributes"])
        owner = {v: a for a in names for v in ATTRIBUTES[a][0][:houses]}
        groups = [g for g in re.split(r"[;\n|]", candidate) if g.strip()]
        if len(groups) != houses:
            return f"expected {houses} houses, got {len(groups)}"
        position: dict[tuple[str, str], int] = {}
        for house, group in enumerate(groups):
            group = re.sub(r"(?i)^\s*house\s*\d+\s*[:=-]?", "", group)
            words = [w.lower() for w in re.findall(r"[A-Za-z]+", group)]
            values = [w for w in words if w in owner]
            if sorted(owner[v] for v in values) != sorted(names):
                return f"house {house + 1} needs one value of each of {', '.join(names)}"
            for value in values:
                if (owner[value], value) in position:
                    return f"{value} is given to two houses"
                position[(owner[value], value)] = house
        for clue in item["clues"]:
            x = position[tuple(clue[1])]
            kind = clue[0]
            ok = (x == clue[2] - 1 if kind == "at" else x != clue[2] - 1 if kind == "not_at"
                  else RELATIONS[kind][0](x, position[tuple(clue[2])]))
            if not ok:
                return f"breaks the clue: {render_clue(clue)}"
        return None

    def count_solutions(self, item: dict[str, Any], limit: int = 2) -> int:
        solver = ZebraSolver(int(item["houses"]), list(item["attributes"]), list(item["clues"]))
        return len(solver.count(limit))
