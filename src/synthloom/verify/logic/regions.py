"""SynLogic's region puzzles: ``star_placement_puzzle`` (Star Battle,
games/tasks/star_placement_puzzle) and ``calcudoko`` (KenKen, games/tasks/calcudoko).

The regions are grown from one random solution; the verifiers check the rules, so any
solution counts (as the authors' verifiers do) and neither task is ``unique``. Calcudoko
departs from the authors' generator in one place: a two-cell "÷" cage is only made when the
division is exact (theirs takes ``max(a // b, b // a)``, which their own verifier, dividing
exactly, then rejects for e.g. 5 and 2).
"""

from __future__ import annotations

import math
import random
import re
import string
from itertools import combinations
from typing import Any

from synthloom.verify.logic.base import LogicTask, register_task
from synthloom.verify.logic.numgrids import latin_problem, latin_square, parse_grid

_STEPS = ((0, 1), (1, 0), (0, -1), (-1, 0))


def _stars(rng: random.Random, n: int, k: int) -> list[tuple[int, int]] | None:
    """k stars per row and column, none touching (diagonals included), by randomized
    backtracking row by row over column bitmasks; None when the search gives up."""
    combos = _combos(n, k)
    counts = [0] * n
    rows: list[int] = []
    budget = [20000]

    def place(r: int, full: int) -> bool:
        budget[0] -= 1
        if budget[0] < 0:
            return False
        if r == n:
            return True
        prev = rows[-1] if rows else 0
        blocked = full | prev | (prev << 1) | (prev >> 1)
        choices = [m for m in combos if not m & blocked]
        rng.shuffle(choices)
        left = n - r - 1
        for mask in choices:
            cols = [c for c in range(n) if mask >> c & 1]
            for c in cols:
                counts[c] += 1
            if all(k - v <= left for v in counts):  # every column can still fill up
                rows.append(mask)
                now_full = full | sum(1 << c for c in cols if counts[c] == k)
                if place(r + 1, now_full):
                    return True
                rows.pop()
            for c in cols:
                counts[c] -= 1
        return False

    if not place(0, 0):
        return None
    return [(r, c) for r, mask in enumerate(rows) for c in range(n) if mask >> c & 1]


_COMBOS: dict[tuple[int, int], list[int]] = {}


def _combos(n: int, k: int) -> list[int]:
    """Column bitmasks of k stars in one row, none side by side."""
    if (n, k) not in _COMBOS:
        _COMBOS[n, k] = [sum(1 << c for c in cols) for cols in combinations(range(n), k)
                         if all(b - a >= 2 for a, b in zip(cols, cols[1:], strict=False))]
    return _COMBOS[n, k]


def grow_regions(rng: random.Random, n: int, seeds: list[list[tuple[int, int]]],
                 blocked: frozenset[tuple[int, int]] = frozenset()) -> list[list[int]] | None:
    """Region index per cell (-1 for ``blocked`` cells): each region starts at its seed cells
    and takes a random free neighbour of one of its cells in turn until the grid is full;
    None when free cells are left that no region can reach."""
    region = [[-1] * n for _ in range(n)]
    frontier: list[list[tuple[int, int]]] = []
    for i, cells in enumerate(seeds):
        for r, c in cells:
            region[r][c] = i
        frontier.append(list(cells))
    free = n * n - sum(len(s) for s in seeds) - len(blocked)
    growing = list(range(len(seeds)))
    while free:
        if not growing:
            return None
        i = rng.choice(growing)
        options = [(r + dr, c + dc) for r, c in frontier[i] for dr, dc in _STEPS
                   if 0 <= r + dr < n and 0 <= c + dc < n and region[r + dr][c + dc] < 0
                   and (r + dr, c + dc) not in blocked]
        if not options:
            growing.remove(i)
            continue
        r, c = rng.choice(options)
        region[r][c] = i
        frontier[i].append((r, c))
        free -= 1
    return region


@register_task
class StarPlacement(LogicTask):
    name = "star_placement_puzzle"
    synlogic = "games/tasks/star_placement_puzzle/scripts/star_placement_puzzle.py"
    description = "Star Battle: k stars per row, column and lettered region, none touching"
    answer_format = "a Python dictionary from region letter to its stars' (row, column), " \
                    "1-based, e.g. {'A': [(1, 1)], 'B': [(3, 2)], 'C': [(2, 4)]}"
    levels = {1: {"n": 4, "k": 1}, 2: {"n": 5, "k": 1}, 3: {"n": 6, "k": 1},
              4: {"n": 8, "k": 1}, 5: {"n": 10, "k": 2}}

    def generate(self, rng: random.Random, n: int = 5, k: int = 1) -> dict[str, Any]:
        stars = None
        while stars is None:
            stars = _stars(rng, n, k)
        # Group the stars k at a time (k = 2: a star with its nearest ungrouped one).
        left, seeds = list(stars), []
        rng.shuffle(left)
        while left:
            first = left.pop()
            left.sort(key=lambda s: abs(s[0] - first[0]) + abs(s[1] - first[1]))
            seeds.append([first, *left[:k - 1]])
            del left[:k - 1]
        region = grow_regions(rng, n, seeds)
        assert region is not None  # nothing blocked: every cell is reachable
        grid = [[string.ascii_uppercase[i] for i in row] for row in region]
        answer = {string.ascii_uppercase[i]: sorted((r + 1, c + 1) for r, c in cells)
                  for i, cells in enumerate(seeds)}
        board = ",\n".join("    [" + ", ".join(f'"{v}"' for v in row) + "]" for row in grid)
        question = (f"Given an {n} x {n} grid divided into regions marked with different "
                    f"letters, place stars so that each row, column, and region contains "
                    f"exactly {k} star{'s' if k > 1 else ''}, and no stars are adjacent to each "
                    f"other (horizontally, vertically, or diagonally).\n\nGiven the following "
                    f"region grid:\n\n[\n{board}\n]\n\nList the stars of each region by region "
                    "letter in alphabetical order; within a region, by row, then column.")
        return {"question": question, "answer": str(dict(sorted(answer.items()))),
                "n": n, "k": k, "regions": ["".join(row) for row in grid]}

    def verify(self, item: dict[str, Any], candidate: str) -> str | None:
        n, k, regions = int(item["n"]), int(item["k"]), list(item["regions"])
        stars: list[tuple[int, int]] = []
        for letter, body in re.findall(r"['\"]?([A-Za-z])['\"]?\s*:\s*\[([^\]]*)\]", candidate):
            for r, c in re.findall(r"\(\s*(\d+)\s*,\s*(\d+)\s*\)", body):
                r, c = int(r) - 1, int(c) - 1
                if not (0 <= r < n and 0 <= c < n):
                    return f"({r + 1}, {c + 1}) is off the grid"
                if regions[r][c] != letter.upper():
                    return f"({r + 1}, {c + 1}) is not in region {letter.upper()}"
                stars.append((r, c))
        if len(set(stars)) != len(stars) or len(stars) != n * k:
            return f"expected {n * k} distinct stars, got {len(set(stars))}"
        for i in range(n):
            if sum(r == i for r, _ in stars) != k or sum(c == i for _, c in stars) != k:
                return f"row or column {i + 1} does not hold exactly {k}"
        letters = {ch for row in regions for ch in row}
        for letter in letters:
            if sum(regions[r][c] == letter for r, c in stars) != k:
                return f"region {letter} does not hold exactly {k}"
        for a, b in ((a, b) for i, a in enumerate(stars) for b in stars[i + 1:]):
            if max(abs(a[0] - b[0]), abs(a[1] - b[1])) == 1:
                return f"stars at {a} and {b} touch"
        return None


def _cage_target(values: list[int], op: str) -> int:
    if op == "+":
        return sum(values)
    if op == "*":
        return math.prod(values)
    if op == "-":
        return abs(values[0] - values[1])
    return max(values) // min(values)


def cage_holds(values: list[int], op: str, target: int) -> bool:
    if op in "+*":
        return _cage_target(values, op) == target
    if len(values) != 2:
        return False
    if op == "-":
        return abs(values[0] - values[1]) == target
    hi, lo = max(values), min(values)
    return hi == lo * target  # exact division, either order


@register_task
class Calcudoko(LogicTask):
    name = "calcudoko"
    synlogic = "games/tasks/calcudoko/scripts/calcudoko.py"
    description = "KenKen: a Latin square whose cages meet their target under + - * ÷"
    answer_format = "the rows in double square brackets, numbers separated by spaces and rows " \
                    "by commas, e.g. [[1 2 3,2 3 1,3 1 2]]"
    levels = {1: {"grid_size": 4, "max_region": 2}, 2: {"grid_size": 4, "max_region": 3},
              3: {"grid_size": 5, "max_region": 4}, 4: {"grid_size": 6, "max_region": 4},
              5: {"grid_size": 7, "max_region": 4}}

    def generate(self, rng: random.Random, grid_size: int = 4,
                 max_region: int = 4) -> dict[str, Any]:
        n = grid_size
        while True:
            grid = latin_square(rng, n)
            cages = self._cages(rng, grid, n, max_region)
            if cages is not None:
                break
        lines = "\n".join("".join(f"({r + 1},{c + 1})" for r, c in cells) + f":{target}{op}"
                          for cells, target, op in cages)
        question = (f"You are playing a Calcudoko puzzle on a {n}×{n} grid. The grid is divided "
                    "into regions, each with a target number and an operator. Fill numbers 1 to "
                    f"{n} in each row and column, ensuring no number repeats in any row, column, "
                    "or region. For example, (1,1)(2,1)(3,1):12+ means the sum of numbers in "
                    "those cells must be 12; for - and ÷ (two cells) either order counts.\n\n"
                    f"Regions:\n{lines}")
        answer = "[[" + ",".join(" ".join(map(str, row)) for row in grid) + "]]"
        return {"question": question, "answer": answer, "n": n,
                "cages": [[[list(p) for p in cells], target, op] for cells, target, op in cages]}

    @staticmethod
    def _cages(rng: random.Random, grid: list[list[int]], n: int,
               max_region: int) -> list[tuple[list[tuple[int, int]], int, str]] | None:
        """The authors' cages: random walks of 2..max_region cells with distinct numbers. A
        cell left alone joins a neighbouring cage without its number (None when none can
        take it; the caller draws again)."""
        owner: dict[tuple[int, int], int] = {}
        groups: list[list[tuple[int, int]]] = []
        order = [(r, c) for r in range(n) for c in range(n)]
        rng.shuffle(order)

        def around(cells: list[tuple[int, int]]) -> list[tuple[int, int]]:
            return [(r + dr, c + dc) for r, c in cells for dr, dc in _STEPS
                    if 0 <= r + dr < n and 0 <= c + dc < n]

        for start in order:
            if start in owner:
                continue
            cells = [start]
            size = rng.randint(2, max(2, max_region))
            while len(cells) < size:
                values = {grid[r][c] for r, c in cells}
                options = [p for p in around(cells) if p not in owner and p not in cells
                           and grid[p[0]][p[1]] not in values]
                if not options:
                    break
                cells.append(rng.choice(options))
            if len(cells) < 2:
                value = grid[start[0]][start[1]]
                hosts = sorted({owner[p] for p in around(cells) if p in owner
                                and value not in {grid[r][c] for r, c in groups[owner[p]]}})
                if not hosts:
                    return None
                host = rng.choice(hosts)
                groups[host].append(start)
                owner[start] = host
                continue
            for p in cells:
                owner[p] = len(groups)
            groups.append(cells)
        cages = []
        for cells in groups:
            values = [grid[r][c] for r, c in cells]
            if len(cells) == 2:
                hi, lo = max(values), min(values)
                op = rng.choice(["-", "÷"]) if hi % lo == 0 else "-"
            else:
                op = rng.choice(["+", "*"])
            cages.append((sorted(cells), _cage_target(values, op), op))
        return cages

    def verify(self, item: dict[str, Any], candidate: str) -> str | None:
        n = int(item["n"])
        grid = [[int(v) for v in row] for row in parse_grid(candidate, n, n)]
        reason = latin_problem(grid, n)
        if reason:
            return reason
        for cells, target, op in item["cages"]:
            values = [grid[r][c] for r, c in cells]
            if len(set(values)) != len(values) or not cage_holds(values, op, target):
                where = "".join(f"({r + 1},{c + 1})" for r, c in cells)
                return f"the region {where}:{target}{op} does not hold"
        return None
