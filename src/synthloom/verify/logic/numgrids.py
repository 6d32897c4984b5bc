"""SynLogic's clue-grid puzzles: ``skyscraper_puzzle``, ``futoshiki`` and ``kukurasu``
(games/tasks/skyscraper_puzzle, futoshiki, kukurasu).

As in the authors' verifiers, any grid that meets every clue counts: none of the three
promises a unique solution (the generators derive the clues from one random solution and the
verifiers check the rules, not a stored grid), so these tasks are not ``unique``.
"""

from __future__ import annotations

import random
import re
from typing import Any

from synthloom.verify.logic.base import LogicTask, register_task


def latin_square(rng: random.Random, n: int) -> list[list[int]]:
    """A random n×n Latin square: a cyclic one with rows, columns and symbols shuffled."""
    rows, cols, symbols = (rng.sample(range(n), n) for _ in range(3))
    return [[symbols[(r + c) % n] + 1 for c in cols] for r in rows]


def parse_grid(text: str, rows: int, cols: int, token: str = r"\d+") -> list[list[str]]:
    """The ``rows × cols`` cells of a grid written as a Python list, ``[[1 2,2 1]]`` or one row
    per line: its tokens, read in order."""
    cells = re.findall(token, text)
    if len(cells) != rows * cols:
        raise ValueError(f"expected {rows}x{cols} = {rows * cols} cells, got {len(cells)}")
    return [cells[r * cols:(r + 1) * cols] for r in range(rows)]


def latin_problem(grid: list[list[int]], n: int) -> str | None:
    for line in [*grid, *zip(*grid, strict=False)]:
        if sorted(line) != list(range(1, n + 1)):
            return f"a row or column is not 1-{n} each once"
    return None


def visible(heights: list[int]) -> int:
    count, top = 0, 0
    for h in heights:
        if h > top:
            count, top = count + 1, h
    return count


def sky_clues(grid: list[list[int]]) -> dict[str, list[int]]:
    cols = [list(c) for c in zip(*grid, strict=False)]
    return {"top": [visible(c) for c in cols], "bottom": [visible(c[::-1]) for c in cols],
            "left": [visible(r) for r in grid], "right": [visible(r[::-1]) for r in grid]}


@register_task
class Skyscraper(LogicTask):
    name = "skyscraper_puzzle"
    synlogic = "games/tasks/skyscraper_puzzle/scripts/skyscraper_puzzle.py"
    description = "fill an n×n grid with heights 1-n meeting all four sides' visibility clues"
    answer_format = "the grid as a Python list of rows, e.g. [[3, 2, 1, 4], [1, 4, 3, 2], " \
                    "[4, 1, 2, 3], [2, 3, 4, 1]]"
    levels = {1: {"n": 3}, 2: {"n": 4}, 3: {"n": 5}, 4: {"n": 6}, 5: {"n": 7}}

    def generate(self, rng: random.Random, n: int = 4) -> dict[str, Any]:
        grid = latin_square(rng, n)
        clues = sky_clues(grid)
        pad = "      "
        lines = [pad + "   ".join(map(str, clues["top"]))]
        for r in range(n):
            lines.append(f"{clues['left'][r]}     " + "   ".join("X" * n) +
                         f"   {clues['right'][r]}")
        lines.append(pad + "   ".join(map(str, clues["bottom"])))
        question = (f"This is a {n}×{n} Skyscraper puzzle. Place skyscrapers of heights 1 to "
                    f"{n} so that no row or column contains the same height twice. The clues "
                    "around the grid indicate how many skyscrapers are visible when looking "
                    "from that direction, as taller skyscrapers block the view of shorter ones. "
                    "Find the correct height for each position (X marks an empty cell).\n\n"
                    + "\n".join(lines))
        return {"question": question, "answer": str(grid), "n": n, **clues}

    def verify(self, item: dict[str, Any], candidate: str) -> str | None:
        n = int(item["n"])
        grid = [[int(v) for v in row] for row in parse_grid(candidate, n, n)]
        reason = latin_problem(grid, n)
        if reason:
            return reason
        clues = sky_clues(grid)
        for side in ("top", "bottom", "left", "right"):
            if clues[side] != list(item[side]):
                return f"the {side} clues do not hold"
        return None


@register_task
class Futoshiki(LogicTask):
    name = "futoshiki"
    synlogic = "games/tasks/futoshiki/scripts/futoshiki_generator.py"
    description = "fill a Latin square meeting inequality signs and pre-filled numbers"
    answer_format = "the rows in double square brackets, numbers separated by spaces and rows " \
                    "by commas, e.g. [[1 2 3,2 3 1,3 1 2]]"
    levels = {1: {"grid_size": 4, "num_inequality_signs": 4, "num_prefilled_coords": 3},
              2: {"grid_size": 5, "num_inequality_signs": 6, "num_prefilled_coords": 4},
              3: {"grid_size": 6, "num_inequality_signs": 8, "num_prefilled_coords": 5},
              4: {"grid_size": 7, "num_inequality_signs": 10, "num_prefilled_coords": 6},
              5: {"grid_size": 9, "num_inequality_signs": 14, "num_prefilled_coords": 8}}

    def generate(self, rng: random.Random, grid_size: int = 4, num_inequality_signs: int = 4,
                 num_prefilled_coords: int = 2) -> dict[str, Any]:
        n = grid_size
        grid = latin_square(rng, n)
        cells = [(r, c) for r in range(n) for c in range(n)]
        prefilled = sorted(rng.sample(cells, num_prefilled_coords))
        # Signs between neighbouring cells, written greater-first: (r, c) > (x, y), 1-based.
        pairs = [((r, c), (r + dr, c + dc)) for r, c in cells for dr, dc in ((0, 1), (1, 0))
                 if r + dr < n and c + dc < n]
        signs = []
        for a, b in rng.sample(pairs, min(num_inequality_signs, len(pairs))):
            hi, lo = (a, b) if grid[a[0]][a[1]] > grid[b[0]][b[1]] else (b, a)
            signs.append([hi[0] + 1, hi[1] + 1, lo[0] + 1, lo[1] + 1])
        shown = [["X"] * n for _ in range(n)]
        for r, c in prefilled:
            shown[r][c] = str(grid[r][c])
        question = (f"This is a {n}x{n} Futoshiki puzzle. Rules:\n1. Fill in the n x n grid with "
                    f"numbers so that each row and column contains all numbers from 1 to n "
                    "without repetition.\n2. There are inequality signs between certain squares "
                    "of the grid, given below in the form (row i, column j) > (row x, column y).\n"
                    "3. Some squares are pre-filled as hints (X marks an empty square).\n\n"
                    "Current puzzle:\n" + "\n".join(" ".join(row) for row in shown) +
                    "\n\nInequality constraints:\n" +
                    "\n".join(f"(row {a}, column {b}) > (row {x}, column {y})"
                              for a, b, x, y in signs))
        answer = "[[" + ",".join(" ".join(map(str, row)) for row in grid) + "]]"
        return {"question": question, "answer": answer, "n": n,
                "prefilled": [[r, c, grid[r][c]] for r, c in prefilled], "signs": signs}

    def verify(self, item: dict[str, Any], candidate: str) -> str | None:
        n = int(item["n"])
        grid = [[int(v) for v in row] for row in parse_grid(candidate, n, n)]
        reason = latin_problem(grid, n)
        if reason:
            return reason
        for r, c, v in item["prefilled"]:
            if grid[r][c] != v:
                return f"changes the pre-filled number at row {r + 1}, column {c + 1}"
        for a, b, x, y in item["signs"]:
            if not grid[a - 1][b - 1] > grid[x - 1][y - 1]:
                return f"(row {a}, column {b}) > (row {x}, column {y}) does not hold"
        return None


def kukurasu_sums(grid: list[list[int]]) -> tuple[list[int], list[int]]:
    rows = [sum(j + 1 for j, v in enumerate(row) if v) for row in grid]
    cols = [sum(i + 1 for i, v in enumerate(col) if v) for col in zip(*grid, strict=False)]
    return rows, cols


@register_task
class Kukurasu(LogicTask):
    name = "kukurasu"
    synlogic = "games/tasks/kukurasu/scripts/kukurasu.py"
    description = "place 1s so each row and column's position-weighted sum matches its clue"
    answer_format = 'the grid as a Python list of rows of "1" and "X", e.g. [["X", "1"], ' \
                    '["1", "1"]]'
    levels = {1: {"n": 3, "m": 3, "ones_probability": 0.4},
              2: {"n": 4, "m": 4, "ones_probability": 0.3},
              3: {"n": 5, "m": 5, "ones_probability": 0.3},
              4: {"n": 6, "m": 6, "ones_probability": 0.3},
              5: {"n": 7, "m": 8, "ones_probability": 0.3}}

    def generate(self, rng: random.Random, n: int = 4, m: int = 4,
                 ones_probability: float = 0.3) -> dict[str, Any]:
        while True:  # the authors' check: no row or column sum is 0
            grid = [[int(rng.random() < ones_probability) for _ in range(m)] for _ in range(n)]
            rows, cols = kukurasu_sums(grid)
            if all(rows) and all(cols):
                break
        board = "\n".join("  ".join("X" * m) + f"  |  {rows[i]}" for i in range(n))
        board += "\n" + "-" * (m * 3 + 5) + "\n" + " ".join(f"{c:2d}" for c in cols)
        question = (f"You are given a {n} x {m} grid representing a Kukurasu puzzle. In this "
                    "puzzle, you need to place 1s in the grid so that the weighted sum of each "
                    f"row and column matches the given constraints. The row sums are {rows} and "
                    f"the column sums are {cols}.\n1. Rules:\n  1. Each cell can contain either "
                    f"a 1 or an X.\n  2. The weight of a 1 in a row is its column position (1 to "
                    f"{m}).\n  3. The weight of a 1 in a column is its row position (1 to {n}).\n"
                    "  4. The weighted sum of each row must match the corresponding row "
                    "constraint.\n  5. The weighted sum of each column must match the "
                    f"corresponding column constraint.\n2. Input:\n{board}")
        answer = "[" + ", ".join("[" + ", ".join('"1"' if v else '"X"' for v in row) + "]"
                                 for row in grid) + "]"
        return {"question": question, "answer": answer, "n": n, "m": m,
                "row_sums": rows, "col_sums": cols}

    def verify(self, item: dict[str, Any], candidate: str) -> str | None:
        n, m = int(item["n"]), int(item["m"])
        cells = parse_grid(candidate, n, m, r"\d+|[Xx]")
        if any(v not in ("1", "X", "x") for row in cells for v in row):
            return 'cells must be "1" or "X"'
        rows, cols = kukurasu_sums([[v == "1" for v in row] for row in cells])
        if rows != list(item["row_sums"]):
            return "the row sums do not match"
        if cols != list(item["col_sums"]):
            return "the column sums do not match"
        return None
