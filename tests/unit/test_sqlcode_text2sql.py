"""text2sql (OmniSQL) with the scripted test backend (a test double for the model); the SQL
execution is real (verify/sql.py on private copies), and every kept record is re-executed."""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
from pathlib import Path

import pytest

from synthloom.api import RunOptions, run_recipe
from synthloom.core.recipe import Recipe
from synthloom.methods.text2sql.sqlexec import (
    clean_sql,
    complexity_matches,
    parse_sql,
    query_result,
    query_tables,
    recheck,
    sql_features,
)
from synthloom.methods.text2sql.steps import STYLES
from synthloom.methods.text2sql.synthdb import identifier, materialize, sanitize_schema
from tests.support.runs import assert_closed, read_jsonl, step_closes
from tests.support.scripted_backend import ScriptedTestBackend, last_user_text

DATA = Path(__file__).resolve().parents[2] / "src" / "synthloom" / "data" / "text2sql"

# One query per complexity level on the bundled bookshop database; two of them fail.
BOOKSHOP_SQL = {
    "simple": "SELECT title, price FROM books WHERE price > 30 ORDER BY price DESC, title",
    "moderate": "SELECT b.title, a.nme FROM books b JOIN authors a ON a.author_id = b.author_id",
    "complex": "```sql\nSELECT genre, COUNT(*) AS n, AVG(price) FROM books GROUP BY genre;\n```",
    "highly-complex": "SELECT name FROM customers WHERE customer_id IN "
                      "(SELECT customer_id FROM orders WHERE status = 'lost')",
}
LEVELS = {"Simple": "simple", "Moderate": "moderate", "Complex": "complex",
          "Highly Complex": "highly-complex"}


def level_of(text: str) -> str:
    return LEVELS[re.search(r"matches the (.+?) level", text).group(1)]


def reference_sql(text: str) -> str:
    return re.search(r"\[Reference Solution\]:\n```sql\n(.*?)\n```", text, re.S).group(1)


def responder(sql_by_level: dict[str, str], cot=None):
    """Scripted answers by prompt: the SQL of the task's level (fenced, after some reasoning,
    as OmniSQL's prompt asks), a question per style, and CoT solutions that rewrite the
    reference (``cot(reference, seed)`` overrides)."""
    def respond(request, seed) -> str:
        system = request.messages[0]["content"]
        text = last_user_text(request)
        if "design relational databases" in system:
            return json.dumps(PROPOSAL)
        if "Create an executable SQL query" in text:
            sql = sql_by_level[level_of(text)]
            return sql if sql.startswith("```") else f"Step 1: pick tables.\n```sql\n{sql}\n```"
        if "high-quality natural language question" in text:
            sql = re.search(r"```sql\n(.*?)\n```", text, re.S).group(1)
            if "status = 'lost'" in sql:  # a question that just repeats the query
                return json.dumps({"explanation": "e", "question": f"Run {sql} please"})
            answer = {"explanation": "It lists rows.",
                      "question": f"Which rows does the bookshop hold for this ({seed})?"}
            if '"external_knowledge"' in text:
                answer["external_knowledge"] = "'pricey' means price > 30"
            return json.dumps(answer)
        if "senior data analyst" in text:
            ref = reference_sql(text)
            if cot is not None:
                return cot(ref, seed)
            return f"The question asks for rows of the tables in the reference.\n```sql\n{ref}\n```"
        raise AssertionError(text[:200])
    return respond


def run(recipe: Recipe, out: Path, backend: ScriptedTestBackend, limit: int) -> dict:
    return asyncio.run(run_recipe(recipe, out, RunOptions(backend=backend, limit=limit))).to_json()


def test_bundled_database_is_what_the_script_builds(tmp_path: Path) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_bookshop", DATA / "make_bookshop.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    built = module.build(tmp_path / "bookshop.sqlite")

    def dump(path: Path) -> list[str]:
        conn = sqlite3.connect(path)
        try:
            return list(conn.iterdump())
        finally:
            conn.close()

    assert dump(built) == dump(DATA / "bookshop.sqlite")
    assert len(dump(built)) > 150  # tables + rows, not an empty file


def test_recipe_keeps_only_running_queries_and_records_reexecute(tmp_path: Path) -> None:
    """Scripted test backend, real SQLite: the whole recipe, every drop with its reason."""
    backend = ScriptedTestBackend(responder(BOOKSHOP_SQL))
    summary = run(Recipe.load("text2sql", {"embedder": "hashing"}), tmp_path / "out", backend,
                  limit=4)
    steps = {s["name"]: s for s in summary["steps"]}
    assert all(step_closes(s) for s in steps.values())
    assert steps["sql"]["in"] == 4 and steps["sql"]["out"] == 2 and steps["sql"]["dropped"] == 2
    assert steps["dedup"]["out"] == 2
    kept = read_jsonl(tmp_path / "out" / "data.jsonl")
    assert [r["complexity"] for r in kept] == ["simple", "complex"]
    reasons = sorted(d["reason"] for d in read_jsonl(tmp_path / "out" / "dropped.jsonl"))
    assert reasons[0].startswith("SQL failed: no such column: a.nme")
    assert reasons[1].startswith("SQL returned no rows")
    for record in kept:
        assert set(record) >= {"database", "schema", "sql", "complexity", "style", "question",
                               "result", "cot", "query_plan", "cot_votes", "reference_sql"}
        assert record["style"] in STYLES and record["schema"].startswith("CREATE TABLE")
        assert recheck(record)  # the checker's view: fresh copy, same normalisation
        # the kept CoT's last ```sql block is the record's SQL, which was executed
        assert record["cot"].endswith(f"```sql\n{record['sql']}\n```")
        assert record["cot_valid"] == 5 and record["agrees_with_reference"] is True
    simple, agg = kept
    assert simple["result"]["ordered"] is True and simple["result"]["row_count"] == 12
    assert simple["result"]["rows"][0] == ["The Glass Harbour", 43.18]
    assert agg["sql"].startswith("SELECT genre") and not agg["sql"].endswith(";")
    assert agg["sql_features"] == ["aggregation"]
    # A rerun replays from the caches.
    again = ScriptedTestBackend(responder(BOOKSHOP_SQL))
    run(Recipe.load("text2sql", {"embedder": "hashing"}), tmp_path / "out", again, limit=4)
    assert again.calls == 0


def test_recheck_notices_a_changed_result(tmp_path: Path) -> None:
    database = str(DATA / "bookshop.sqlite")
    sql = "SELECT COUNT(*) FROM orders"
    _, result = query_result(database, sql, max_rows=50, result_rows=5)
    record = {"database": database, "sql": sql, "result": json.loads(json.dumps(result))}
    assert recheck(record) and result["rows"] == [[40]]
    record["result"]["rows"] = [[41]]
    assert not recheck(record)


def test_style_is_drawn_from_the_run_seed(tmp_path: Path) -> None:
    from synthloom.core.context import RunContext
    from synthloom.core.registry import step_type

    source = step_type("text2sql_tasks")(name="t", count=12)
    one = list(source.read(RunContext(run_dir=tmp_path, seed=0)))
    same = list(source.read(RunContext(run_dir=tmp_path, seed=0)))
    other = list(source.read(RunContext(run_dir=tmp_path, seed=1)))
    assert one == same and [t["style"] for t in one] != [t["style"] for t in other]
    assert [t["complexity"] for t in one[:5]] == ["simple", "moderate", "complex",
                                                  "highly-complex", "simple"]
    assert len({t["style"] for t in one}) > 3


PROPOSAL = {"tables": [
    {"name": "Member", "columns": [
        {"name": "Full Name", "type": "TEXT", "references": ""},
        {"name": "city", "type": "TEXT", "references": ""},
        {"name": "id", "type": "INTEGER", "references": ""},
        {"name": "city", "type": "TEXT", "references": ""}]},
    {"name": "order", "columns": [
        {"name": "member_id", "type": "INTEGER", "references": "Member"},
        {"name": "total", "type": "REAL", "references": ""},
        {"name": "placed_on", "type": "DATE", "references": ""},
        {"name": "shelf_id", "type": "INTEGER", "references": "shelf"}]},
    {"name": "member", "columns": [{"name": "x", "type": "TEXT", "references": ""},
                                   {"name": "y", "type": "TEXT", "references": ""}]},
]}

SYNTH_SQL = {
    "simple": "SELECT full_name, city FROM member WHERE city IS NOT NULL",
    "moderate": "SELECT m.full_name, o.total FROM orders o JOIN member m ON m.id = o.member_id "
             "ORDER BY o.total DESC LIMIT 5",
}


def test_synthesised_schema_is_sanitised_and_materialised(tmp_path: Path) -> None:
    schema = sanitize_schema(PROPOSAL)
    assert [t.name for t in schema.tables] == ["member", "orders"]
    assert [c.name for c in schema.tables[0].columns] == ["full_name", "city"]
    orders = schema.tables[1].columns
    assert orders[0].references == "member" and orders[3].references is None
    assert any("shelf" in note for note in schema.notes)
    assert identifier("select") == "selects" and identifier("2nd place") == "t_2nd_place"
    # A table that references a later one is moved after it; "id references x" is a link;
    # "customer_id" as a reference means the customers table; cycles are broken.
    messy = sanitize_schema({"tables": [
        {"name": "visits", "columns": [
            {"name": "who", "type": "INTEGER", "references": "customer_id"}]},
        {"name": "orders", "columns": [
            {"name": "id", "type": "INTEGER", "references": "customers"},
            {"name": "note", "type": "TEXT", "references": "orders"}]},
        {"name": "customers", "columns": [
            {"name": "name", "type": "TEXT", "references": ""}]}]})
    assert [t.name for t in messy.tables] == ["customers", "visits", "orders"]
    assert messy.tables[1].columns[0].references == "customers"
    assert [(c.name, c.references) for c in messy.tables[2].columns] == [
        ("customers_id", "customers"), ("note", None)]
    assert any("itself" in n for n in messy.notes)
    cycle = sanitize_schema({"tables": [
        {"name": "a", "columns": [{"name": "b_id", "type": "INTEGER", "references": "b"}]},
        {"name": "b", "columns": [{"name": "a_id", "type": "INTEGER", "references": "a"}]}]})
    # Stuck on a cycle, the first table goes first and loses its forward reference.
    assert [t.name for t in cycle.tables] == ["a", "b"]
    assert cycle.tables[0].columns[0].references is None
    assert cycle.tables[1].columns[0].references == "a"
    assert any("cycle" in n for n in cycle.notes)
    a = materialize(schema, tmp_path, "library", rows_per_table=7, seed=3)
    b = materialize(schema, tmp_path / "again", "library", rows_per_table=7, seed=3)
    assert a.name == b.name and a.read_bytes() == b.read_bytes()  # deterministic
    conn = sqlite3.connect(a)
    assert conn.execute("SELECT COUNT(*) FROM orders").fetchone() == (7,)
    # every reference points at an existing row
    assert conn.execute("SELECT COUNT(*) FROM orders o LEFT JOIN member m ON m.id = "
                        "o.member_id WHERE m.id IS NULL").fetchone() == (0,)
    conn.close()


def test_synth_recipe_shares_one_schema_per_domain(tmp_path: Path) -> None:
    backend = ScriptedTestBackend(responder(SYNTH_SQL))
    params = {"database": "synth", "complexities": "[simple, moderate]", "rows_per_table": "9",
              "tasks.domains": "[a lending library]", "dedup": "none", "embedder": "hashing"}
    summary = run(Recipe.load("text2sql", params), tmp_path / "out", backend, limit=4)
    steps = {s["name"]: s for s in summary["steps"]}
    assert all(step_closes(s) for s in steps.values())
    assert steps["schema"]["out"] == 4 and steps["schema"]["llm_calls"] == 1
    kept = read_jsonl(tmp_path / "out" / "data.jsonl")
    assert len(kept) == 4 and len({r["database"] for r in kept}) == 1
    for record in kept:
        assert record["schema_origin"] == "synthesized" and "CREATE TABLE orders" in \
            record["schema"]
        assert Path(record["database"]).parent == tmp_path / "out" / "text2sql_databases"
        assert recheck(record)


def test_sql_helpers() -> None:
    assert clean_sql("```sql\nSELECT 1;\n```") == "SELECT 1"
    feats = sql_features(parse_sql(
        "WITH t AS (SELECT a, SUM(b) s FROM x JOIN y ON x.i = y.i GROUP BY a) "
        "SELECT a, ROW_NUMBER() OVER (ORDER BY s) FROM t"))
    assert feats == ["joins", "aggregation", "nested", "window"]
    assert sql_features(parse_sql("SELECT a FROM x WHERE b = 1")) == []
    assert complexity_matches("simple", ["aggregation"]) and not complexity_matches(
        "simple", ["joins"])
    assert complexity_matches("complex", ["window"]) and not complexity_matches(
        "highly-complex", ["nested"])
    assert query_tables("WITH t AS (SELECT * FROM books) SELECT * FROM t JOIN authors") == \
        {"books", "authors"}


def test_chinook_queries_reexecute_exactly(shared_data: Path, tmp_path: Path) -> None:
    """The real Chinook database: a scripted join + aggregation, checked like the checker."""
    chinook = shared_data / "sql" / "chinook.sqlite"
    sql = {"moderate": "SELECT g.Name, COUNT(*), ROUND(AVG(t.UnitPrice), 4) FROM Track t "
                          "JOIN Genre g ON g.GenreId = t.GenreId GROUP BY g.Name",
           "simple": "SELECT Name, Milliseconds / 60000.0 FROM Track ORDER BY Milliseconds "
                     "DESC LIMIT 3"}
    backend = ScriptedTestBackend(responder(sql))
    params = {"database": str(chinook), "complexities": "[moderate, simple]",
              "embedder": "hashing"}
    summary = run(Recipe.load("text2sql", params), tmp_path / "out", backend, limit=2)
    assert_closed(summary)
    kept = read_jsonl(tmp_path / "out" / "data.jsonl")
    assert len(kept) == 2 and kept[0]["result"]["row_count"] == 25
    assert len(kept[0]["result"]["rows"]) == 10 and kept[0]["db_id"] == "chinook"
    assert isinstance(kept[1]["result"]["rows"][0][1], float)  # rounded, not raw
    for record in kept:
        assert recheck(record)


@pytest.mark.parametrize("bad", ["DELETE FROM books", "SELECT 1; SELECT 2", "SELEC x FROM y"])
def test_non_queries_are_dropped_before_sqlite(bad: str, tmp_path: Path) -> None:
    backend = ScriptedTestBackend(responder({"simple": bad}))
    summary = run(Recipe.load("text2sql", {"complexities": "[simple]"}), tmp_path / "o",
                  backend, limit=1)
    sql = next(s for s in summary["steps"] if s["name"] == "sql")
    assert sql["dropped"] == 1
    [drop] = read_jsonl(tmp_path / "o" / "dropped.jsonl")
    assert drop["reason"].startswith("SQL rejected:")


def test_candidates_keep_the_first_query_that_runs(tmp_path: Path) -> None:
    answers = iter(["SELECT nothing FROM books", "SELECT COUNT(*) FROM books"])
    base = responder({})

    def respond(request, seed) -> str:
        if "Create an executable SQL query" in last_user_text(request):
            return f"```sql\n{next(answers)}\n```"
        return base(request, seed)

    backend = ScriptedTestBackend(respond)
    recipe = Recipe.load("text2sql", {"complexities": "[moderate]", "candidates": "2",
                                      "embedder": "hashing"})
    summary = run(recipe, tmp_path / "out", backend, limit=1)
    sql = next(s for s in summary["steps"] if s["name"] == "sql")
    assert sql["llm_calls"] == 2 and sql["out"] == 1
    [record] = read_jsonl(tmp_path / "out" / "data.jsonl")
    assert record["sql"] == "SELECT COUNT(*) FROM books" and record["result"]["rows"] == [[30]]
    assert recheck(record)
