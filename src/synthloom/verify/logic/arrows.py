"""SynLogic's ``arrow_maze``, after games/tasks/arrow_maze: fill every empty cell of a grid with
one of eight arrows so that each number equals the total length of the arrow rays leaving it
(a ray: the cells next to the number, then onward, holding the arrow that points that way),
and every arrow lies on some number's ray.

The verifier applies the authors' ``ArrowMazeVerifier`` rules to the candidate grid (size,
numbers and shown arrows kept, no cell left empty, valid arrows, every arrow covered, every
number's rays adding up): any grid that keeps them is right. The generator plants a solution:
it puts a few numbers on the grid (the authors' 4 to ``min(n + m, nm / 5)``), grows rays from
them, then covers each remaining cell by extending a ray that ends beside it or starting one
from a neighbouring number, making a cell a number only when neither is possible; numbers
are the planted rays' lengths; ``arrow_fill_rate`` of the arrows are shown (the authors'
knob). Departures: this generator, not the authors' 700-line one (theirs also plants a
solution and checks it); a planted number that ends with no ray is redrawn (no "0" clues).
"""

from __future__ import annotations

import random
import re
from typing import Any

from synthloom.verify.logic.base import LogicTask, register_task

ARROWS = {"↑": (-1, 0), "↓": (1, 0), "←": (0, -1), "→": (0, 1), "↖": (-1, -1), "↗": (-1, 1),
          "↘": (1, 1), "↙": (1, -1)}
_BY_STEP = {step: arrow for arrow, step in ARROWS.items()}


def ray_total(grid: list[list[str]], r: int, c: int) -> int:
    """The authors' ``_count_arrow_rays``: the length of every ray leaving (r, c)."""
    n, m = len(grid), len(grid[0])
    total = 0
    for arrow, (dr, dc) in ARROWS.items():
        i, j = r + dr, c + dc
        while 0 <= i < n and 0 <= j < m and grid[i][j] == arrow:
            total += 1
            i, j = i + dr, j + dc
    return total


def check_arrows(grid: list[list[str]], shown: list[list[str]]) -> str | None:
    """None when ``grid`` solves the maze ``shown`` (the authors' verifier's rules)."""
    n, m = len(shown), len(shown[0])
    if len(grid) != n or any(len(row) != m for row in grid):
        return f"the grid is not {n}x{m}"
    covered = [[False] * m for _ in range(n)]
    for r in range(n):
        for c in range(m):
            cell, given = grid[r][c], shown[r][c]
            if given != "X" and cell != given:
                return f"row {r + 1}, column {c + 1} must stay {given}"
            if given == "X" and cell not in ARROWS:
                return f"row {r + 1}, column {c + 1} is not an arrow"
    for r in range(n):
        for c in range(m):
            if not grid[r][c].isdigit():
                continue
            if ray_total(grid, r, c) != int(grid[r][c]):
                return f"the rays from row {r + 1}, column {c + 1} do not add up to {grid[r][c]}"
            for arrow, (dr, dc) in ARROWS.items():
                i, j = r + dr, c + dc
                while 0 <= i < n and 0 <= j < m and grid[i][j] == arrow:
                    covered[i][j] = True
                    i, j = i + dr, j + dc
    for r in range(n):
        for c in range(m):
            if grid[r][c] in ARROWS and not covered[r][c]:
                return f"the arrow at row {r + 1}, column {c + 1} is on no number's ray"
    return None


def _plant(rng: random.Random, n: int, m: int, numbers: int) -> list[list[str]] | None:
    """A solved grid (numbers as "#" until counted), or None when a number got no ray."""
    grid = [["" for _ in range(m)] for _ in range(n)]
    cells = [(r, c) for r in range(n) for c in range(m)]
    for r, c in rng.sample(cells, numbers):
        grid[r][c] = "#"
    for r, c in [(r, c) for r, c in cells if grid[r][c] == "#"]:
        for arrow in rng.sample(list(ARROWS), rng.randint(1, 2)):  # the authors' first rays
            dr, dc = ARROWS[arrow]
            i, j, length = r + dr, c + dc, rng.randint(1, 3)
            while length and 0 <= i < n and 0 <= j < m and not grid[i][j]:
                grid[i][j] = arrow
                i, j, length = i + dr, j + dc, length - 1
    while True:
        empty = [(r, c) for r, c in cells if not grid[r][c]]
        if not empty:
            break
        progress = False
        for r, c in rng.sample(empty, len(empty)):
            ways = []
            for (dr, dc), arrow in _BY_STEP.items():
                i, j = r - dr, c - dc  # the cell the ray would come from
                if 0 <= i < n and 0 <= j < m and grid[i][j] in ("#", arrow):
                    ways.append(arrow)
            if ways:
                grid[r][c] = rng.choice(ways)
                progress = True
        if not progress:
            r, c = rng.choice(empty)
            grid[r][c] = "#"
    for r, c in cells:
        if grid[r][c] == "#":
            total = ray_total(grid, r, c)
            if not total:
                return None
            grid[r][c] = str(total)
    return grid


@register_task
class ArrowMaze(LogicTask):
    name = "arrow_maze"
    synlogic = "games/tasks/arrow_maze/scripts/arrow_maze.py"
    description = "fill a grid with arrows so each number counts the arrow rays leaving it"
    answer_format = "the completed grid as a list of rows, e.g. [['1', '→'], ['↑', '←']]"
    # The authors' knobs: height, width, arrow_fill_rate range (their run.sh: 5x5, 0.3-0.9).
    levels = {1: {"n": 4, "m": 4, "fill": (0.5, 0.9)}, 2: {"n": 5, "m": 5, "fill": (0.3, 0.9)},
              3: {"n": 6, "m": 6, "fill": (0.2, 0.6)}, 4: {"n": 7, "m": 7, "fill": (0.1, 0.4)},
              5: {"n": 8, "m": 8, "fill": (0.0, 0.0)}}

    def generate(self, rng: random.Random, n: int = 5, m: int = 5,
                 fill: tuple[float, float] = (0.3, 0.9)) -> dict[str, Any]:
        if n < 3 or m < 3 or not 0 <= fill[0] <= fill[1] <= 1:
            raise ValueError("n, m >= 3 and 0 <= fill rates <= 1")
        while True:
            count = rng.randint(4, max(4, min(n + m, n * m // 5)))
            solved = _plant(rng, n, m, count)
            if solved is not None:
                break
        rate = round(rng.uniform(*fill), 1)
        arrows = [(r, c) for r in range(n) for c in range(m) if solved[r][c] in ARROWS]
        keep = set(rng.sample(arrows, int(len(arrows) * rate)))
        shown = [[v if v.isdigit() or (r, c) in keep else "X" for c, v in enumerate(row)]
                 for r, row in enumerate(solved)]
        question = (f"The maze consists of a {n} x {m} grid.\nWhere X represents an empty cell. "
                    "Numbers represent the starting point of ray arrow strings.\nPlease fill in "
                    "the empty cells with arrows, which can extend in the directions up (↑), "
                    "down (↓), left (←), right (→), or diagonally (↖, ↗, ↘, ↙).\nThe number "
                    "represents the starting point of ray arrow strings, and the total number "
                    "of arrows in all ray arrow strings extending from that number equals the "
                    "number. Every arrow must belong to some number's ray arrow string.\nNow, "
                    "given the following grid, please provide the complete grid according to "
                    "the requirements above:\n") + \
            "\n".join(" ".join(row) for row in shown)
        answer = "[" + ", ".join("[" + ", ".join(f"'{v}'" for v in row) + "]"
                                 for row in solved) + "]"
        return {"question": question, "answer": answer, "shown": shown, "fill_rate": rate}

    def verify(self, item: dict[str, Any], candidate: str) -> str | None:
        shown = item["shown"]
        n, m = len(shown), len(shown[0])
        cells = re.findall(r"\d+|[" + "".join(ARROWS) + "X]", candidate)
        if len(cells) != n * m:
            return f"expected {n}x{m} = {n * m} cells, got {len(cells)}"
        grid = [cells[r * m:(r + 1) * m] for r in range(n)]
        return check_arrows(grid, shown)
