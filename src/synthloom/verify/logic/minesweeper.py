"""SynLogic's ``minesweeper`` (games/tasks/minesweeper): name every hidden cell that must be a
mine, given the revealed numbers.

The answer is the set of hidden cells that are mines in *every* assignment consistent with the
numbers (found by search), which is what the prompt asks ("all cells that can be definitively
determined as mines"). The authors store the closure of one rule instead ("a number whose
hidden neighbours plus known mines equal it: those neighbours are mines", ``rule_closure``
here), which misses mines a fuller deduction proves: on random 8x8 boards the two agree only
a few percent of the time, and a model that proves more would be marked wrong. The answer is
unique; the verifier compares sets.
"""

from __future__ import annotations

import random
import re
from typing import Any

from synthloom.verify.logic.base import LogicTask, register_task

_AROUND = tuple((dr, dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1) if dr or dc)


def _near(r: int, c: int, n: int) -> list[tuple[int, int]]:
    return [(r + a, c + b) for a, b in _AROUND if 0 <= r + a < n and 0 <= c + b < n]


def rule_closure(shown: list[str]) -> set[tuple[int, int]]:
    """The authors' ``_find_deterministic_mines``."""
    n = len(shown)
    mines: set[tuple[int, int]] = set()
    changed = True
    while changed:
        changed = False
        for r in range(n):
            for c in range(n):
                if shown[r][c] in "0X":
                    continue
                hidden = [p for p in _near(r, c, n) if shown[p[0]][p[1]] == "X"]
                fresh = [p for p in hidden if p not in mines]
                if fresh and len(hidden) == int(shown[r][c]):
                    mines.update(fresh)
                    changed = True
    return mines


def forced_mines(shown: list[str]) -> set[tuple[int, int]]:
    """Hidden cells next to a number that are mines in every consistent assignment (cells
    next to no number are never forced: the mine count is not given). Per cell: is there a
    consistent assignment with it safe? Each assignment found clears all its safe cells."""
    n = len(shown)
    numbers = [((r, c), int(shown[r][c])) for r in range(n) for c in range(n)
               if shown[r][c] != "X"]
    hidden_near = [[p for p in _near(r, c, n) if shown[p[0]][p[1]] == "X"]
                   for (r, c), _ in numbers]
    # The two single-number rules first (all-mines when the count fills the hidden cells,
    # all-safe when it is met): they settle most cells, leaving small groups to search.
    known: dict[tuple[int, int], bool] = {}
    changed = True
    while changed:
        changed = False
        for k, (_, v) in enumerate(numbers):
            open_ = [p for p in hidden_near[k] if p not in known]
            mines = sum(known.get(p, False) for p in hidden_near[k])
            if open_ and (mines == v or mines + len(open_) == v):
                for p in open_:
                    known[p] = mines != v
                changed = True
    need = [v - sum(known.get(p, False) for p in hidden_near[k])
            for k, (_, v) in enumerate(numbers)]
    room = [sum(p not in known for p in cells) for cells in hidden_near]
    if any(not 0 <= need[k] <= room[k] for k in range(len(numbers))):
        return set()  # no consistent assignment at all (not from a real board)
    # Cells in the order the numbers reach them, so constraints close early in the search.
    frontier = list(dict.fromkeys(p for cells in hidden_near for p in cells if p not in known))
    watch = {p: [k for k, cells in enumerate(hidden_near) if p in cells] for p in frontier}
    value: dict[tuple[int, int], bool] = {}
    # Cells sharing no number are independent: search each connected group on its own.
    group = {p: p for p in frontier}

    def root(p: tuple[int, int]) -> tuple[int, int]:
        while group[p] != p:
            group[p] = group[group[p]]
            p = group[p]
        return p

    for near_cells in hidden_near:
        cells = [q for q in near_cells if q in group]
        for q in cells[1:]:
            group[root(q)] = root(cells[0])
    parts: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for p in frontier:
        parts.setdefault(root(p), []).append(p)
    cells_of = {p: parts[root(p)] for p in frontier}
    linked = {p: {q for k in watch[p] for q in hidden_near[k] if q in watch and q != p}
              for p in frontier}

    def outward(fixed: tuple[int, int]) -> list[tuple[int, int]]:
        """The group's cells by distance from ``fixed``: a contradiction shows up near it."""
        order, seen = [fixed], {fixed}
        for p in order:
            for q in sorted(linked[p] - seen):
                seen.add(q)
                order.append(q)
        return order

    def search(i: int, fixed: tuple[int, int], order: list[tuple[int, int]]) -> bool:
        if i == len(order):
            return True
        p = order[i]
        for mine in ((False,) if p == fixed else (False, True)):
            ok = True
            for k in watch[p]:
                need[k] -= mine
                room[k] -= 1
                ok = ok and 0 <= need[k] <= room[k]
            if ok:
                value[p] = mine
                if search(i + 1, fixed, order):
                    for k in watch[p]:
                        need[k] += mine
                        room[k] += 1
                    return True
            for k in watch[p]:
                need[k] += mine
                room[k] += 1
        return False

    cleared: set[tuple[int, int]] = set()
    forced = {p for p, mine in known.items() if mine}
    for p in frontier:
        if p in cleared:
            continue
        if search(0, p, outward(p)):
            cleared.update(q for q in cells_of[p] if not value[q])
        else:
            forced.add(p)
    return forced


@register_task
class Minesweeper(LogicTask):
    name = "minesweeper"
    synlogic = "games/tasks/minesweeper/scripts/minesweeper.py"
    description = "list every hidden cell that the revealed numbers prove to be a mine"
    answer_format = "the mines' (row, column), 0-based, as a list, e.g. [(0, 1), (2, 3)]"
    unique = True
    levels = {1: {"n": 4, "mine_den": 0.2, "reveal_frac": 0.6},
              2: {"n": 5, "mine_den": 0.2, "reveal_frac": 0.5},
              3: {"n": 6, "mine_den": 0.2, "reveal_frac": 0.4},
              4: {"n": 8, "mine_den": 0.2, "reveal_frac": 0.4},
              5: {"n": 8, "mine_den": 0.25, "reveal_frac": 0.3}}

    def generate(self, rng: random.Random, n: int = 8, mine_den: float = 0.2,
                 reveal_frac: float = 0.4) -> dict[str, Any]:
        cells = [(r, c) for r in range(n) for c in range(n)]
        while True:
            mines = set(rng.sample(cells, int(n * n * mine_den)))
            safe = [p for p in cells if p not in mines]
            revealed = set(rng.sample(safe, max(1, int(len(safe) * reveal_frac))))
            shown = ["".join(str(sum(q in mines for q in _near(r, c, n)))
                             if (r, c) in revealed else "X" for c in range(n)) for r in range(n)]
            found = forced_mines(shown)
            if found:
                break
        question = (f"You are given a {n} x {n} grid representing a Minesweeper game. In this "
                    "puzzle, you need to identify all cells that can be definitively determined "
                    "as mines based on the currently revealed cells.\n1. Rules:\n  1. Each cell "
                    "can be either a mine, a number (0-8), or an unrevealed cell (X).\n  2. "
                    "Numbers indicate how many mines are in the 8 adjacent cells (horizontally, "
                    "vertically, and diagonally).\n2. Input:\n" +
                    "\n".join(" ".join(row) for row in shown) +
                    "\nRows and columns are numbered from 0.")
        return {"question": question, "answer": str(sorted(found)), "n": n, "shown": shown,
                "mines": [list(p) for p in sorted(found)]}

    def verify(self, item: dict[str, Any], candidate: str) -> str | None:
        pairs = re.findall(r"\(\s*(\d+)\s*,\s*(\d+)\s*\)", candidate)
        if not pairs and candidate.strip() not in ("[]", ""):
            return "not a list of (row, column) pairs"
        got = {(int(r), int(c)) for r, c in pairs}
        want = {tuple(p) for p in item["mines"]}  # unique: the numbers force exactly these
        if got - want:
            return f"not proven mines: {sorted(got - want)}"
        if want - got:
            return f"{len(want - got)} proven mine(s) missing"
        return None

    def count_solutions(self, item: dict[str, Any], limit: int = 2) -> int | None:
        # One answer when the stored mines are exactly the forced ones (recomputed).
        shown = [str(row) for row in item["shown"]]
        return 1 if forced_mines(shown) == {tuple(p) for p in item["mines"]} else 0
