"""SynLogic's ``wordscapes``, after games/tasks/wordscapes: a small crossword - a grid of letter
cells (X) and blanks (0), the across words and the down words - to be filled in.

The generator follows the authors' ``_generate_puzzle``: in a size x size grid each row (and
each column) gets a slot with probability 0.7, ``num_words // 2 + 1`` across slots and the rest
down slots are kept, at most ``max_intersections`` crossings, across words drawn freely and down
words drawn to agree with them at the crossings. The verifier applies the authors' rules: the
grid's shape kept (letters exactly on the X cells), and every across word read in some row,
every down word in some column. Departures: words come from the bundled list, so slots are 4
letters or longer (it has two 3-letter words; the authors use the ``english-words`` package);
a word must be read inside one unbroken run of letters (the authors join a row's letters
across blanks); English letters only.
"""

from __future__ import annotations

import random
import re
from functools import cache
from typing import Any

from synthloom.verify.logic.base import LogicTask, register_task
from synthloom.verify.logic.words import word_list

MIN_LENGTH = 4
PROMPT = ("Fill in this crossword puzzle grid where:\nacross words: {across}\ndown words: {down}"
          "\nGrid layout (X=letter position to fill in, 0=empty cell):\n{grid}\n\nINSTRUCTIONS:"
          "\n1. Replace each X with a letter to form the given words.\n2. Keep 0 positions as "
          "empty spaces in your answer.\n3. Place across words from left to right and down "
          "words from top to bottom.\n4. Format your answer as a 2D grid: one list per row, "
          "each letter in quotes and each empty cell as \" \", e.g. [[\"A\", \"B\", \" \"], "
          "[\"D\", \"E\", \"F\"]].")


def _runs(cells: list[str]) -> list[str]:
    """The unbroken runs of letters in a row or column."""
    return [r for r in "".join(c if c.strip() else " " for c in cells).split() if r]


def check_fill(grid: list[list[str]], shape: list[list[str]], across: list[str],
               down: list[str]) -> str | None:
    """None when ``grid`` keeps the shape and shows every word (the authors' rules)."""
    n, m = len(shape), len(shape[0])
    if len(grid) != n or any(len(row) != m for row in grid):
        return f"the grid is not {n}x{m}"
    for r in range(n):
        for c in range(m):
            letter = grid[r][c].strip()
            if shape[r][c] == "0" and letter:
                return f"row {r + 1}, column {c + 1} must stay empty"
            if shape[r][c] == "X" and not re.fullmatch(r"[a-z]", letter):
                return f"row {r + 1}, column {c + 1} needs a letter"
    rows = [run for row in grid for run in _runs(row)]
    cols = [run for col in zip(*grid, strict=True) for run in _runs(list(col))]
    for word in across:
        if not any(word in run for run in rows):
            return f"across word {word!r} is not in any row"
    for word in down:
        if not any(word in run for run in cols):
            return f"down word {word!r} is not in any column"
    return None


@cache
def _by_length() -> dict[int, list[str]]:
    """The word list by length, in list order (built once: it was 80% of the draw's time)."""
    by_length: dict[int, list[str]] = {}
    for w in word_list():
        by_length.setdefault(len(w), []).append(w)
    return by_length


@cache
def _with_letter(n: int, i: int, ch: str) -> frozenset[int]:
    """Indices (in ``_by_length()[n]``) of the words with ``ch`` at position ``i``."""
    return frozenset(k for k, w in enumerate(_by_length()[n]) if w[i] == ch)


def _fits(n: int, pattern: list[str]) -> list[str]:
    """The words of length ``n`` agreeing with ``pattern`` (" " = any letter), in list order
    (the same list a scan of every word gives, from the per-letter indexes)."""
    words = _by_length()[n]
    fixed = [(i, ch) for i, ch in enumerate(pattern) if ch != " "]
    if not fixed:
        return list(words)
    keep = frozenset.intersection(*(_with_letter(n, i, ch) for i, ch in fixed))
    return [words[k] for k in sorted(keep)]


def _draw(rng: random.Random, size: int, num_words: int,
          max_intersections: int) -> tuple[list[list[str]], list[str], list[str],
                                           list[list[str]]] | None:
    by_length = _by_length()
    h = [(r, c, n) for r in range(size) if rng.random() < 0.7
         for n in [rng.randint(MIN_LENGTH, size)] for c in [rng.randint(0, size - n)]]
    v = [(r, c, n) for c in range(size) if rng.random() < 0.7
         for n in [rng.randint(MIN_LENGTH, size)] for r in [rng.randint(0, size - n)]]
    rng.shuffle(h)
    rng.shuffle(v)
    h = h[:num_words // 2 + 1]
    v = v[:num_words - len(h)]
    shape = [["0"] * size for _ in range(size)]
    solution = [[" "] * size for _ in range(size)]
    for r, c, n in h:
        for i in range(n):
            shape[r][c + i] = "X"
    crossings = sum(shape[r + i][c] == "X" for r, c, n in v for i in range(n))
    if crossings > max_intersections or not h or not v:
        return None
    across = []
    for r, c, n in h:
        word = rng.choice(by_length[n])
        across.append(word)
        for i, ch in enumerate(word):
            solution[r][c + i] = ch
    down = []
    for r, c, n in v:
        fits = _fits(n, [solution[r + i][c] for i in range(n)])
        if not fits:
            return None
        word = rng.choice(fits)
        down.append(word)
        for i, ch in enumerate(word):
            solution[r + i][c] = ch
            shape[r + i][c] = "X"
    return shape, across, down, solution


@register_task
class Wordscapes(LogicTask):
    name = "wordscapes"
    synlogic = "games/tasks/wordscapes/scripts/wordscapes_game.py"
    description = "fill a small crossword from its across and down words"
    answer_format = "the filled grid as a list of rows, letters in quotes and \" \" for empty " \
                    "cells, e.g. [[\"c\", \"a\", \"t\"], [\" \", \" \", \"o\"]]"
    # The authors' knobs: size, num_words, max_intersections (their run.sh: 4, 5, 3).
    levels = {1: {"size": 4, "num_words": 2, "max_intersections": 1},
              2: {"size": 4, "num_words": 3, "max_intersections": 2},
              3: {"size": 5, "num_words": 4, "max_intersections": 3},
              4: {"size": 5, "num_words": 5, "max_intersections": 5},
              5: {"size": 6, "num_words": 6, "max_intersections": 8}}

    def generate(self, rng: random.Random, size: int = 5, num_words: int = 4,
                 max_intersections: int = 3) -> dict[str, Any]:
        if not MIN_LENGTH <= size <= 8 or num_words < 2:
            raise ValueError(f"size must be {MIN_LENGTH}-8 and num_words >= 2")
        while True:
            drawn = _draw(rng, size, num_words, max_intersections)
            if drawn is not None:
                break
        shape, across, down, solution = drawn
        grid_text = "\n".join("        ".join(row) for row in shape)
        question = PROMPT.format(across=",".join(across), down=",".join(down), grid=grid_text)
        answer = "[" + ", ".join("[" + ", ".join(f'"{v}"' for v in row) + "]"
                                 for row in solution) + "]"
        return {"question": question, "answer": answer, "shape": shape, "across": across,
                "down": down, "size": size}

    def verify(self, item: dict[str, Any], candidate: str) -> str | None:
        rows = re.findall(r"\[([^\[\]]*)\]", candidate)
        grid = [[v.lower() for v in re.findall(r"[\"']([^\"']?)[\"']", row)] for row in rows]
        return check_fill(grid, item["shape"], item["across"], item["down"])
