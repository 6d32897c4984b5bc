"""SynLogic's placement puzzles: ``campsite`` (Tents, games/tasks/campsite) and ``norinori``
(games/tasks/norinori).

Both are built solution-first (the authors place trees, or regions, and then search for a
solution; here the tents or dominoes come first and the clues are read off them), and both
verifiers check the rules as the authors' do, so any solution counts: not ``unique``.
"""

from __future__ import annotations

import random
import re
from typing import Any

from synthloom.verify.logic.base import LogicTask, register_task
from synthloom.verify.logic.numgrids import parse_grid
from synthloom.verify.logic.regions import grow_regions

_ORTHO = ((0, 1), (1, 0), (0, -1), (-1, 0))
_AROUND = tuple((dr, dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1) if dr or dc)


def _inside(r: int, c: int, n: int, m: int) -> bool:
    return 0 <= r < n and 0 <= c < m


def perfect_matching(left: list[Any], edges: dict[Any, list[Any]]) -> bool:
    """Every item of ``left`` matched to a distinct neighbour (Kuhn's augmenting paths)."""
    owner: dict[Any, Any] = {}

    def augment(node: Any, seen: set[Any]) -> bool:
        for other in edges[node]:
            if other not in seen:
                seen.add(other)
                if other not in owner or augment(owner[other], seen):
                    owner[other] = node
                    return True
        return False

    return all(augment(node, set()) for node in left)


@register_task
class Campsite(LogicTask):
    name = "campsite"
    synlogic = "games/tasks/campsite/scripts/campsite.py"
    description = "Tents: one tent per tree beside it, no tents touching, row/column counts"
    answer_format = "the grid as a Python list of rows of 'T', 'C' (tent) and 'X', e.g. " \
                    "[['T', 'C', 'X'], ['X', 'X', 'X'], ['C', 'T', 'X']]"
    # n x m grid; tree_density: trees per cell (the authors clamp it to 0.1-0.4).
    levels = {1: {"n": 4, "m": 4, "tree_density": 0.2}, 2: {"n": 5, "m": 5, "tree_density": 0.2},
              3: {"n": 5, "m": 10, "tree_density": 0.2}, 4: {"n": 8, "m": 8, "tree_density": 0.2},
              5: {"n": 10, "m": 10, "tree_density": 0.25}}

    def generate(self, rng: random.Random, n: int = 5, m: int = 10,
                 tree_density: float = 0.2) -> dict[str, Any]:
        density = min(max(tree_density, 0.1), 0.4)
        want = max(1, int(n * m * density))
        grid = [["X"] * m for _ in range(n)]
        cells = [(r, c) for r in range(n) for c in range(m)]
        rng.shuffle(cells)
        placed = 0
        for r, c in cells:  # a tent where no tent touches it, with a free side for its tree
            if placed == want or grid[r][c] != "X":
                continue
            if any(_inside(r + a, c + b, n, m) and grid[r + a][c + b] == "C" for a, b in _AROUND):
                continue
            sides = [(r + a, c + b) for a, b in _ORTHO
                     if _inside(r + a, c + b, n, m) and grid[r + a][c + b] == "X"]
            if not sides:
                continue
            tr, tc = rng.choice(sides)
            grid[r][c], grid[tr][tc] = "C", "T"
            placed += 1
        rows = [row.count("C") for row in grid]
        cols = [sum(grid[r][c] == "C" for r in range(n)) for c in range(m)]
        shown = [["T" if v == "T" else "X" for v in row] for row in grid]
        board = "\n".join(" ".join(row) + f" {rows[i]}" for i, row in enumerate(shown))
        board += "\n" + " ".join(map(str, cols))
        question = (f"You are given a {n} x {m} grid representing a Campsite puzzle. In the grid:"
                    "\n- 'T' represents a tree.\n- 'X' represents an empty space where a tent "
                    "can be placed.\n- Row and column constraints indicating the exact number of "
                    "tents ('C') to be placed in each row and column.\n1. Rules:\n  1. Each tent "
                    "(C) must be orthogonally adjacent to a tree (T), each tree with its own "
                    "tent.\n  2. Tents (C) cannot be adjacent to each other (including "
                    "diagonally).\n  3. The number of tents in each row must match the row "
                    "constraints.\n  4. The number of tents in each column must match the column "
                    "constraints.\n  5. The number of tents must be equal to the number of trees."
                    f"\n2. Input (each row's count at its end, the columns' counts below):\n{board}")
        return {"question": question, "answer": str(grid), "n": n, "m": m,
                "trees": ["".join(row) for row in shown], "row_counts": rows,
                "col_counts": cols}

    def verify(self, item: dict[str, Any], candidate: str) -> str | None:
        n, m = int(item["n"]), int(item["m"])
        grid = [[v.upper() for v in row] for row in parse_grid(candidate, n, m, r"\b[TCXtcx]\b")]
        trees = [str(row) for row in item["trees"]]
        for r in range(n):
            for c in range(m):
                if (grid[r][c] == "T") != (trees[r][c] == "T"):
                    return f"the trees moved (row {r + 1}, column {c + 1})"
        if [row.count("C") for row in grid] != list(item["row_counts"]):
            return "the row counts do not match"
        if [sum(grid[r][c] == "C" for r in range(n)) for c in range(m)] != \
                list(item["col_counts"]):
            return "the column counts do not match"
        tents = [(r, c) for r in range(n) for c in range(m) if grid[r][c] == "C"]
        tree_cells = [(r, c) for r in range(n) for c in range(m) if grid[r][c] == "T"]
        spots = set(tents)
        if any((r + a, c + b) in spots for r, c in tents for a, b in _AROUND):
            return "two tents touch"
        if len(tents) != len(tree_cells):
            return "not one tent per tree"
        beside = {t: [(t[0] + a, t[1] + b) for a, b in _ORTHO
                      if (t[0] + a, t[1] + b) in set(tree_cells)] for t in tents}
        if not perfect_matching(tents, beside):
            return "tents and trees cannot be paired one to one"
        return None


def _dominoes(rng: random.Random, n: int, count: int) -> list[tuple[tuple[int, int], ...]]:
    """Up to ``count`` dominoes, none sharing an edge with another (corners may touch)."""
    taken: set[tuple[int, int]] = set()
    out: list[tuple[tuple[int, int], ...]] = []
    cells = [(r, c) for r in range(n) for c in range(n)]
    rng.shuffle(cells)
    for r, c in cells:
        if len(out) == count:
            break
        a, b = rng.choice(((0, 1), (1, 0)))
        pair = ((r, c), (r + a, c + b))
        if not _inside(r + a, c + b, n, n) or any(p in taken for p in pair):
            continue
        near = {(x + dx, y + dy) for x, y in pair for dx, dy in _ORTHO} - set(pair)
        if near & taken:
            continue
        taken.update(pair)
        out.append(pair)
    return out


@register_task
class Norinori(LogicTask):
    name = "norinori"
    synlogic = "games/tasks/norinori/scripts/norinori.py"
    description = "cover exactly two cells of every region with dominoes that share no edge"
    answer_format = "the dominoes as a list of coordinate pairs, 1-based, e.g. " \
                    "[[(1,2), (1,3)], [(3,1), (4,1)]]"
    # n x n; regions (one per region domino); shadow_dominoes: dominoes over 'X' cells.
    levels = {1: {"n": 4, "regions": 3, "shadow_dominoes": 0},
              2: {"n": 5, "regions": 4, "shadow_dominoes": 1},
              3: {"n": 6, "regions": 6, "shadow_dominoes": 1},
              4: {"n": 7, "regions": 8, "shadow_dominoes": 1},
              5: {"n": 8, "regions": 10, "shadow_dominoes": 2}}

    def generate(self, rng: random.Random, n: int = 6, regions: int = 6,
                 shadow_dominoes: int = 1) -> dict[str, Any]:
        while True:
            placed = _dominoes(rng, n, regions + shadow_dominoes)
            if len(placed) < regions + shadow_dominoes:
                continue
            seeds, shadows = placed[:regions], placed[regions:]
            shadow_cells = frozenset(p for pair in shadows for p in pair)
            # Each region: one domino's two cells plus uncovered cells grown around them, so
            # it holds exactly two covered cells. Shadow cells belong to no region.
            region_of = grow_regions(rng, n, [list(pair) for pair in seeds], shadow_cells)
            if region_of is not None:  # else a cell walled in by shadows: draw again
                break
        letters = [["X" if (r, c) in shadow_cells else chr(65 + region_of[r][c])
                    for c in range(n)] for r in range(n)]
        answer = "[" + ", ".join(f"[({a[0] + 1},{a[1] + 1}), ({b[0] + 1},{b[1] + 1})]"
                                 for a, b in sorted(placed)) + "]"
        board = "\n".join("  ".join(row) for row in letters)
        question = (f"This is a {n} x {n} Norinori puzzle.\n\n## Rules:\n- Each region must "
                    "have exactly two cells covered by dominoes.\n- Dominoes can cross region "
                    "boundaries.\n- Dominoes cannot share edges (i.e., cannot be orthogonally "
                    "adjacent), but they can touch diagonally.\n- Cells marked with 'X' are "
                    "shadow cells that do not belong to any region, but must be part of a "
                    f"domino.\n\n## Grid:\n{board}\n\nList each domino as a pair of "
                    "coordinates (1-indexed, top-left is (1,1)).")
        return {"question": question, "answer": answer, "n": n,
                "regions": ["".join(row) for row in letters]}

    def verify(self, item: dict[str, Any], candidate: str) -> str | None:
        n, grid = int(item["n"]), [str(row) for row in item["regions"]]
        nums = [int(v) - 1 for v in re.findall(r"\d+", candidate)]
        if not nums or len(nums) % 4:
            return "not a list of coordinate pairs"
        pairs = [((nums[i], nums[i + 1]), (nums[i + 2], nums[i + 3]))
                 for i in range(0, len(nums), 4)]
        cells: set[tuple[int, int]] = set()
        for a, b in pairs:
            if not all(_inside(*p, n, n) for p in (a, b)):
                return "a domino is off the grid"
            if abs(a[0] - b[0]) + abs(a[1] - b[1]) != 1:
                return f"{a}, {b} is not a domino"
            if a in cells or b in cells:
                return "two dominoes overlap"
            cells.update((a, b))
        for a, b in pairs:
            near = {(x + dx, y + dy) for x, y in (a, b) for dx, dy in _ORTHO} - {a, b}
            if near & cells:
                return "two dominoes share an edge"
        letters = {ch for row in grid for ch in row} - {"X"}
        for letter in letters:
            if sum(grid[r][c] == letter for r, c in cells) != 2:
                return f"region {letter} does not have exactly two covered cells"
        if any(grid[r][c] == "X" and (r, c) not in cells for r in range(n) for c in range(n)):
            return "a shadow cell is not covered"
        return None
