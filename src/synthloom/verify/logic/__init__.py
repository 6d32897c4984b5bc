"""Logic tasks (SynLogic, arXiv 2505.19641): generators with difficulty knobs and verifiers.

``TASKS`` maps a task name to its :class:`LogicTask`; importing this package registers the
shipped tasks (one module per task or small family). See docs/verify.md, "Logic tasks".
"""

from __future__ import annotations

from synthloom.verify.logic import (  # noqa: F401 - importing registers the tasks
    arc,
    arrows,
    boolexpr,
    brackets,
    buggytables,
    ciphers,
    counting,
    cryptarithm,
    dyckthoughts,
    exchange,
    family,
    fillgrids,
    game24,
    graphs,
    grids,
    knights,
    lies,
    mathpath,
    minesweeper,
    numberwall,
    numeric,
    numgrids,
    operation,
    placement,
    properties,
    regions,
    rulecipher,
    schedule,
    sortmistake,
    space,
    words,
    wordscapes,
    zebra,
)
from synthloom.verify.logic.base import (
    ANSWER_LINE,
    LEVELS,
    TASKS,
    LogicTask,
    check_record,
    extract_final,
    get_task,
    make_item,
    parse_levels,
    parse_tasks,
    register_task,
    verify_answer,
)

#: Listing order of the shipped tasks ("all" in recipes follows it; tasks registered later
#: by other code come after).
ORDER = ["sudoku", "game24", "cryptarithm", "zebra", "word_sorting", "boolean_expressions",
         "dyck_language", "dyck_language_errors", "math_path", "skyscraper_puzzle", "futoshiki",
         "kukurasu", "star_placement_puzzle", "numbrix", "survo", "calcudoko",
         "campsite", "norinori", "minesweeper", "number_wall", "time_sequence", "web_of_lies",
         "object_counting", "object_properties", "operation",
         "goods_exchange", "word_sorting_mistake",
         "dyck_language_reasoning_errors", "arrow_maze", "wordscapes", "arc_agi",
         "space_reasoning", "space_reasoning_tree", "buggy_tables", "cipher",
         # ours (not SynLogic's; see each task's ``synlogic``):
         "caesar", "vigenere", "knights_knaves", "maze", "n_queens", "graph_coloring", "bit_ops",
         "sequence", "word_sorting_rules", "anagram"]
_shipped = {name: TASKS.pop(name) for name in ORDER}
_rest = dict(TASKS)
TASKS.clear()
TASKS.update(_shipped)
TASKS.update(_rest)

__all__ = ["ANSWER_LINE", "LEVELS", "TASKS", "LogicTask", "check_record", "extract_final",
           "get_task", "make_item", "parse_levels", "parse_tasks", "register_task", "verify_answer"]
