"""SynLogic's ``buggy_tables``, after games/tasks/buggy_tables: a table of 18 daily-habit columns
printed by "buggy" code, the bug described; undo it and compute the absolute difference of one
statistic of two columns over the rows that meet 2-3 conditions, to two decimals.

Kept from the authors' generator (``game_of_buggy_tables.py`` and ``handlers/``): the 18
columns and their value ranges (``tables_handler.generate_random_table``); all seven bug types
of ``error_generator.py`` - ``error`` (cells replaced by ERROR, their values listed in column
order), ``merge_rows`` (every two rows joined with " && "), ``rotate_columns`` (column i rotated
down i times), ``rotate_rows`` (row i rotated right i times), ``add_end_row`` (i random values
after row i; theirs draws them from the first column, dates), ``add_end_column`` (j values
below column j, drawn from the column's own range) and ``null`` (cells emptied, their
positions listed; the query then runs on the table with those nulls); markdown (column-major)
output only for error/merge/rotate, a row-major flat list otherwise, as theirs; the query of
``calculate_req_generator.py`` - two of the 15 numeric columns, one of mean, median, stdev,
sum, max, min, variance (sample stdev and variance, as pandas), 2-3 conditions with
``> < >= <= == !=`` or ``between`` (chance 0.2 per column) on the authors' per-column
thresholds, a null never meeting a condition, "0.00" when a statistic has no value (stdev and
variance: fewer than two) - and their question and bug texts (English ones). Levels follow
their ``run.sh``: rows 25-40 with 5-20% bad cells is level 3, 45-65 rows with 25-35% level 5.

Left out or changed, and why: the Chinese half of the prompts (English only here); their
compound statistics (range, ratio, percent change), which their own code comments out; the
answer in their JSON object (``{"result": [{"answer": ...}]}``) - here the usual
"Answer:" line, the shared reader also takes JSON; their "including the header" row count,
which is off by one (the count given is the data rows); ``merge_rows`` with an odd row count
pairs the last row with "null" values as their description says (their code leaves it alone);
the rotation examples name the second column / row (theirs name the first, which is rotated
0 times); null positions count rows from the first data row (their text says the header is included,
their code does not count it); dates are drawn before a fixed day, not ``datetime.now()``
(items must not change with the day they are made); their dataset-level cap of 10% "0.00"
answers is here per item: a query whose answer is "0.00" is drawn again up to 20 times.

The verifier recomputes the answer from the stored clean table, the null cells and the query,
and accepts any number equal to it at two decimals ("42", "42.0", "42.00").
"""

from __future__ import annotations

import random
import re
import statistics
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from synthloom.verify.logic.base import LogicTask, register_task

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
LAST_DAY = date(2025, 6, 30)
#: The authors' 18 columns: name -> (low, high) for integers; dates, times, weekdays apart.
COLUMNS: dict[str, tuple[int, int] | None] = {
    "date": None, "num_steps": (1000, 20000), "study_minutes": (0, 360),
    "exercise_minutes": (0, 120), "sleep_minutes": (300, 600), "bed_time": None,
    "num_messages": (0, 200), "num_emails": (0, 50), "num_calls": (0, 15),
    "calories_burned": (1500, 3500), "weekday": None, "calories_consumed": (1200, 3000),
    "num_meetings": (0, 8), "coding_minutes": (0, 480), "num_tasks_completed": (0, 20),
    "water_intake_ml": (500, 3000), "phone_screen_time_minutes": (30, 360),
    "music_listening_minutes": (0, 240)}
NAMES = list(COLUMNS)
NUMERIC = [c for c in NAMES if COLUMNS[c] is not None]
#: The authors' condition thresholds: column -> (base low, base high, half-width of between).
THRESHOLDS = {"num_steps": (10000, 20000, 1000), "study_minutes": (15, 30, 5),
              "exercise_minutes": (40, 60, 10), "sleep_minutes": (300, 400, 30),
              "num_messages": (3, 8, 1), "num_emails": (1, 5, 1), "num_calls": (1, 4, 1),
              "calories_burned": (600, 1000, 100), "calories_consumed": (1600, 2000, 200),
              "num_meetings": (1, 4, 1), "coding_minutes": (15, 30, 5),
              "num_tasks_completed": (2, 5, 1), "water_intake_ml": (2000, 3000, 200),
              "phone_screen_time_minutes": (20, 30, 5), "music_listening_minutes": (20, 30, 5)}
STATS = ("mean", "median", "stdev", "sum", "max", "min", "variance")
BUG_TYPES = ("error", "merge_rows", "rotate_columns", "rotate_rows", "add_end_row",
             "add_end_column", "null")
MARKDOWN_OK = ("error", "merge_rows", "rotate_columns", "rotate_rows")

BUG_TEXT = {
    "error": "However, the code to convert the table into markdown format was buggy and "
             "mistakenly replaced some values with \"ERROR\". The values for those cells in "
             "column-order are respectively as follows: {values}.",
    "merge_rows": "However, the code to convert the table into markdown format was buggy and "
                  "mistakenly merged every two rows of values (not including the header) into "
                  "one row by placing the values of the second row after the first row "
                  "separated by \" && \". In the case of an odd number of rows, the last row "
                  "was merged with a row full of \"null\" values.",
    "rotate_columns": "However, the code to convert the table into markdown format was buggy "
                      "and, except for the header row that was formatted correctly, the values "
                      "in the i-th column (0-indexed) were rotated down i times (e.g., for the "
                      "second column of values, the value at row j was moved to row j+1 and "
                      "the value in the last row was moved to the first row).",
    "rotate_rows": "However, the code to convert the table into markdown format was buggy and, "
                   "except for the header row that was formatted correctly, the values in the "
                   "i-th row (0-indexed) were rotated right i times (e.g., for the second row "
                   "of values, the value at column j was moved to column j+1 and the value in "
                   "the last column was moved to the first column).",
    "add_end_row": "However, the code to save the table was buggy and after saving each row, "
                   "it appended some random values to the end of the row. Specifically, at the "
                   "end of the i-th row (0-indexed), i random values were appended to the end "
                   "of the row.",
    "add_end_column": "However, the code to save the table was buggy and after saving each "
                      "column, it appended some random values to the end of the column. "
                      "Specifically, at the end of the j-th column (0-indexed), j random values "
                      "were appended to the end of the column.",
    "null": "However, the code to save the table was buggy and failed to save the null "
            "values. There were null values at the following locations ((row, column), "
            "0-indexed, row 0 being the first row after the header): {values}.",
}
QUERY = ("Compute the absolute difference between the {stat} of column {col1} and column "
         "{col2}, {conditions}. Round the result to 2 decimal places. The answer MUST always "
         "have exactly 2 decimal places (e.g., 42.00, 0.50). If it cannot be determined whether "
         "the condition is satisfied or not (e.g., due to null values that cannot be inferred "
         "from the rest of the table), assume the condition is not satisfied. If a value is "
         "null, ignore it from the computations. {special}")

Cell = int | float | str | None


def _int(rng: random.Random, low: int, high: int) -> int:
    """Uniform in [low, high] from one ``random()`` (a table is ~1,000 draws; ``randint`` is
    ~5x slower and was most of the generator's time)."""
    return low + int(rng.random() * (high - low + 1))


#: The 366 days a date is drawn from, newest first.
DAYS = tuple((LAST_DAY - timedelta(days=k)).isoformat() for k in range(366))


def _date(rng: random.Random) -> str:
    return DAYS[_int(rng, 0, 365)]


def _column(rng: random.Random, col: str, n: int) -> list[Cell]:
    """``n`` clean values of ``col``, drawn a column at a time as the authors' ``data = {col:
    gen(n)}`` (one comprehension per column: the table is most of the generator's time)."""
    r = rng.random
    if col == "date":
        return [DAYS[int(r() * 366)] for _ in range(n)]
    if col == "bed_time":
        return [f"{21 + int(r() * 3)}:{int(r() * 60):02d}" for _ in range(n)]
    if col == "weekday":
        return [WEEKDAYS[int(r() * 7)] for _ in range(n)]
    low, high = COLUMNS[col]  # type: ignore[misc]
    return [low + int(r() * (high - low + 1)) for _ in range(n)]


def _value(rng: random.Random, col: str) -> Cell:
    """One clean value of ``col`` (the authors' ``all_columns`` generators)."""
    if col == "date":
        return _date(rng)
    if col == "bed_time":
        return f"{_int(rng, 21, 23)}:{_int(rng, 0, 59):02d}"
    if col == "weekday":
        return WEEKDAYS[_int(rng, 0, 6)]
    low, high = COLUMNS[col]  # type: ignore[misc]
    return _int(rng, low, high)


def _noise(rng: random.Random, col: str, values: list[Cell], count: int) -> list[Cell]:
    """``count`` random values like ``col``'s (the authors' ``generate_random_for_column``:
    a number between 0.8 x the column's least and 1.2 x its largest, two decimals)."""
    if col in ("date", "bed_time", "weekday"):
        return [_value(rng, col) for _ in range(count)]
    nums = [v for v in values if isinstance(v, (int, float))]
    low, high = max(0, min(nums) * 0.8), max(nums) * 1.2
    return [round(rng.uniform(low, high), 2) for _ in range(count)]


def _condition(rng: random.Random, col: str) -> dict[str, Any]:
    ops = [">", "<", ">=", "<=", "==", "!="] + (["between"] if rng.random() < 0.2 else [])
    op = rng.choice(ops)
    low, high, half = THRESHOLDS[col]
    base = rng.randint(low, high)
    return {"col": col, "op": op, "value": [base - half, base + half] if op == "between"
            else base}


def _holds(v: Cell, op: str, x: Any) -> bool:
    if v is None or isinstance(v, str):
        return False  # a null never meets a condition
    if op == "between":
        return x[0] <= v <= x[1]
    return {">": v > x, "<": v < x, ">=": v >= x, "<=": v <= x, "==": v == x,
            "!=": v != x}[op]


def _stat(values: list[Any], stat: str) -> float:
    return float({"mean": statistics.mean, "median": statistics.median,
                  "stdev": statistics.stdev, "sum": sum, "max": max, "min": min,
                  "variance": statistics.variance}[stat](values))


def query_answer(rows: list[list[Cell]], query: dict[str, Any]) -> str:
    """The authors' ``execute_query``: filter by every condition, then |stat(col1) -
    stat(col2)| with two decimals; "0.00" where a statistic cannot be computed."""
    idx = {c: i for i, c in enumerate(NAMES)}
    kept = [r for r in rows if all(_holds(r[idx[c["col"]]], c["op"], c["value"])
                                   for c in query["conditions"])]
    need = 2 if query["stat"] in ("stdev", "variance") else 1
    cols = [[r[idx[c]] for r in kept if r[idx[c]] is not None] for c in query["cols"]]
    if any(len(vs) < need for vs in cols):
        return "0.00"
    return f"{abs(_stat(cols[0], query['stat']) - _stat(cols[1], query['stat'])):.2f}"


def with_nulls(rows: list[list[Cell]], nulls: list[list[int]]) -> list[list[Cell]]:
    out = [list(r) for r in rows]
    for i, j in nulls:
        out[i][j] = None
    return out


def _text(v: Cell) -> str:
    return "" if v is None else str(v)


def _markdown(header: list[str], rows: list[list[Cell]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(_text(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


def _row_major(header: list[str], rows: list[list[Cell]]) -> str:
    """The authors' ``transform_to_row_major``: the header, then every non-null value."""
    return "[" + ", ".join(header + [str(v) for r in rows for v in r if v is not None]) + "]"


def buggy_table(rng: random.Random, rows: list[list[Cell]], bug: str, rate: float,
                major: str) -> tuple[str, str, list[list[int]]]:
    """The printed table, the bug's description and (for ``null``) the emptied cells."""
    n, m = len(rows), len(NAMES)
    bad = [list(r) for r in rows]
    nulls: list[list[int]] = []
    text = BUG_TEXT[bug]
    if bug in ("error", "null"):
        cells = sorted(rng.sample([(i, j) for i in range(n) for j in range(m)],
                                  int(n * m * rate)), key=lambda p: (p[1], p[0]))
        for i, j in cells:
            bad[i][j] = "ERROR" if bug == "error" else None
        if bug == "error":
            text = text.format(values="[" + ", ".join(repr(rows[i][j]) for i, j in cells) + "]")
        else:
            nulls = [[i, j] for i, j in sorted(cells)]
            text = text.format(values=", ".join(f"({i}, {j})" for i, j in nulls))
    elif bug == "merge_rows":
        bad = [[f"{_text(a)} && {_text(b) if k + 1 < n else 'null'}"
                for a, b in zip(rows[k], rows[k + 1] if k + 1 < n else rows[k], strict=True)]
               for k in range(0, n, 2)]
    elif bug == "rotate_columns":
        for j in range(m):
            col = [r[j] for r in rows]
            s = j % n
            for i, v in enumerate(col[-s:] + col[:-s] if s else col):
                bad[i][j] = v
    elif bug == "rotate_rows":
        bad = [r[-(i % m):] + r[:-(i % m)] if i % m else list(r) for i, r in enumerate(rows)]
    elif bug == "add_end_row":
        first = [r[0] for r in rows]
        bad = [list(r) + _noise(rng, NAMES[0], first, i) for i, r in enumerate(rows)]
    elif bug == "add_end_column":
        extra: list[list[Cell]] = [[None] * m for _ in range(m - 1)]
        for j in range(m):
            for i, v in enumerate(_noise(rng, NAMES[j], [r[j] for r in rows], j)):
                extra[i][j] = v
        bad = bad + extra
    table = _markdown(NAMES, bad) if major == "col" else _row_major(NAMES, bad)
    return table, text, nulls


@register_task
class BuggyTables(LogicTask):
    name = "buggy_tables"
    synlogic = "games/tasks/buggy_tables/scripts/game_of_buggy_tables.py"
    description = "undo a described table bug, then compute a filtered statistic difference"
    answer_format = "a number with exactly 2 decimal places, e.g. 42.00"
    levels = {1: {"rows": (8, 12), "bug_rate": (0.05, 0.1)},
              2: {"rows": (15, 20), "bug_rate": (0.05, 0.15)},
              3: {"rows": (25, 40), "bug_rate": (0.05, 0.2)},
              4: {"rows": (35, 50), "bug_rate": (0.15, 0.25)},
              5: {"rows": (45, 65), "bug_rate": (0.25, 0.35)}}

    def generate(self, rng: random.Random, rows: tuple[int, int] = (25, 40),
                 bug_rate: tuple[float, float] = (0.05, 0.2),
                 bug_types: list[str] | None = None) -> dict[str, Any]:
        kinds = list(bug_types or BUG_TYPES)
        if not 2 <= rows[0] <= rows[1] or any(k not in BUG_TYPES for k in kinds) \
                or not 0 < bug_rate[0] <= bug_rate[1] < 1:
            raise ValueError(f"rows >= 2, 0 < bug_rate < 1, bug types among {BUG_TYPES}")
        n = rng.randint(*rows)
        bug = rng.choice(kinds)
        major = rng.choice(["col", "row"]) if bug in MARKDOWN_OK else "row"
        rate = round(rng.uniform(*bug_rate), 2)
        clean = [list(row) for row in zip(*(_column(rng, c, n) for c in NAMES), strict=True)]
        table, bug_text, nulls = buggy_table(rng, clean, bug, rate, major)
        data = with_nulls(clean, nulls)
        for _ in range(20):  # a "0.00" answer is drawn again (see the docstring)
            query = {"cols": rng.sample(NUMERIC, 2), "stat": rng.choice(STATS),
                     "conditions": [_condition(rng, c) for c in
                                    rng.sample(NUMERIC, rng.choice([2, 3]))]}
            answer = query_answer(data, query)
            if answer != "0.00":
                break
        stat = query["stat"]
        special = f"If any of the {stat}s cannot be computed due to there being no values" + \
            (" or only one value" if stat in ("stdev", "variance") else "") + \
            ", the final answer must be \"0.00\"."
        conditions = ", ".join(f"the {c['col']} was {c['op']} {c['value']}"
                               for c in query["conditions"])
        ask = QUERY.format(stat=stat, col1=query["cols"][0], col2=query["cols"][1],
                           conditions=conditions, special=special)
        verb = "saved in a" if bug in ("add_end_row", "add_end_column", "null") else \
            "converted to"
        shape = "row-major" if major == "row" else "markdown"
        question = (f"I have a table with {n} rows (not counting the header) and {len(NAMES)} "
                    f"columns. The table was {verb} {shape} format as follows:\n{table}.\n"
                    f"{bug_text}\n{ask}")
        return {"question": question, "answer": answer, "rows": clean, "bug_type": bug,
                "major": major, "bug_rate": rate if bug in ("error", "null") else None,
                "nulls": nulls, "query": query}

    def verify(self, item: dict[str, Any], candidate: str) -> str | None:
        want = query_answer(with_nulls(item["rows"], item["nulls"]), item["query"])
        text = candidate.strip().strip("*$`").strip()
        if not re.fullmatch(r"-?\d+(\.\d+)?", text):
            return f"not a number: {text[:40]!r}"
        try:
            ok = Decimal(text) == Decimal(want)
        except InvalidOperation:
            return f"not a number: {text[:40]!r}"
        return None if ok else f"not the value ({text} != {want})"
