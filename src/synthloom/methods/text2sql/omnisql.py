"""OmniSQL's prompt parts and post-processing rules (RUCKBReasoning/OmniSQL, data_synthesis/).

The repository has no licence file, so the wording here is ours; the structure and parameters
are the authors': four complexity levels, each with criteria and one example query
(``sql_synthesis/generate_sql_synthesis_prompts.py``); 0-2 SQLite functions sampled per prompt
(``randint(0, 2)`` from ``sqlite_funcs.json``); up to 4 sampled ``INSERT`` statements (2 rows
per table) for predicates; a result column count drawn from ``geometric(0.6)``; the last
```sql block of an answer is its query (``parse_response``); dedup by query plan
(``dedup_using_query_plan``) or by value-free template (``obtain_sql_template``); majority vote
over the execution results of sampled CoT solutions, at least three valid
(``cot_synthesis/post_process_cot.py``); the most central question candidate by embedding
(``question_synthesis/post_process_questions.py``).
"""

from __future__ import annotations

import random
import re
from typing import Any

from synthloom.core.fingerprint import text_hash

#: OmniSQL's four levels (their "Simple", "Moderate", "Complex", "Highly Complex").
COMPLEXITIES = ("simple", "moderate", "complex", "highly-complex")
LEVEL_NAMES = {"simple": "Simple", "moderate": "Moderate", "complex": "Complex",
               "highly-complex": "Highly Complex"}

#: Criteria per level: the authors' bullet points, restated; example queries are ours.
CRITERIA = {
    "simple": """Simple SQL queries may satisfy one or more of the following criteria:
- They select data from a single table only.
- Basic aggregate functions are allowed: COUNT, SUM, AVG, MIN, MAX.
- No joins: the query works on one table.

Example of a Simple SQL query:
```sql
SELECT title, price
FROM books
WHERE price > 20
ORDER BY price DESC;
```""",
    "moderate": """Moderate SQL queries may satisfy one or more of the following criteria:
- They join tables (JOIN, INNER JOIN, LEFT JOIN, CROSS JOIN, ...).
- They have subqueries in the SELECT or WHERE clause.
- They use aggregate functions with GROUP BY.
- They have complex WHERE conditions with IN, BETWEEN or LIKE.
- They filter aggregated results with HAVING.
- They use aggregate functions such as COUNT, SUM, AVG, MIN, MAX.

Example of a Moderate SQL query:
```sql
SELECT a.name, COUNT(b.book_id) AS books, AVG(b.price) AS average_price
FROM authors a
INNER JOIN books b ON b.author_id = a.author_id
LEFT JOIN reviews r ON r.book_id = b.book_id
WHERE b.year BETWEEN 1990 AND 2020
GROUP BY a.name
HAVING COUNT(b.book_id) > 1;
```""",
    "complex": """Complex SQL queries may satisfy one or more of the following criteria:
- They contain complex nested subqueries.
- They use several kinds of joins, including self-joins.
- They use window functions such as ROW_NUMBER or RANK.
- They use Common Table Expressions (CTEs) for readability.
- They combine several aggregate functions.
- They have complex WHERE and HAVING clauses with several conditions.
- They use advanced functions and operators.

Example of a Complex SQL query:
```sql
WITH ranked AS (
    SELECT book_id, title, genre,
           RANK() OVER (PARTITION BY genre ORDER BY price DESC) AS price_rank
    FROM books
)
SELECT r.title, r.genre, a.name
FROM ranked r
JOIN books b ON b.book_id = r.book_id
JOIN authors a ON a.author_id = b.author_id
WHERE r.price_rank <= 3;
```""",
    "highly-complex": """Highly complex SQL queries may satisfy one or more of the following criteria:
- They have several Common Table Expressions.
- They combine nested subqueries with several joins.
- They use recursive CTEs for hierarchical or recursive questions.
- They use advanced window functions extensively.
- They may combine result sets with UNION or UNION ALL.
- They implement complex logic with analytical functions.
- They use a wide range of SQL clauses, conditions and functions.

Example of a Highly Complex SQL query:
```sql
WITH RECURSIVE months(n) AS (
    SELECT 1 UNION ALL SELECT n + 1 FROM months WHERE n < 12
),
monthly AS (
    SELECT CAST(strftime('%m', o.order_date) AS INTEGER) AS month, SUM(i.quantity) AS sold
    FROM orders o
    JOIN order_items i ON i.order_id = o.order_id
    GROUP BY month
),
totals AS (
    SELECT m.n AS month, COALESCE(monthly.sold, 0) AS sold
    FROM months m LEFT JOIN monthly ON monthly.month = m.n
)
SELECT month, sold,
       SUM(sold) OVER (ORDER BY month) AS running_total,
       sold - LAG(sold, 1, 0) OVER (ORDER BY month) AS change
FROM totals
ORDER BY month;
```""",
}

#: SQLite functions to sample from (OmniSQL's sqlite_funcs.json lists 97 with SQLite's doc
#: text; these are the same functions' groups, described in our words).
SQLITE_FUNCTIONS = (
    "ABS(X): the absolute value of X.",
    "COALESCE(X, Y, ...): the first argument that is not NULL.",
    "IFNULL(X, Y): X, or Y when X is NULL.",
    "IIF(C, X, Y): X when condition C is true, else Y.",
    "INSTR(X, Y): the 1-based position of string Y in X, 0 if absent.",
    "LENGTH(X): the number of characters in string X.",
    "LOWER(X) / UPPER(X): X in lower / upper case.",
    "LTRIM(X) / RTRIM(X) / TRIM(X): X without leading / trailing / both spaces.",
    "NULLIF(X, Y): NULL when X equals Y, else X.",
    "PRINTF(FORMAT, ...): a string formatted like C's printf.",
    "REPLACE(X, Y, Z): X with every Y replaced by Z.",
    "ROUND(X, Y): X rounded to Y digits after the decimal point.",
    "SUBSTR(X, Y, Z): Z characters of X starting at position Y.",
    "TYPEOF(X): the storage class of X ('integer', 'real', 'text', 'blob', 'null').",
    "GROUP_CONCAT(X, SEP): the values of X in a group joined by SEP.",
    "TOTAL(X): the sum of X in a group as a float (0.0 for no rows).",
    "ROW_NUMBER() OVER (...): the row's number within its partition.",
    "RANK() / DENSE_RANK() OVER (...): the row's rank within its partition (with / without "
    "gaps).",
    "PERCENT_RANK() / CUME_DIST() OVER (...): the row's relative rank, between 0 and 1.",
    "NTILE(N) OVER (...): the bucket (1..N) the row falls in.",
    "LAG(X, N, D) / LEAD(X, N, D) OVER (...): X from N rows before / after the current one.",
    "FIRST_VALUE(X) / LAST_VALUE(X) / NTH_VALUE(X, N) OVER (...): X of the window's first / "
    "last / Nth row.",
    "DATE(T, MODIFIERS): the date of time value T, shifted by modifiers such as '+1 month'.",
    "DATETIME(T, MODIFIERS): T as 'YYYY-MM-DD HH:MM:SS'.",
    "JULIANDAY(T): T as a Julian day number (differences give days between dates).",
    "STRFTIME(FORMAT, T): T formatted, e.g. '%Y' for the year, '%m' for the month.",
    "CAST(X AS TYPE): X converted to INTEGER, REAL, TEXT or NUMERIC.",
    "MAX(X, Y, ...) / MIN(X, Y, ...): the largest / smallest of several arguments.",
    "SIGN(X): -1, 0 or 1 by the sign of X.",
    "SQRT(X) / POW(X, Y) / LN(X) / LOG10(X) / EXP(X): math functions.",
    "CEIL(X) / FLOOR(X) / TRUNC(X): X rounded up / down / toward zero.",
    "MOD(X, Y): the remainder of X divided by Y.",
)


def sample_prompt_parts(seed: int, task_index: int, inserts: list[str]) -> dict[str, Any]:
    """The per-prompt draws of ``generate_sql_synthesis_prompts.py``: 0-2 functions (0 means
    "any function"), up to 4 INSERT statements, a column count from geometric(0.6)."""
    rng = random.Random(f"text2sql-sql-prompt:{seed}:{task_index}")
    n_functions = rng.randint(0, 2)
    functions = rng.sample(SQLITE_FUNCTIONS, n_functions)
    chosen = rng.sample(inserts, 4) if len(inserts) > 4 else list(inserts)
    column_count = 1  # geometric(p=0.6): trials until the first success
    while rng.random() >= 0.6:
        column_count += 1
    return {"functions": functions, "inserts": chosen, "column_count": column_count}


_SQL_BLOCK = re.compile(r"```sql\s*(.*?)\s*```", re.S | re.I)


def last_sql_block(text: str) -> str | None:
    """The last ```sql block of an answer, stripped of trailing semicolons (the authors'
    ``parse_response``); None when there is none."""
    blocks = _SQL_BLOCK.findall(text or "")
    if not blocks:
        return None
    sql = blocks[-1].strip().rstrip(";").strip()
    return sql or None


# --- dedup keys ---------------------------------------------------------------------------


def normalize_plan(rows: list[tuple], aliases: dict[str, str] | None = None) -> str:
    """An ``EXPLAIN QUERY PLAN`` as an indented tree of its details: the ids (opcode
    addresses, which change with the SQLite version) are dropped, table aliases become the
    table's name, bare numbers (subquery numbers) become ``#``, case and spaces folded."""
    aliases = {k.lower(): v.lower() for k, v in (aliases or {}).items()}
    depth: dict[int, int] = {}
    lines = []
    for node_id, parent, _unused, detail in rows:
        level = depth.get(int(parent), -1) + 1
        depth[int(node_id)] = level
        words = re.sub(r"\s+", " ", str(detail)).strip().lower().split(" ")
        words = [aliases.get(w, w) for w in words]
        text = re.sub(r"\b\d+\b", "#", " ".join(words))
        lines.append("  " * level + text)
    return "\n".join(lines)


def table_aliases(tree: Any) -> dict[str, str]:
    """``alias -> table name`` of a parsed query (sqlglot)."""
    from sqlglot import exp

    return {t.alias: t.name for t in tree.find_all(exp.Table) if t.alias and t.name}


_VALUES = re.compile(r"""
    (?<!\w)'(?:\\.|[^'])*' |
    (?<!\w)"(?:\\.|[^"])*" |
    (?<!\w)-?\b\d+(\.\d+)?([eE][-+]?\d+)?\b |
    \bNULL\b | \bTRUE\b | \bFALSE\b
""", re.I | re.X)


def sql_template(sql: str) -> str:
    """The authors' ``obtain_sql_template``: values replaced by ``<value>``, lower case,
    spaces collapsed."""
    template = _VALUES.sub("<value>", sql).lower().replace("\n", " ").strip()
    return re.sub(r"\s+", " ", template)


def dedup_key(kind: str, database: str, plan: str, sql: str) -> str:
    """The record's dedup key: per database, by plan or template (``none``: the SQL, kept
    for provenance only; the step then drops nothing)."""
    if kind == "plan":
        return text_hash(f"plan\n{database}\n{plan}", 24)
    if kind == "template":
        return text_hash(f"template\n{database}\n{sql_template(sql)}", 24)
    return text_hash(f"none\n{database}\n{sql}", 24)


# --- voting and selection -------------------------------------------------------------------


def majority(keys: list[Any | None]) -> tuple[Any, list[int]] | None:
    """The most frequent non-None key and the positions holding it; ties go to the key seen
    first (the authors' ``max`` over an insertion-ordered dict); None when no key is valid."""
    groups: dict[Any, list[int]] = {}
    for i, key in enumerate(keys):
        if key is not None:
            groups.setdefault(key, []).append(i)
    if not groups:
        return None
    best = max(groups, key=lambda k: len(groups[k]))
    return best, groups[best]


def most_central(vectors: Any) -> int:
    """Index of the row with the smallest sum of cosine distances to all rows (L2-normalised
    rows; the authors' ``cdist(..., 'cosine').sum(axis=1).argmin()``)."""
    import numpy as np

    sims = np.asarray(vectors, dtype=np.float32) @ np.asarray(vectors, dtype=np.float32).T
    return int(np.argmin((1.0 - sims).sum(axis=1)))
