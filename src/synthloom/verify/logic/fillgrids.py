"""SynLogic's fill-in grids: ``numbrix`` (games/tasks/numbrix) and ``survo``
(games/tasks/survo). As in the authors' verifiers, any filling that keeps the given numbers and
meets the rules counts; neither generator promises a unique filling, so neither is ``unique``.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

from synthloom.verify.logic.base import LogicTask, register_task
from synthloom.verify.logic.numgrids import parse_grid


def hamiltonian_path(rng: random.Random, n: int, moves: int) -> list[tuple[int, int]]:
    """A random Hamiltonian path over the n×n grid: a serpentine one shuffled by ``moves``
    backbite moves (each keeps the path Hamiltonian)."""
    path = [(r, c if r % 2 == 0 else n - 1 - c) for r in range(n) for c in range(n)]
    for _ in range(moves):
        if rng.random() < 0.5:
            path.reverse()
        r, c = path[-1]
        nbrs = [(r + dr, c + dc) for dr, dc in ((0, 1), (1, 0), (0, -1), (-1, 0))
                if 0 <= r + dr < n and 0 <= c + dc < n]
        cell = rng.choice(nbrs)
        if len(path) > 1 and cell == path[-2]:
            continue
        i = path.index(cell)
        path[i + 1:] = path[:i:-1]  # the end joins ``cell``; the segment after it reverses
    return path


@register_task
class Numbrix(LogicTask):
    name = "numbrix"
    synlogic = "games/tasks/numbrix/scripts/numbrix.py"
    description = "fill an n×n grid with 1..n² so consecutive numbers are orthogonal neighbours"
    answer_format = "the grid as a Python list of rows, e.g. [[1, 2, 3], [6, 5, 4], [7, 8, 9]]"
    # n: grid size; fill_rate: share of cells shown (the authors' defaults 6-9 and 0.3).
    levels = {1: {"n": 4, "fill_rate": 0.5}, 2: {"n": 5, "fill_rate": 0.4},
              3: {"n": 6, "fill_rate": 0.3}, 4: {"n": 7, "fill_rate": 0.3},
              5: {"n": 9, "fill_rate": 0.3}}

    def generate(self, rng: random.Random, n: int = 6, fill_rate: float = 0.3) -> dict[str, Any]:
        path = hamiltonian_path(rng, n, 2 * n * n)
        grid = [[0] * n for _ in range(n)]
        for k, (r, c) in enumerate(path, 1):
            grid[r][c] = k
        shown_cells = rng.sample(range(n * n), max(2, round(fill_rate * n * n)))
        shown = [["X"] * n for _ in range(n)]
        for k in shown_cells:
            shown[k // n][k % n] = str(grid[k // n][k % n])
        width = len(str(n * n)) + 1
        board = "\n".join("|" + "|".join(f"{v:>{width}} " for v in row) + "|" for row in shown)
        question = (f"You are given a {n} x {n} Numbrix puzzle. Fill the grid with the numbers 1 "
                    f"to {n * n}, each once, so that consecutive numbers are always orthogonally "
                    "adjacent (up, down, left or right). Some numbers are given; cells marked X "
                    f"are empty.\n\n{board}")
        return {"question": question, "answer": str(grid), "n": n,
                "given": [[k // n, k % n, grid[k // n][k % n]] for k in sorted(shown_cells)]}

    def verify(self, item: dict[str, Any], candidate: str) -> str | None:
        n = int(item["n"])
        grid = [[int(v) for v in row] for row in parse_grid(candidate, n, n)]
        where = {v: (r, c) for r, row in enumerate(grid) for c, v in enumerate(row)}
        if sorted(where) != list(range(1, n * n + 1)):
            return f"not the numbers 1-{n * n}, each once"
        for r, c, v in item["given"]:
            if grid[r][c] != v:
                return f"changes the given {v}"
        for k in range(1, n * n):
            (r1, c1), (r2, c2) = where[k], where[k + 1]
            if abs(r1 - r2) + abs(c1 - c2) != 1:
                return f"{k} and {k + 1} are not neighbours"
        return None


@register_task
class Survo(LogicTask):
    name = "survo"
    synlogic = "games/tasks/survo/scripts/survo.py"
    description = "fill the X cells of a sum matrix with the given numbers (each once)"
    answer_format = "the whole matrix as a Python list of rows, e.g. [[1, 2, 3], [4, 5, 9], " \
                    "[5, 7, 12]]"
    # n: matrix size with its sum row and column; x: blanks; numbers min_num..max_num.
    levels = {1: {"n": 3, "x": 2, "min_num": 1, "max_num": 9},
              2: {"n": 4, "x": 3, "min_num": 1, "max_num": 9},
              3: {"n": 4, "x": 5, "min_num": 1, "max_num": 9},
              4: {"n": 5, "x": 8, "min_num": 1, "max_num": 20},
              5: {"n": 6, "x": 14, "min_num": 1, "max_num": 30}}

    def generate(self, rng: random.Random, n: int = 4, x: int = 3, min_num: int = 1,
                 max_num: int = 9) -> dict[str, Any]:
        if not 0 < x <= (n - 1) ** 2:
            raise ValueError(f"x must be 1-{(n - 1) ** 2}")
        inner = [[rng.randint(min_num, max_num) for _ in range(n - 1)] for _ in range(n - 1)]
        matrix = [[*row, sum(row)] for row in inner]
        matrix.append([sum(col) for col in zip(*matrix, strict=True)])
        blanks = sorted(rng.sample(range((n - 1) ** 2), x))
        cells = [(k // (n - 1), k % (n - 1)) for k in blanks]
        numbers = sorted(matrix[r][c] for r, c in cells)
        shown = [[str(v) for v in row] for row in matrix]
        for r, c in cells:
            shown[r][c] = "X"
        board = "\n".join(" ".join(f"{v:>3}" for v in row) for row in shown)
        question = (f"Given a {n}*{n} matrix where the last element of each row and column "
                    f"equals the sum of the other elements in that row or column. The matrix "
                    f"is:\n{board}\nwhere some elements are replaced with X. You have a set of "
                    f"numbers {numbers} that can be filled into the X positions to satisfy the "
                    "rules. Please fill in the matrix. Each number can only be used once.")
        return {"question": question, "answer": str(matrix), "n": n,
                "shown": [[None if v == "X" else int(v) for v in row] for row in shown],
                "numbers": numbers}

    def verify(self, item: dict[str, Any], candidate: str) -> str | None:
        n = int(item["n"])
        grid = [[int(v) for v in row] for row in parse_grid(candidate, n, n, r"-?\d+")]
        used = []
        for r, row in enumerate(item["shown"]):
            for c, v in enumerate(row):
                if v is None:
                    used.append(grid[r][c])
                elif grid[r][c] != v:
                    return f"changes the given number at row {r + 1}, column {c + 1}"
        if Counter(used) != Counter(item["numbers"]):
            return f"the X cells do not use exactly the numbers {item['numbers']}"
        for line in [*grid, *zip(*grid, strict=True)]:
            if line[-1] != sum(line[:-1]):
                return "a row or column does not add up"
        return None
