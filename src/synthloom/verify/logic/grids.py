"""Grid puzzles: sudoku (unique solution), n-queens (any valid board) and mazes (walk the path).

Sudoku: a full grid from the canonical pattern under random row/column/band/stack/digit
permutations, then cells blanked in random order, each blank kept only while a bitmask solver
(minimum-remaining-values order) still counts exactly one solution (it stops counting at 2).
"""

from __future__ import annotations

import random
import re
from collections import deque
from math import isqrt
from typing import Any

from synthloom.verify.logic.base import LogicTask, register_task

# --- sudoku ---------------------------------------------------------------------------------


def sudoku_solutions(grid: list[int], n: int, limit: int = 2) -> int:
    """Solutions of ``grid`` (row-major, 0 = blank), counted up to ``limit``."""
    box = isqrt(n)
    full = (1 << n) - 1
    rows, cols, boxes = [0] * n, [0] * n, [0] * n
    empties: list[tuple[int, int, int]] = []
    for i, value in enumerate(grid):
        r, c = divmod(i, n)
        b = (r // box) * box + c // box
        if value:
            bit = 1 << (value - 1)
            if (rows[r] | cols[c] | boxes[b]) & bit:
                return 0  # the givens already clash
            rows[r] |= bit
            cols[c] |= bit
            boxes[b] |= bit
        else:
            empties.append((r, c, b))
    count = 0

    def search(depth: int) -> bool:
        nonlocal count
        if depth == len(empties):
            count += 1
            return count >= limit
        best, best_n, best_opts = depth, n + 1, 0
        for j in range(depth, len(empties)):  # most constrained cell first
            r, c, b = empties[j]
            opts = full & ~(rows[r] | cols[c] | boxes[b])
            k = opts.bit_count()
            if k < best_n:
                best, best_n, best_opts = j, k, opts
                if k <= 1:
                    break
        if best_n == 0:
            return False
        empties[depth], empties[best] = empties[best], empties[depth]
        r, c, b = empties[depth]
        opts = best_opts
        while opts:
            bit = opts & -opts
            opts ^= bit
            rows[r] |= bit
            cols[c] |= bit
            boxes[b] |= bit
            stop = search(depth + 1)
            rows[r] ^= bit
            cols[c] ^= bit
            boxes[b] ^= bit
            if stop:
                return True
        return False

    search(0)
    return count


def _full_grid(rng: random.Random, n: int) -> list[int]:
    box = isqrt(n)

    def shuffled_lines() -> list[int]:
        bands = rng.sample(range(box), box)
        return [band * box + line for band in bands for line in rng.sample(range(box), box)]

    rows, cols = shuffled_lines(), shuffled_lines()
    digits = rng.sample(range(1, n + 1), n)
    # The canonical pattern (box*(r%box) + r//box + c) % n is a valid grid; permuting rows
    # within bands, bands, columns within stacks, stacks and digits keeps it valid.
    return [digits[(box * (r % box) + r // box + c) % n] for r in rows for c in cols]


def _rows(grid: list[int], n: int, blank: str = ".") -> list[str]:
    return ["".join(str(v) if v else blank for v in grid[r * n:(r + 1) * n]) for r in range(n)]


@register_task
class Sudoku(LogicTask):
    name = "sudoku"
    synlogic = "games/tasks/sudoku/scripts/sudoku.py"
    description = "fill a 4x4 or 9x9 Sudoku grid (exactly one solution)"
    answer_format = ("the completed grid as its rows of digits, top row first, rows separated "
                     "by spaces (for a 4x4 grid: 1234 3412 2143 4321)")
    unique = True
    levels = {1: {"size": 4, "blanks": 6}, 2: {"size": 4, "blanks": 10},
              3: {"size": 9, "blanks": 36}, 4: {"size": 9, "blanks": 46},
              5: {"size": 9, "blanks": 54}}

    def generate(self, rng: random.Random, size: int = 9, blanks: int = 40) -> dict[str, Any]:
        if isqrt(size) ** 2 != size:
            raise ValueError("sudoku size must be a square (4, 9, 16)")
        best: list[int] = []
        solution: list[int] = []
        for _ in range(4):  # a grid whose greedy removal stalls early is drawn again
            solution = _full_grid(rng, size)
            grid = list(solution)
            cells = rng.sample(range(size * size), size * size)
            removed = 0
            for cell in cells:
                if removed >= blanks:
                    break
                grid[cell] = 0
                if sudoku_solutions(grid, size, 2) == 1:
                    removed += 1
                else:
                    grid[cell] = solution[cell]
            if not best or removed > sum(1 for v in best if not v):
                best, best_solution = grid, solution
            if removed >= blanks:
                break
        puzzle = _rows(best, size)
        box = isqrt(size)
        question = (f"Solve this {size}x{size} Sudoku: fill the empty cells ('.') so that every "
                    f"row, every column and every {box}x{box} box contains each digit 1-{size} "
                    f"exactly once.\n\n" + "\n".join(puzzle))
        return {"question": question, "answer": " ".join(_rows(best_solution, size)),
                "puzzle": puzzle, "size": size, "blanks": sum(1 for v in best if not v)}

    def verify(self, item: dict[str, Any], candidate: str) -> str | None:
        n = int(item["size"])
        box = isqrt(n)
        digits = [int(d) for d in re.findall(r"\d", candidate)]
        if len(digits) != n * n:
            return f"expected {n * n} digits, got {len(digits)}"
        givens = "".join(item["puzzle"])
        for i, (given, value) in enumerate(zip(givens, digits, strict=True)):
            if not 1 <= value <= n:
                return f"digit {value} out of range 1-{n}"
            if given != "." and int(given) != value:
                return f"row {i // n + 1} column {i % n + 1} is a given {given}, not {value}"
        want = set(range(1, n + 1))
        for k in range(n):
            if set(digits[k * n:(k + 1) * n]) != want:
                return f"row {k + 1} repeats a digit"
            if set(digits[k::n]) != want:
                return f"column {k + 1} repeats a digit"
            r0, c0 = (k // box) * box, (k % box) * box
            if {digits[(r0 + i) * n + c0 + j] for i in range(box) for j in range(box)} != want:
                return f"box {k + 1} repeats a digit"
        return None

    def count_solutions(self, item: dict[str, Any], limit: int = 2) -> int:
        n = int(item["size"])
        grid = [0 if ch == "." else int(ch) for ch in "".join(item["puzzle"])]
        return sudoku_solutions(grid, n, limit)


# --- n-queens -------------------------------------------------------------------------------


def _queens_solution(rng: random.Random, n: int) -> list[int]:
    """A random solution: backtracking with a shuffled column order in every row."""
    cols: list[int] = []

    def place(row: int) -> bool:
        if row == n:
            return True
        for col in rng.sample(range(n), n):
            if all(col != c and abs(col - c) != row - r for r, c in enumerate(cols)):
                cols.append(col)
                if place(row + 1):
                    return True
                cols.pop()
        return False

    if not place(0):
        raise ValueError(f"no {n}-queens solution")
    return cols


@register_task
class NQueens(LogicTask):
    name = "n_queens"
    description = "place n queens on an n x n board, some already placed (any valid board)"
    answer_format = ("the column (1 to n) of the queen in each row, top row first, "
                     "comma-separated (for n = 4: 2, 4, 1, 3)")
    #: One given queen at least: with none, every n-queens question of one n is the same.
    levels = {1: {"n": 5, "given": 1}, 2: {"n": 6, "given": 1}, 3: {"n": 7, "given": 1},
              4: {"n": 8, "given": 2}, 5: {"n": 10, "given": 2}}

    def generate(self, rng: random.Random, n: int = 8, given: int = 1) -> dict[str, Any]:
        if n < 4:
            raise ValueError("n-queens needs n >= 4")
        solution = _queens_solution(rng, n)
        rows = sorted(rng.sample(range(n), min(given, n)))
        queens = [[r + 1, solution[r] + 1] for r in rows]
        board = [["."] * n for _ in range(n)]
        for r, c in queens:
            board[r - 1][c - 1] = "Q"
        placed = ("" if not queens else " These queens are already placed and must stay: "
                  + "; ".join(f"row {r}, column {c}" for r, c in queens) + ".")
        question = (f"Place {n} queens on a {n}x{n} chessboard so that no two queens share a "
                    f"row, a column or a diagonal.{placed} Rows and columns are numbered 1 to "
                    f"{n} from the top left.\n\n" + "\n".join("".join(r) for r in board))
        return {"question": question, "answer": ", ".join(str(c + 1) for c in solution),
                "n": n, "queens": queens}

    def verify(self, item: dict[str, Any], candidate: str) -> str | None:
        n = int(item["n"])
        cols = [int(v) for v in re.findall(r"-?\d+", candidate)]
        if len(cols) != n:
            return f"expected {n} columns, got {len(cols)}"
        if any(not 1 <= c <= n for c in cols):
            return f"a column is outside 1-{n}"
        for r, c in item.get("queens") or []:
            if cols[r - 1] != c:
                return f"row {r} must keep its queen in column {c}"
        for r1 in range(n):
            for r2 in range(r1 + 1, n):
                if cols[r1] == cols[r2]:
                    return f"rows {r1 + 1} and {r2 + 1} share column {cols[r1]}"
                if abs(cols[r1] - cols[r2]) == r2 - r1:
                    return f"rows {r1 + 1} and {r2 + 1} share a diagonal"
        return None


# --- maze -----------------------------------------------------------------------------------

MOVES = {"U": (-1, 0), "D": (1, 0), "L": (0, -1), "R": (0, 1)}


def _carve(rng: random.Random, h: int, w: int) -> list[list[str]]:
    """A perfect maze (one path between any two cells): randomized depth-first search on the
    cells at odd coordinates of a (2h+1) x (2w+1) wall grid."""
    grid = [["#"] * (2 * w + 1) for _ in range(2 * h + 1)]
    start = (rng.randrange(h), rng.randrange(w))
    grid[2 * start[0] + 1][2 * start[1] + 1] = "."
    stack, seen = [start], {start}
    while stack:
        r, c = stack[-1]
        nexts = [(r + dr, c + dc) for dr, dc in MOVES.values()
                 if 0 <= r + dr < h and 0 <= c + dc < w and (r + dr, c + dc) not in seen]
        if not nexts:
            stack.pop()
            continue
        nr, nc = rng.choice(nexts)
        grid[r + nr + 1][c + nc + 1] = "."  # the wall between the two cells
        grid[2 * nr + 1][2 * nc + 1] = "."
        seen.add((nr, nc))
        stack.append((nr, nc))
    return grid


def _bfs(grid: list[str] | list[list[str]], start: tuple[int, int]) -> dict:
    """Distance and predecessor of every reachable open square."""
    prev: dict[tuple[int, int], tuple[tuple[int, int] | None, str]] = {start: (None, "")}
    queue = deque([start])
    while queue:
        r, c = queue.popleft()
        for move, (dr, dc) in MOVES.items():
            nxt = (r + dr, c + dc)
            if nxt not in prev and 0 <= nxt[0] < len(grid) and 0 <= nxt[1] < len(grid[0]) \
                    and grid[nxt[0]][nxt[1]] != "#":
                prev[nxt] = ((r, c), move)
                queue.append(nxt)
    return prev


def _find(grid: list[str], mark: str) -> tuple[int, int]:
    for r, row in enumerate(grid):
        if mark in row:
            return r, row.index(mark)
    raise ValueError(f"maze has no {mark!r}")


def maze_distance(grid: list[str]) -> int:
    """Moves on the shortest path from S to E (-1 if E is unreachable)."""
    start, end = _find(grid, "S"), _find(grid, "E")
    prev = _bfs(grid, start)
    if end not in prev:
        return -1
    steps, node = 0, end
    while prev[node][0] is not None:
        node = prev[node][0]  # type: ignore[assignment]
        steps += 1
    return steps


@register_task
class Maze(LogicTask):
    name = "maze"
    description = "find a path from S to E through an ASCII maze (the verifier walks it)"
    answer_format = ("the moves as one string of the letters U, D, L and R (up, down, left, "
                     "right; one letter per square), e.g. RRDDL")
    levels = {1: {"height": 3, "width": 3, "loops": 0, "shortest": False},
              2: {"height": 5, "width": 5, "loops": 0, "shortest": False},
              3: {"height": 7, "width": 7, "loops": 0, "shortest": False},
              4: {"height": 7, "width": 7, "loops": 4, "shortest": True},
              5: {"height": 10, "width": 10, "loops": 8, "shortest": True}}

    def generate(self, rng: random.Random, height: int = 5, width: int = 5, loops: int = 0,
                 shortest: bool = False) -> dict[str, Any]:
        grid = _carve(rng, height, width)
        inner = [(r, c) for r in range(1, 2 * height) for c in range(1, 2 * width)
                 if grid[r][c] == "#" and (r % 2) != (c % 2)]  # walls between two cells
        for r, c in rng.sample(inner, min(loops, len(inner))):
            grid[r][c] = "."  # an opened wall makes a loop: several paths, one shortest
        cells = [(2 * r + 1, 2 * c + 1) for r in range(height) for c in range(width)]
        start = rng.choice(cells)
        prev = _bfs(grid, start)

        def depth(cell: tuple[int, int]) -> int:
            d = 0
            while prev[cell][0] is not None:
                cell, d = prev[cell][0], d + 1  # type: ignore[assignment]
            return d

        end = max(cells, key=lambda cell: (depth(cell), cell))  # the farthest cell from S
        moves: list[str] = []
        node = end
        while prev[node][0] is not None:
            moves.append(prev[node][1])
            node = prev[node][0]  # type: ignore[assignment]
        grid[start[0]][start[1]] = "S"
        grid[end[0]][end[1]] = "E"
        maze = ["".join(row) for row in grid]
        ask = ("the shortest path (no path with fewer moves exists; yours must have exactly "
               "that many)" if shortest else "a path")
        question = ("Find " + ask + " from S to E in this maze. '#' is a wall, '.' is open; "
                    "each move goes one square up (U), down (D), left (L) or right (R) and may "
                    "not enter a wall or leave the grid.\n\n" + "\n".join(maze))
        return {"question": question, "answer": "".join(reversed(moves)), "maze": maze,
                "shortest": shortest}

    def verify(self, item: dict[str, Any], candidate: str) -> str | None:
        maze: list[str] = list(item["maze"])
        path = re.sub(r"[\s,;\-]", "", candidate).upper()
        if not path or set(path) - set(MOVES):
            return "moves must be the letters U, D, L, R"
        r, c = _find(maze, "S")
        end = _find(maze, "E")
        for i, move in enumerate(path):
            dr, dc = MOVES[move]
            r, c = r + dr, c + dc
            if not (0 <= r < len(maze) and 0 <= c < len(maze[0])) or maze[r][c] == "#":
                return f"move {i + 1} ({move}) runs into a wall"
        if (r, c) != end:
            return f"the path ends at row {r + 1} column {c + 1}, not at E"
        if item.get("shortest"):
            best = maze_distance(maze)
            if len(path) != best:
                return f"the path has {len(path)} moves; the shortest has {best}"
        return None
