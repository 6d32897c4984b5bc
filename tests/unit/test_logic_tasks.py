"""The logic-task registry: every task generates at every level, its verifier accepts the
stored answer and other correct answers, rejects corrupted ones; unique tasks have one
solution; items are a pure function of (task, difficulty, seed)."""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import pytest

from synthloom.verify.logic import (
    LEVELS,
    TASKS,
    extract_final,
    make_item,
    parse_levels,
    parse_tasks,
    verify_answer,
)
from synthloom.verify.logic.game24 import FRACTION_ONLY, evaluate, solve24
from synthloom.verify.logic.grids import maze_distance, sudoku_solutions
from synthloom.verify.logic.knights import holds
from synthloom.verify.logic.mathpath import _TOKEN
from synthloom.verify.logic.mathpath import evaluate as path_value
from synthloom.verify.logic.numeric import apply_ops
from synthloom.verify.logic.words import word_set

SEEDS = range(4)


def _swap_sudoku(item: dict) -> str:
    rows = item["answer"].split()
    row = rows[0]
    return " ".join([row[1] + row[0] + row[2:], *rows[1:]])  # breaks two columns


def _game24(item: dict) -> str:
    nums = item["numbers"]
    total = sum(nums)
    return " + ".join(map(str, nums)) if total != 24 else " * ".join(map(str, nums))


def _crypt(item: dict) -> str:
    pairs = [p.split("=") for p in item["answer"].split(", ")]
    (a, da), (b, db) = pairs[0], pairs[1]
    pairs[0], pairs[1] = [a, db], [b, da]  # two letters trade digits
    return ", ".join(f"{k}={v}" for k, v in pairs)


def _flip_letter(item: dict) -> str:
    text = item["answer"]
    first = "B" if text[0] == "A" else "A"
    return first + text[1:]


def _knights(item: dict) -> str:
    parts = item["answer"].split(", ")
    name, kind = parts[0].split(": ")
    parts[0] = f"{name}: {'knave' if kind == 'knight' else 'knight'}"  # one person flipped
    return ", ".join(parts)


def _zebra(item: dict) -> str:
    groups = item["answer"].split("; ")
    groups[0], groups[1] = groups[1], groups[0]
    return "; ".join(groups)


def _queens(item: dict) -> str:
    cols = item["answer"].split(", ")
    cols[0] = cols[1]  # two queens in one column
    return ", ".join(cols)


def _coloring(item: dict) -> str:
    colors = item["answer"].split(", ")
    a, b = item["edges"][0]
    colors[a - 1] = colors[b - 1]
    return ", ".join(colors)


def _bits(item: dict) -> str:
    bits = item["answer"]
    return bits[:-1] + ("1" if bits[-1] == "0" else "0")


def _sorting(item: dict) -> str:
    words = item["answer"].split(", ")
    words[0], words[1] = words[1], words[0]
    return ", ".join(words)


def _toggle_option(item: dict) -> str:
    chosen = set(item["answer"].split(","))
    return ",".join(sorted(chosen ^ {"A"})) or "none"


def _false_equation(item: dict) -> str:
    """One digit of the left side changed so that the equation no longer holds."""
    left, right = item["answer"].split(" = ")
    for i, ch in enumerate(left):
        for d in "0123456789":
            if ch.isdigit() and d != ch:
                tokens = _TOKEN.findall(left[:i] + d + left[i + 1:])
                try:
                    if path_value(tokens) != int(right):
                        return f"{left[:i]}{d}{left[i + 1:]} = {right}"
                except ValueError:  # division by zero: also a wrong answer
                    return f"{left[:i]}{d}{left[i + 1:]} = {right}"
    raise AssertionError(f"no digit change breaks {item['answer']}")


def _swap_in_first_row(item: dict) -> str:
    n = item["n"]
    cells = [int(v) for v in re.findall(r"\d+", item["answer"])]
    cells[0], cells[1] = cells[1], cells[0]  # breaks two columns
    return str([cells[r * n:(r + 1) * n] for r in range(n)])


def _flip_corner(item: dict) -> str:
    grid = json.loads(item["answer"])
    grid[0][0] = "X" if grid[0][0] == "1" else "1"  # changes row 1's sum
    return json.dumps(grid)


def _move_star(item: dict) -> str:
    """The first star one column to the right, or left at the edge."""
    first = re.search(r"\((\d+), (\d+)\)", item["answer"])
    assert first is not None
    row, col = int(first[1]), int(first[2])
    col = col + 1 if col < item["n"] else col - 1
    return item["answer"][:first.start()] + f"({row}, {col})" + item["answer"][first.end():]


def _swap_blank_and_shown(item: dict) -> str:
    """A blank's number raised by one: the multiset and a sum both break."""
    matrix = json.loads(item["answer"])
    r, c = next((r, c) for r, row in enumerate(item["shown"]) for c, v in enumerate(row)
                if v is None)
    matrix[r][c] += 1
    return json.dumps(matrix)


def _turn_hidden_arrow(item: dict) -> str:
    """The first hidden arrow turned: its number's rays lose at least that cell."""
    grid = json.loads(item["answer"].replace("'", '"'))
    r, c = next((r, c) for r, row in enumerate(item["shown"]) for c, v in enumerate(row)
                if v == "X")
    grid[r][c] = "↑" if grid[r][c] != "↑" else "↓"
    return json.dumps(grid, ensure_ascii=False)


def _swap_two_items(item: dict) -> str:
    """The first two people's final items swapped (the items are distinct)."""
    pairs = re.findall(r"\('([^']+)','([^']+)'\)", item["answer"])
    (a, x), (b, y) = pairs[:2]
    pairs[:2] = [(a, y), (b, x)]
    return "(" + ",".join(f"('{p}','{o}')" for p, o in pairs) + ")"


CORRUPT: dict[str, Callable[[dict], str]] = {
    "sudoku": _swap_sudoku,
    "game24": _game24,
    "cryptarithm": _crypt,
    "caesar": _flip_letter,
    "vigenere": _flip_letter,
    "knights_knaves": _knights,
    "zebra": _zebra,
    "maze": lambda item: item["answer"][:-1],
    "n_queens": _queens,
    "graph_coloring": _coloring,
    "bit_ops": _bits,
    "sequence": lambda item: str(int(item["answer"]) + 1),
    "word_sorting_rules": _sorting,
    "anagram": lambda item: item["letters"],
    # SynLogic's tasks added with the modified-alphabet word_sorting:
    "word_sorting": _sorting,
    "boolean_expressions": _toggle_option,
    "dyck_language": lambda item: item["answer"][:-1],  # one closing bracket short
    "dyck_language_errors": lambda item: str(int(item["answer"]) + 1),
    "math_path": _false_equation,
    "skyscraper_puzzle": _swap_in_first_row,
    "futoshiki": _swap_in_first_row,
    "kukurasu": _flip_corner,
    "star_placement_puzzle": _move_star,
    "numbrix": _swap_in_first_row,
    "survo": _swap_blank_and_shown,
    "calcudoko": _swap_in_first_row,
    "campsite": lambda item: item["answer"].replace("'C'", "'X'", 1),  # one tent short
    "norinori": lambda item: item["answer"].rsplit(", [", 1)[0] + "]",  # last domino gone
    "minesweeper": lambda item: item["answer"].rsplit(", (", 1)[0].rstrip("]") + "]"
    if ", (" in item["answer"] else "[]",  # a proven mine left out
    "number_wall": lambda item: item["answer"].replace("'A'", "'X'", 1),  # one wall opened
    "time_sequence": lambda item: item["answer"].replace("[", "[1", 1),  # 10x the duration
    "web_of_lies": lambda item: ("no" if item["answer"].startswith("yes") else "yes") +
    item["answer"][item["answer"].index(","):] if "," in item["answer"] else
    ("no" if item["answer"] == "yes" else "yes"),  # the first person flipped
    "object_counting": lambda item: str(int(item["answer"]) + 1),
    "goods_exchange": _swap_two_items,
    "object_properties": lambda item: "0" if item["answer"] == "unknown" else
    str(int(item["answer"]) + 1),
    "operation": lambda item: item["answer"] + "1",  # ten times off, and more
    "arrow_maze": _turn_hidden_arrow,
    "space_reasoning_tree": lambda item: item["answer"].rsplit(", ", 1)[0]
    if ", " in item["answer"] else item["answer"] + ", " + item["target"],  # one cousin off
    "arc_agi": lambda item: re.sub(r"\d", lambda m: str((int(m.group()) + 1) % 10),
                                   item["answer"], count=1),  # one cell recolored
    "wordscapes": lambda item: re.sub(r'"([a-z])"', lambda m: '"q"' if m.group(1) != "q"
                                      else '"z"', item["answer"], count=1),  # a letter changed
    "word_sorting_mistake": lambda item: "1" if item["answer"] == "No" else
    str(int(item["answer"]) + 1),
    "dyck_language_reasoning_errors": lambda item: item["answer"].rsplit(",", 1)[0]
    if "," in item["answer"] else item["answer"] + ",1" if item["answer"] != "1" else "2",
    "space_reasoning": lambda item: item["walks"][0][0] if item["answer"] != item["walks"][0][0]
    else item["walks"][0][-1],  # another item seen on the way
    "buggy_tables": lambda item: f"{float(item['answer']) + 0.01:.2f}",
    "cipher": lambda item: item["answer"].replace(item["answer"][2], "9" if
                                                  item["answer"][2].isalpha() else "A", 1),
}


def test_registry_has_the_tasks() -> None:
    assert len(TASKS) >= 12
    assert set(CORRUPT) == set(TASKS), "every task needs a corruption test"
    for name, task in TASKS.items():
        assert task.name == name and set(task.levels) == set(LEVELS)
        assert task.answer_format and task.description
    assert {n for n, t in TASKS.items() if t.unique} >= {"sudoku", "zebra", "knights_knaves",
                                                          "cryptarithm"}


@pytest.mark.parametrize("name", sorted(CORRUPT))
def test_every_level_generates_verifies_and_rejects_corruption(name: str) -> None:
    task = TASKS[name]
    for level in LEVELS:
        for seed in SEEDS:
            item = make_item(name, level, seed)
            where = f"{name} L{level} seed {seed}"
            assert item["task"] == name and item["difficulty"] == level and item["seed"] == seed
            assert task.answer_format in item["question"] and "Answer:" in item["question"]
            assert verify_answer(item, item["answer"]) is None, where
            # Round trip through JSON (the stored record) keeps it checkable.
            stored = json.loads(json.dumps(item))
            assert verify_answer(stored, f"Answer: {item['answer']}") is None
            bad = CORRUPT[name](item)
            assert bad != item["answer"], where
            assert verify_answer(item, bad) is not None, f"{where}: accepted {bad!r}"
            assert verify_answer(item, "") == "no answer"
            assert verify_answer(item, "I do not know") is not None
            if task.unique:
                assert task.count_solutions(item, 2) == 1, where


def test_items_are_deterministic_and_seed_dependent() -> None:
    for name in TASKS:
        for level in (1, 5):
            assert make_item(name, level, 7) == make_item(name, level, 7)
        questions = {make_item(name, 3, s)["question"] for s in range(6)}
        assert len(questions) >= 4, name  # different seeds, different puzzles


def test_items_are_the_same_in_a_fresh_interpreter() -> None:
    """String seeds are hashed with SHA-512 by CPython, not the salted hash(): the same items
    under another PYTHONHASHSEED."""
    code = ("import json; from synthloom.verify.logic import TASKS, make_item; "
            "print(json.dumps([make_item(t, 4, 11) for t in TASKS]))")
    env = {**os.environ, "PYTHONHASHSEED": "4242"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=120, check=True)
    assert json.loads(done.stdout) == [make_item(t, 4, 11) for t in TASKS]


def test_difficulty_knobs_change_the_puzzles() -> None:
    assert make_item("sudoku", 1, 0)["size"] == 4 and make_item("sudoku", 5, 0)["size"] == 9
    assert make_item("sudoku", 5, 0)["blanks"] > make_item("sudoku", 3, 0)["blanks"]
    assert len(make_item("knights_knaves", 5, 0)["people"]) == 5
    z1, z5 = make_item("zebra", 1, 0), make_item("zebra", 5, 0)
    assert (z1["houses"], len(z1["attributes"])) == (3, 2)
    assert (z5["houses"], len(z5["attributes"])) == (5, 4)
    assert len(make_item("maze", 5, 0)["maze"]) > len(make_item("maze", 1, 0)["maze"])
    assert make_item("n_queens", 5, 0)["n"] == 10
    assert len({make_item("n_queens", 1, s)["question"] for s in range(20)}) >= 8
    # Explicit knobs override the level's.
    big = make_item("graph_coloring", 1, 0, {"nodes": 9})
    assert big["nodes"] == 9 and verify_answer(big, big["answer"]) is None


def test_sudoku_solver_counts() -> None:
    item = make_item("sudoku", 4, 1)
    grid = [0 if ch == "." else int(ch) for ch in "".join(item["puzzle"])]
    assert sudoku_solutions(grid, 9, 2) == 1
    assert sudoku_solutions([0] * 81, 9, 2) == 2  # the empty grid: stops counting at 2
    assert sudoku_solutions([0] * 16, 4, 1000) == 288  # all 4x4 Sudokus
    clash = list(grid)
    first_blank = clash.index(0)
    row = first_blank // 9
    clash[first_blank] = next(v for v in grid[row * 9:row * 9 + 9] if v)
    assert sudoku_solutions(clash, 9, 2) == 0


def test_uniqueness_breaks_when_information_is_removed() -> None:
    zebra = make_item("zebra", 3, 2)
    assert TASKS["zebra"].count_solutions({**zebra, "clues": zebra["clues"][1:]}, 2) == 2
    knights = make_item("knights_knaves", 3, 2)
    # Everyone says "I am a knight": true of a knight, false of a knave - anyone can be either.
    selfish = [["is", i, True] for i in range(len(knights["people"]))]
    assert TASKS["knights_knaves"].count_solutions({**knights, "statements": selfish}, 2) == 2
    crypt = {"words": ["AB", "CD"], "result": "EFG"}
    assert TASKS["cryptarithm"].count_solutions(crypt, 2) == 2
    send = {"words": ["SEND", "MORE"], "result": "MONEY"}
    assert TASKS["cryptarithm"].count_solutions(send, 5) == 1
    assert TASKS["cryptarithm"].verify(send, "S=9, E=5, N=6, D=7, M=1, O=0, R=8, Y=2") is None


def test_zebra_pruned_clues_are_all_needed() -> None:
    item = make_item("zebra", 4, 5)
    for i in range(len(item["clues"])):
        rest = item["clues"][:i] + item["clues"][i + 1:]
        assert TASKS["zebra"].count_solutions({**item, "clues": rest}, 2) == 2


def test_verifiers_accept_other_correct_answers() -> None:
    # game24: any expression, not the stored one.
    item = {"task": "game24", "numbers": [4, 6, 8, 8], "target": 24}
    for expr, ok in [("4 * 6 * (8 / 8)", True), ("(4+8)*(8-6)", True),
                     ("6 × 4 × 8 ÷ 8 = 24", True), ("(8 - 4) * 6", False),  # numbers unused
                     ("4 * 6 + 8 - 8 + 0", False), ("4 + 6 + 8 + 8", False)]:
        assert (verify_answer(item, expr) is None) == ok, expr
    # n-queens without given queens: every solution counts.
    queens = make_item("n_queens", 1, 0, {"n": 4, "given": 0})
    assert queens["queens"] == []
    assert verify_answer(queens, "2, 4, 1, 3") is None
    assert verify_answer(queens, "3, 1, 4, 2") is None
    # graph coloring: renaming the colors keeps a coloring proper.
    graph = make_item("graph_coloring", 3, 1)
    swap = {"1": "2", "2": "1", "3": "3"}
    renamed = ", ".join(swap[c] for c in graph["answer"].split(", "))
    assert verify_answer(graph, renamed) is None
    labelled = ", ".join(f"{i}: {c}" for i, c in enumerate(graph["answer"].split(", "), 1))
    assert verify_answer(graph, labelled) is None
    assert verify_answer(graph, graph["answer"] + ", 1") is not None  # one color too many
    # anagram: any listed word with the letters.
    assert {"heart", "earth"} <= word_set()
    anagram = {"task": "anagram", "letters": "TRAEH"}
    assert verify_answer(anagram, "heart") is None and verify_answer(anagram, "Earth.") is None
    assert verify_answer(anagram, "hater") is not None  # same letters, not on the list
    # maze with loops: a longer path is fine unless the shortest is asked for.
    maze = make_item("maze", 4, 0)
    detour = maze["answer"][0] + {"U": "D", "D": "U", "L": "R", "R": "L"}[maze["answer"][0]] \
        + maze["answer"]
    assert verify_answer({**maze, "shortest": False}, detour) is None
    assert "shortest" in verify_answer(maze, detour)
    assert len(maze["answer"]) == maze_distance(maze["maze"])


def test_game24_verifier_is_safe_and_exact() -> None:
    item = {"task": "game24", "numbers": [1, 5, 5, 5], "target": 24}
    assert verify_answer(item, "5 * (5 - 1 / 5)") is None  # needs a fraction on the way
    assert verify_answer(item, "5 * (5 - 1 // 5)") is not None  # floor division: refused
    assert "not" in verify_answer(item, "__import__('os').system('true')")
    assert verify_answer(item, "(5 - 5) / (5 - 5) + 1") == "division by zero"
    assert verify_answer(item, "-5 + 5 * 5 + 1 - 1 * 0") is not None  # unary minus, wrong nums
    assert verify_answer(item, "5.0 * (5 - 1 / 5)") is not None  # floats are not given numbers
    assert verify_answer(item, "5 ** 2 - 1 * 5 / 5") is not None
    value, used = evaluate("(8 - 4) * (7 - 1)")
    assert value == Fraction(24) and sorted(used) == [1, 4, 7, 8]


def test_game24_fraction_table() -> None:
    for quad in FRACTION_ONLY:  # each makes 24, but never through integers alone
        expr, ways = solve24(list(quad))
        assert expr is not None and ways > 0
        assert solve24(list(quad), integral=True) == (None, 0)
        assert evaluate(expr)[0] == 24
    rng = random.Random(3)
    for _ in range(40):  # and other solvable sets are solvable in the integers
        quad = tuple(sorted(rng.randint(1, 13) for _ in range(4)))
        if quad not in FRACTION_ONLY and solve24(list(quad))[0] is not None:
            assert solve24(list(quad), integral=True)[0] is not None, quad
    hard = make_item("game24", 5, 0)
    assert tuple(hard["numbers"]) in FRACTION_ONLY


def test_verifiers_recompute_from_the_puzzle_not_the_stored_answer() -> None:
    for name in ("bit_ops", "sequence", "caesar", "vigenere", "sudoku", "knights_knaves"):
        item = make_item(name, 3, 1)
        lying = {**item, "answer": "nonsense"}
        assert verify_answer(lying, item["answer"]) is None, name
    bits = make_item("bit_ops", 5, 2)
    assert int(bits["answer"], 2) == apply_ops(int(bits["start"], 2), bits["operations"], 12)
    knights = make_item("knights_knaves", 4, 3)
    roles = tuple("knight" in part for part in knights["answer"].split(", "))
    assert all(holds(s, roles) == roles[i] for i, s in enumerate(knights["statements"]))


def test_caesar_with_unknown_shift_accepts_only_readable_shifts() -> None:
    item = make_item("caesar", 5, 0)
    assert item["shift"] is None
    assert verify_answer(item, item["answer"].lower()) is None
    assert "not a Caesar shift" in verify_answer(item, "HELLO THERE")
    assert verify_answer(item, item["text"]) is not None  # the ciphertext itself: shift 0


def test_extract_final() -> None:
    assert extract_final("think...\nAnswer: 42") == "42"
    assert extract_final("Answer: 1\nmore\n**Final answer:** `7, 3`.") == "7, 3"
    assert extract_final("answer:\n\n  RRDD\n") == "RRDD"
    assert extract_final("no marker here\n\n 12 \n") == "12"
    assert extract_final("") is None and extract_final("Answer:   ") is None
    assert extract_final("The answer: is tricky\nAnswer: \"SHADOW BLUE\"") == "SHADOW BLUE"


def test_parsers() -> None:
    assert parse_tasks("all") == list(TASKS)
    assert parse_tasks("maze, sudoku,maze") == ["maze", "sudoku"]
    assert parse_tasks(["zebra"]) == ["zebra"]
    with pytest.raises(ValueError, match="unknown logic tasks"):
        parse_tasks("sudoku,chess")
    assert parse_levels("mix") == [1, 2, 3, 4, 5] and parse_levels("2-4") == [2, 3, 4]
    assert parse_levels([1, 5]) == [1, 5] and parse_levels(3) == [3]
    for bad in (0, "6", True, "x"):
        with pytest.raises(ValueError):
            parse_levels(bad)  # type: ignore[arg-type]


def test_a_broken_record_is_a_reason_not_a_crash() -> None:
    item: dict[str, Any] = make_item("zebra", 2, 0)
    del item["clues"]
    assert verify_answer(item, make_item("zebra", 2, 0)["answer"]).startswith("cannot check")
    assert verify_answer({"task": "chess"}, "e4").startswith("cannot check")


def test_a_unique_task_must_count_its_solutions() -> None:
    from synthloom.verify.logic.base import LogicTask, register_task

    class Lazy(LogicTask):
        name = "lazy_unique"
        unique = True

        def generate(self, rng, **knobs):
            return {"question": "?", "answer": "1"}

        def verify(self, item, candidate):
            return None

    with pytest.raises(TypeError, match="must count its solutions"):
        register_task(Lazy)
    assert "lazy_unique" not in TASKS
    assert TASKS["game24"].count_solutions({}, 2) is None  # any-answer tasks do not count
