"""SynLogic's ``number_wall`` (games/tasks/number_wall): wall off islands so that each island
holds one number equal to its size, with no 2x2 block of wall and no two islands meeting at a
corner (the authors' verifier's checks, all of them here).

Built solution-first: walls everywhere, then every 2x2 block of wall is broken by a cell that
starts an island or extends one without touching another island; each island shows its size
in one random cell. Any grid meeting the rules counts, so the task is not ``unique``.
"""

from __future__ import annotations

import random
from typing import Any

from synthloom.verify.logic.base import LogicTask, register_task
from synthloom.verify.logic.numgrids import parse_grid

_ORTHO = ((0, 1), (1, 0), (0, -1), (-1, 0))
_AROUND = tuple((dr, dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1) if dr or dc)


def _islands(n: int, rng: random.Random, new_rate: float, max_size: int) -> list[list[int]] | None:
    owner = [[-1] * n for _ in range(n)]
    sizes: list[int] = []
    blocks = [(r, c) for r in range(n - 1) for c in range(n - 1)]
    rng.shuffle(blocks)
    for r, c in blocks:
        quad = [(r, c), (r, c + 1), (r + 1, c), (r + 1, c + 1)]
        if any(owner[a][b] >= 0 for a, b in quad):
            continue
        options: list[tuple[tuple[int, int], int]] = []
        for a, b in quad:
            near = {owner[a + x][b + y] for x, y in _AROUND
                    if 0 <= a + x < n and 0 <= b + y < n} - {-1}
            if not near:
                options.append(((a, b), -1))
            elif len(near) == 1:
                (isl,) = near
                touching = any(0 <= a + x < n and 0 <= b + y < n and owner[a + x][b + y] == isl
                               for x, y in _ORTHO)
                if touching and sizes[isl] < max_size:
                    options.append(((a, b), isl))
        if not options:
            return None
        fresh = [o for o in options if o[1] < 0]
        grow = [o for o in options if o[1] >= 0]
        (a, b), isl = rng.choice(fresh if fresh and (not grow or rng.random() < new_rate)
                                 else grow)
        if isl < 0:
            isl = len(sizes)
            sizes.append(0)
        owner[a][b] = isl
        sizes[isl] += 1
    return owner


def check_wall(grid: list[list[str]]) -> str | None:
    """The authors' rules on a solved grid of numbers, 'X' (island) and 'A' (wall)."""
    n = len(grid)
    for r in range(n - 1):
        for c in range(n - 1):
            if grid[r][c] == grid[r][c + 1] == grid[r + 1][c] == grid[r + 1][c + 1] == "A":
                return f"a 2x2 block of wall at row {r + 1}, column {c + 1}"
    island = [[-1] * n for _ in range(n)]
    count = 0
    for r in range(n):
        for c in range(n):
            if grid[r][c] == "A" or island[r][c] >= 0:
                continue
            cells, todo = [], [(r, c)]
            island[r][c] = count
            while todo:
                a, b = todo.pop()
                cells.append((a, b))
                for x, y in _ORTHO:
                    p, q = a + x, b + y
                    if 0 <= p < n and 0 <= q < n and grid[p][q] != "A" and island[p][q] < 0:
                        island[p][q] = count
                        todo.append((p, q))
            numbers = [int(grid[a][b]) for a, b in cells if grid[a][b].isdigit()]
            if len(numbers) != 1:
                return f"an island with {len(numbers)} numbers"
            if numbers[0] != len(cells):
                return f"the island of {numbers[0]} has {len(cells)} cells"
            count += 1
    for r in range(n - 1):
        for c in range(n - 1):
            for (a, b), (p, q) in ((((r, c), (r + 1, c + 1))), (((r, c + 1), (r + 1, c)))):
                if grid[a][b] != "A" and grid[p][q] != "A" and island[a][b] != island[p][q]:
                    return "two islands meet at a corner"
    return None


@register_task
class NumberWall(LogicTask):
    name = "number_wall"
    synlogic = "games/tasks/number_wall/scripts/number_wall.py"
    description = "wall off islands, each holding one number equal to its size"
    answer_format = "the grid as a Python list of rows: the numbers, 'X' for island cells " \
                    "and 'A' for walls, e.g. [[2, 'X', 'A'], ['A', 'A', 1], [3, 'X', 'X']]"
    # n: grid size; number_rate: chance a wall block starts a new island rather than growing
    # one (more, smaller islands); max_size: the largest island.
    levels = {1: {"n": 3, "number_rate": 0.6, "max_size": 4},
              2: {"n": 4, "number_rate": 0.5, "max_size": 5},
              3: {"n": 5, "number_rate": 0.4, "max_size": 6},
              4: {"n": 6, "number_rate": 0.3, "max_size": 8},
              5: {"n": 7, "number_rate": 0.2, "max_size": 9}}

    def generate(self, rng: random.Random, n: int = 5, number_rate: float = 0.3,
                 max_size: int = 9) -> dict[str, Any]:
        owner = None
        while owner is None:
            owner = _islands(n, rng, number_rate, max_size)
        members: dict[int, list[tuple[int, int]]] = {}
        for r in range(n):
            for c in range(n):
                if owner[r][c] >= 0:
                    members.setdefault(owner[r][c], []).append((r, c))
        solved = [["A" if owner[r][c] < 0 else "X" for c in range(n)] for r in range(n)]
        shown = [["X"] * n for _ in range(n)]
        for cells in members.values():
            r, c = rng.choice(cells)
            solved[r][c] = shown[r][c] = str(len(cells))
        board = "\n".join(["+----" * n + "+"] +
                          ["| " + "".join(f"{v:<2} | " for v in row) for row in shown])
        question = ("In this Number Wall puzzle, add walls (marked as 'A') to divide the grid "
                    "into islands. Each island must contain exactly one number, and its size "
                    f"must equal that number.\n\nGrid:\n{board}\n\nRules:\n- Each island must "
                    "contain exactly one number.\n- The total number of cells in an island "
                    "(including the number cell) must equal the value of that number.\n- All "
                    "cells within an island must be connected horizontally or vertically.\n- "
                    "All islands must be separated by walls.\n- No 2x2 block may be all walls, "
                    "and two islands may not touch at a corner.")
        answer = "[" + ", ".join("[" + ", ".join(v if v.isdigit() else f"'{v}'" for v in row)
                                 + "]" for row in solved) + "]"
        return {"question": question, "answer": answer, "n": n, "shown": shown}

    def verify(self, item: dict[str, Any], candidate: str) -> str | None:
        n = int(item["n"])
        grid = [[v.upper() for v in row] for row in parse_grid(candidate, n, n,
                                                               r"\d+|\b[XxAa]\b")]
        shown = item["shown"]
        for r in range(n):
            for c in range(n):
                if shown[r][c] != "X" and grid[r][c] != shown[r][c]:
                    return f"the number at row {r + 1}, column {c + 1} changed"
                if shown[r][c] == "X" and grid[r][c].isdigit():
                    return f"a number added at row {r + 1}, column {c + 1}"
        return check_wall(grid)
