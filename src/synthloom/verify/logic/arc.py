"""SynLogic's ``arc_agi`` (a corpus task there, corpus/misc/tasks/arc_agi: ARC-AGI puzzles with an
exact-grid verifier), from a small task set of our own: grid transformations written here.

A task is a hidden program - one of the :data:`RULES` (mirror, rotate, transpose, gravity,
scale, crop, tile, ...), at levels 4-5 two of them in a row, optionally followed by a color
substitution - shown through 2-4 input/output pairs of random grids; the answer is the output
for a new input. The verifier compares the candidate grid with the program's output on the
test input, recomputed (the authors' verifier compares with the stored grid). Unique: a task
is kept only when every program of the same size from the task set (each followed by
whatever color substitution the examples imply) that fits all the examples gives the same
test output, so the examples decide the answer within the task set. The ARC-AGI tasks
themselves are not bundled (their licence and size); these stand in for them.
"""

from __future__ import annotations

import itertools
import json
import random
import re
from collections.abc import Callable
from typing import Any

from synthloom.verify.logic.base import LogicTask, register_task

Grid = tuple[tuple[int, ...], ...]


def _gravity(grid: Grid) -> Grid:
    """Non-zero cells fall to the bottom of their column, in order."""
    cols = []
    for col in zip(*grid, strict=True):
        full = [v for v in col if v]
        cols.append([0] * (len(col) - len(full)) + full)
    return tuple(zip(*cols, strict=True))


def _crop(grid: Grid) -> Grid:
    rows = [r for r, row in enumerate(grid) if any(row)]
    cols = [c for c in range(len(grid[0])) if any(row[c] for row in grid)]
    if not rows:
        return grid
    return tuple(tuple(grid[r][c] for c in range(cols[0], cols[-1] + 1))
                 for r in range(rows[0], rows[-1] + 1))


def _rot90(g: Grid) -> Grid:
    return tuple(zip(*g[::-1], strict=True))


RULES: dict[str, Callable[[Grid], Grid]] = {
    "mirror left-right": lambda g: tuple(row[::-1] for row in g),
    "mirror top-bottom": lambda g: g[::-1],
    "rotate 90 clockwise": _rot90,
    "rotate 180": lambda g: tuple(row[::-1] for row in g[::-1]),
    "rotate 90 counter-clockwise": lambda g: _rot90(_rot90(_rot90(g))),
    "transpose": lambda g: tuple(zip(*g, strict=True)),
    "gravity down": _gravity,
    "gravity up": lambda g: _gravity(g[::-1])[::-1],
    "gravity right": lambda g: tuple(zip(*_gravity(tuple(zip(*g, strict=True))),
                                         strict=True)),
    "scale x2": lambda g: tuple(tuple(v for v in row for _ in (0, 1)) for row in g
                                for _ in (0, 1)),
    "crop to the non-zero cells": _crop,
    "tile with its mirror": lambda g: tuple(row + row[::-1] for row in g),
    "stack with its mirror": lambda g: g + g[::-1],
}
#: The rules a level may draw (the uniqueness check runs over all of RULES).
SIMPLE = ["mirror left-right", "mirror top-bottom", "rotate 90 clockwise", "rotate 180",
          "transpose"]


def run(program: list[str], grid: Grid, colors: dict[int, int] | None = None) -> Grid:
    for name in program:
        grid = RULES[name](grid)
    if colors:
        grid = tuple(tuple(colors.get(v, v) for v in row) for row in grid)
    return grid


def _implied_colors(program: list[str], pairs: list[tuple[Grid, Grid]]) -> dict[int, int] | None:
    """The color substitution that makes ``program`` fit every pair, or None."""
    mapping: dict[int, int] = {}
    for grid, out in pairs:
        got = run(program, grid)
        if len(got) != len(out) or len(got[0]) != len(out[0]):
            return None
        for row, want in zip(got, out, strict=True):
            for a, b in zip(row, want, strict=True):
                if mapping.setdefault(a, b) != b:
                    return None
    return {a: b for a, b in mapping.items() if a != b}


def consistent_outputs(pairs: list[tuple[Grid, Grid]], test: Grid, length: int,
                 limit: int = 2) -> set[Grid]:
    """The test outputs of every task-set program of ``length`` rules (each with the color
    substitution the examples imply) that fits all pairs, up to ``limit`` distinct ones."""
    outs: set[Grid] = set()
    for program in itertools.product(RULES, repeat=length):
        colors = _implied_colors(list(program), pairs)
        if colors is None:
            continue
        outs.add(run(list(program), test, colors))
        if len(outs) >= limit:
            break
    return outs


def _grid(rng: random.Random, rows: int, cols: int, palette: list[int], density: float) -> Grid:
    return tuple(tuple(rng.choice(palette) if rng.random() < density else 0 for _ in range(cols))
                 for _ in range(rows))


def _show(grid: Grid) -> str:
    return json.dumps([list(row) for row in grid])


@register_task
class ArcAgi(LogicTask):
    name = "arc_agi"
    synlogic = "corpus/misc/tasks/arc_agi/scripts/arc_agi_verifier.py"
    description = "infer a grid transformation from examples and apply it (our own task set)"
    answer_format = "the output grid as a JSON list of rows, e.g. [[0, 1], [2, 0]]"
    unique = True
    # rules: how many in a row; simple: only mirrors/rotations/transpose; recolor: chance of a
    # color substitution after them; size: grid side range; examples: train pairs.
    levels = {1: {"rules": 1, "simple": True, "recolor": 0.0, "size": (3, 3), "examples": 3},
              2: {"rules": 1, "simple": False, "recolor": 0.0, "size": (3, 4), "examples": 3},
              3: {"rules": 1, "simple": False, "recolor": 0.5, "size": (3, 5), "examples": 3},
              4: {"rules": 2, "simple": False, "recolor": 0.3, "size": (3, 5), "examples": 3},
              5: {"rules": 2, "simple": False, "recolor": 0.6, "size": (4, 6), "examples": 2}}

    def generate(self, rng: random.Random, rules: int = 1, simple: bool = False,
                 recolor: float = 0.0, size: tuple[int, int] = (3, 5),
                 examples: int = 3) -> dict[str, Any]:
        if rules not in (1, 2) or examples < 1 or not 2 <= size[0] <= size[1] <= 10:
            raise ValueError("rules 1-2, examples >= 1, sizes within 2-10")
        pool = SIMPLE if simple else list(RULES)
        while True:
            program = [rng.choice(pool) for _ in range(rules)]
            palette = rng.sample(range(1, 10), rng.randint(2, 4))
            colors: dict[int, int] = {}
            if rng.random() < recolor:
                a = rng.choice(palette)
                colors = {a: rng.choice([c for c in range(1, 10) if c != a])}
            rows, cols = rng.randint(*size), rng.randint(*size)
            grids = [_grid(rng, rows, cols, palette, rng.uniform(0.3, 0.7))
                     for _ in range(examples + 1)]
            if any(not any(any(row) for row in g) for g in grids):
                continue
            pairs = [(g, run(program, g, colors)) for g in grids[:-1]]
            test = grids[-1]
            if any(g == out for g, out in pairs):
                continue  # an example the program leaves unchanged shows nothing
            if consistent_outputs(pairs, test, rules) == {run(program, test, colors)}:
                break  # the examples decide the answer (a substitution they show, too)
        shown = "\n\n".join(f"Example {i + 1}:\nInput: {_show(g)}\nOutput: {_show(o)}"
                            for i, (g, o) in enumerate(pairs))
        question = ("Find the common rule that maps each input grid to its output grid "
                    "(numbers are colors, 0 is the background), then apply it to the test "
                    f"input.\n\n{shown}\n\nTest input: {_show(test)}\n\nGive the test output "
                    "grid.")
        answer = _show(run(program, test, colors))
        return {"question": question, "answer": answer,
                "train": [[list(map(list, g)), list(map(list, o))] for g, o in pairs],
                "test": [list(row) for row in test], "program": program,
                "colors": {str(k): v for k, v in colors.items()}}

    def _truth(self, item: dict[str, Any]) -> Grid:
        colors = {int(k): int(v) for k, v in item["colors"].items()}
        test = tuple(tuple(row) for row in item["test"])
        return run(list(item["program"]), test, colors)

    def verify(self, item: dict[str, Any], candidate: str) -> str | None:
        rows = re.findall(r"\[([^\[\]]*)\]", candidate)
        grid = tuple(tuple(int(v) for v in re.findall(r"-?\d+", row)) for row in rows)
        grid = tuple(row for row in grid if row)
        return None if grid == self._truth(item) else "not the test output"

    def count_solutions(self, item: dict[str, Any], limit: int = 2) -> int:
        pairs = [(tuple(map(tuple, g)), tuple(map(tuple, o))) for g, o in item["train"]]
        test = tuple(tuple(row) for row in item["test"])
        return len(consistent_outputs(pairs, test, len(item["program"]), limit))
