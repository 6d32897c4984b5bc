"""OmniSQL's stages in the text2sql recipe, each with the scripted test backend (a test double
for the model: answers are scripted per prompt) and real SQLite (the bundled bookshop
database, private copies via verify/sql.py). Each test fails when its stage is taken out:
the level prompt, plan dedup, question candidates with central selection and external
knowledge, and the execution-checked CoT majority vote."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import numpy as np

from synthloom.core.recipe import Recipe
from synthloom.methods.text2sql.omnisql import (
    majority,
    most_central,
    normalize_plan,
    sample_prompt_parts,
    sql_template,
    table_aliases,
)
from synthloom.methods.text2sql.sqlexec import parse_sql, recheck
from synthloom.verify.sql import SQLiteDatabase
from tests.support.runs import assert_closed, read_jsonl
from tests.support.scripted_backend import ScriptedTestBackend, last_user_text
from tests.unit.test_sqlcode_text2sql import BOOKSHOP_SQL, DATA, responder, run

BOOKSHOP = str(DATA / "bookshop.sqlite")


def test_sql_prompts_carry_omnisql_levels_functions_inserts_and_column_count(
        tmp_path: Path) -> None:
    """Scripted test backend: the SQL prompt of each task has its level's criteria and
    example, 0-2 sampled functions, up to 4 real INSERT rows and the column count asked."""
    prompts: list[str] = []
    base = responder(BOOKSHOP_SQL)

    def respond(request, seed) -> str:
        text = last_user_text(request)
        if "Create an executable SQL query" in text:
            prompts.append(text)
            return "I would join the tables." if "Highly Complex" in text else \
                base(request, seed)
        return base(request, seed)

    backend = ScriptedTestBackend(respond)
    recipe = Recipe.load("text2sql", {"count": "12", "embedder": "hashing", "dedup": "none"})
    summary = run(recipe, tmp_path / "out", backend, limit=12)
    assert_closed(summary)
    assert len(prompts) == 12
    levels = [re.search(r"matches the (.+?) level", p).group(1) for p in prompts]
    assert sorted(set(levels)) == ["Complex", "Highly Complex", "Moderate", "Simple"]
    for prompt in prompts:
        inserts = re.findall(r"^INSERT INTO (\w+) \(", prompt, re.M)
        assert 1 <= len(inserts) <= 4
        assert set(inserts) <= {"authors", "books", "customers", "orders", "order_items"}
        assert re.search(r"selects \d+ columns?\.", prompt)
    assert any("WITH RECURSIVE" in p for p in prompts)  # the highly complex example
    counts = {len(re.findall(r"^Function \d+:", p, re.M)) for p in prompts}
    assert counts <= {0, 1, 2} and len(counts) >= 2
    assert any("You can use any function" in p for p in prompts)
    # An answer without a ```sql block is dropped with that reason.
    dropped = [d["reason"] for d in read_jsonl(tmp_path / "out" / "dropped.jsonl")]
    assert dropped.count("no ```sql block in the answer") == levels.count("Highly Complex")
    # The draws follow the authors' distributions: randint(0, 2) functions, geometric(0.6).
    draws = [sample_prompt_parts(0, i, [f"i{j}" for j in range(9)]) for i in range(2000)]
    share_one = sum(d["column_count"] == 1 for d in draws) / len(draws)
    assert 0.55 < share_one < 0.65 and all(len(d["inserts"]) == 4 for d in draws)
    assert {len(d["functions"]) for d in draws} == {0, 1, 2}


def test_plan_is_normalised_from_real_explain_query_plan() -> None:
    with SQLiteDatabase(BOOKSHOP) as db:
        def plan(sql: str) -> str:
            return normalize_plan(db.query_plan(sql), table_aliases(parse_sql(sql)))

        a = plan("SELECT title FROM books WHERE price > 30")
        b = plan("SELECT x.title, x.pages FROM books AS x WHERE x.price < 10")
        c = plan("SELECT name FROM authors WHERE author_id = 3")
        nested = plan("SELECT genre FROM books WHERE price > (SELECT AVG(price) FROM books)")
    assert a == b == "scan books"  # alias folded, constants are not in plans
    assert c.startswith("search authors using integer primary key")
    assert nested.splitlines()[1].startswith("scalar subquery #")
    assert nested.splitlines()[2] == "  scan books"  # the subquery's node, indented
    assert sql_template("SELECT a FROM t WHERE b = 'x' AND c > 3.5") == \
        "select a from t where b = <value> and c > <value>"


def test_plan_dedup_drops_a_repeated_plan_with_its_reason(tmp_path: Path) -> None:
    """Scripted test backend, real SQLite: three tasks, two queries share a plan."""
    sql = {"simple": "SELECT title FROM books WHERE price > 30",
           "moderate": "SELECT b.title, b.pages FROM books b WHERE b.price < 20",
           "complex": "SELECT name FROM authors WHERE author_id = 3"}
    params = {"complexities": "[simple, moderate, complex]", "embedder": "hashing"}
    summary = run(Recipe.load("text2sql", params), tmp_path / "plan",
                  ScriptedTestBackend(responder(sql)), limit=3)
    dedup = next(s for s in summary["steps"] if s["name"] == "dedup")
    assert (dedup["in"], dedup["out"], dedup["dropped"]) == (3, 2, 1)
    [drop] = [d for d in read_jsonl(tmp_path / "plan" / "dropped.jsonl")
              if d["step"] == "dedup"]
    assert drop["reason"].startswith("same query plan as ")
    kept = read_jsonl(tmp_path / "plan" / "data.jsonl")
    assert {r["query_plan"] for r in kept} == {
        "scan books", "search authors using integer primary key (rowid=?)"}
    # By template (the authors' released script) the two books queries differ: all kept.
    summary = run(Recipe.load("text2sql", {**params, "dedup": "template"}),
                  tmp_path / "template", ScriptedTestBackend(responder(sql)), limit=3)
    dedup = next(s for s in summary["steps"] if s["name"] == "dedup")
    assert (dedup["out"], dedup["dropped"]) == (3, 0)


QUESTIONS = ["Which books cost more than thirty in the bookshop catalogue?",
             "Which books in the bookshop catalogue cost more than thirty?",
             "Which bookshop catalogue books cost more than thirty?",
             "Tell me a poem about gardens and rivers in spring mornings."]


def test_question_candidates_most_central_kept_with_external_knowledge(tmp_path: Path) -> None:
    """Scripted test backend: five candidates per query (one quotes SQL, one off-topic); the
    most central of the usable ones is kept, every other keeps its reason; the vague style
    asks for and keeps external knowledge."""
    base = responder({"simple": "SELECT title, price FROM books WHERE price > 30"})
    seen: list[str] = []

    def respond(request, seed) -> str:
        text = last_user_text(request)
        if "high-quality natural language question" in text:
            seen.append(text)
            k = seed % 5
            question = "Show SELECT title FROM books" if k == 4 else QUESTIONS[k]
            return json.dumps({"explanation": "Titles and prices of books over 30.",
                               "question": question,
                               "external_knowledge": "'pricey' means price > 30"})
        return base(request, seed)

    params = {"complexities": "[simple]", "styles": "[vague]", "embedder": "hashing",
              "question_candidates": "5"}
    summary = run(Recipe.load("text2sql", params), tmp_path / "out",
                  ScriptedTestBackend(respond), limit=1)
    assert_closed(summary)
    assert len(seen) == 5 and "External Knowledge" in seen[0]
    [record] = read_jsonl(tmp_path / "out" / "data.jsonl")
    assert record["question"] in QUESTIONS[:3]  # not the off-topic outlier
    assert record["external_knowledge"] == "'pricey' means price > 30"
    assert record["question_selection"].startswith("most central of 4 by lexical hashing")
    reasons = [c["reject_reason"] for c in record["question_candidates"]]
    assert reasons.count(None) == 1
    assert "question quotes SQL instead of asking in words" in reasons
    assert sum(str(r).startswith("not selected") for r in reasons) == 3
    # The same selection on plain vectors at 0, 20 and 10 degrees: the middle one wins.
    angles = np.radians([0.0, 20.0, 10.0])
    vectors = np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)
    assert most_central(vectors) == 2


def _cot_run(tmp_path: Path, solutions: dict[int, str], **params: str) -> dict:
    sql = {"simple": "SELECT title, price FROM books WHERE price > 30 ORDER BY price DESC"}

    def cot(reference: str, seed: int) -> str:
        return f"Step 1: books over 30.\n```sql\n{solutions[seed % 5]}\n```"

    recipe = Recipe.load("text2sql", {"complexities": "[simple]", "embedder": "hashing",
                                      **params})
    return run(recipe, tmp_path, ScriptedTestBackend(responder(sql, cot)), limit=1)


def test_cot_is_majority_voted_on_execution_results(tmp_path: Path) -> None:
    """Scripted test backend, real SQLite: 5 sampled solutions; 3 agree (two of them written
    differently), 1 is a valid minority, 1 fails; a majority solution is kept, its SQL is the
    record's and re-executes."""
    solutions = {0: "SELECT title, price FROM books WHERE price > 30",
                 1: "SELECT title, price FROM books WHERE price >= 30.01",
                 2: "SELECT title FROM books WHERE price > 40",
                 3: "SELECT title, price FROM books WHERE NOT price <= 30",
                 4: "SELECT titel FROM books"}
    summary = _cot_run(tmp_path / "vote", solutions)
    assert_closed(summary)
    [record] = read_jsonl(tmp_path / "vote" / "data.jsonl")
    assert record["cot_valid"] == 4 and record["cot_majority"] == 3
    assert record["sql"] in (solutions[0], solutions[1], solutions[3])
    assert record["cot"].endswith(f"```sql\n{record['sql']}\n```")
    assert record["agrees_with_reference"] is True and recheck(record)
    statuses = sorted(v["status"].split(":")[0] for v in record["cot_votes"])
    assert statuses == ["SQL failed", "kept", "majority, not chosen", "majority, not chosen",
                        "outvoted"]
    assert record["reference_sql"].endswith("ORDER BY price DESC")


def test_cot_needs_three_executable_solutions(tmp_path: Path) -> None:
    solutions = {0: "SELECT title FROM books", 1: "SELECT title FROM books",
                 2: "SELECT nope FROM books", 3: "not sql at all", 4: "DELETE FROM books"}
    summary = _cot_run(tmp_path / "few", solutions)
    cot = next(s for s in summary["steps"] if s["name"] == "cot")
    assert (cot["in"], cot["out"], cot["dropped"]) == (1, 0, 1)
    [drop] = read_jsonl(tmp_path / "few" / "dropped.jsonl")
    assert drop["reason"].startswith("only 2 of 5 CoT solutions executed (need 3)")
    assert "SQL failed: no such column: nope" in drop["reason"]
    assert "SQL rejected" in drop["reason"]


def test_cot_majority_against_the_reference(tmp_path: Path) -> None:
    """The vote, not the reference, decides (as the authors'); opt-in drop on disagreement."""
    other = "SELECT title, price FROM books WHERE price > 40"
    solutions = {0: other, 1: other, 2: other,
                 3: "SELECT title, price FROM books WHERE price > 30", 4: other}
    _cot_run(tmp_path / "a", solutions)
    [record] = read_jsonl(tmp_path / "a" / "data.jsonl")
    assert record["sql"] == other and record["agrees_with_reference"] is False
    assert recheck(record)
    summary = _cot_run(tmp_path / "b", solutions, **{"cot.require_reference_agreement": "true"})
    assert summary["records"] == 0
    [drop] = read_jsonl(tmp_path / "b" / "dropped.jsonl")
    assert "differs from the reference query's result" in drop["reason"]


def test_majority_ties_go_to_the_first_key() -> None:
    assert majority([None, "a", "b", "b", "a"]) == ("a", [1, 4])
    assert majority([None, None]) is None


INITIAL = {"domain": "Bike sharing", "scenario": "A city runs a bike-sharing network ...",
           "tables": [
               {"table_name": "stations", "table_description": "Docking stations",
                "column_names": ["station_id", "name", "docks"],
                "column_types": ["VARCHAR", "VARCHAR", "INTEGER"],
                "column_descriptions": ["Station code", "Station name", "Number of docks"],
                "primary_key": ["station_id"],
                "sample_rows": [["S-1", "Harbour Gate", 24], ["S-2", "Museum Square", 30]]},
               {"table_name": "trips", "table_description": "Trips",
                "column_names": ["trip_id", "station_id", "minutes"],
                "column_types": ["INTEGER", "VARCHAR", "FLOAT"],
                "column_descriptions": ["Trip id", "Start station", "Duration"],
                "primary_key": ["trip_id"],
                "sample_rows": [[1, "S-1", 12.5], [2, "S-2", 7.0], [3, "S-1"]]}],
           "foreign_keys": [
               {"source_table": "trips", "column_in_source_table": "station_id",
                "referenced_table": "stations", "column_in_referenced_table": "station_id"},
               {"source_table": "trips", "column_in_source_table": "rider_id",
                "referenced_table": "riders", "column_in_referenced_table": "rider_id"}]}


def _enhanced() -> dict:
    enhanced = json.loads(json.dumps(INITIAL))
    stations = enhanced["tables"][0]
    stations["column_names"].append("district")
    stations["column_types"].append("VARCHAR")
    stations["column_descriptions"].append("City district")
    stations["sample_rows"] = [["S-1", "Harbour Gate", 24, "Old Town"],
                               ["S-2", "Museum Square", 30, "Centre"]]
    return enhanced


def test_database_written_by_the_model_from_a_seed_table(tmp_path: Path) -> None:
    """Scripted test backend, real SQLite: a user CSV seeds the schema prompt (as Markdown,
    with a table count); the schema is enhanced by a second call; the database holds the
    model's rows, its foreign key and column descriptions, and queries run on it."""
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / "bikes.csv").write_text("Station,Docks\nHarbour Gate,24\nMuseum Square,30\n")
    prompts: dict[str, list[str]] = {"schema": [], "enhance": []}
    sql = {"simple": "SELECT name, district FROM stations WHERE docks > 25",
           "moderate": "SELECT s.name, t.minutes FROM trips t JOIN stations s "
                       "ON s.station_id = t.station_id"}
    base = responder(sql)

    def respond(request, seed) -> str:
        text = last_user_text(request)
        if "generate a database schema containing" in text:
            prompts["schema"].append(text)
            return json.dumps(INITIAL)
        if "enhance an initial database schema" in text:
            prompts["enhance"].append(text)
            return json.dumps(_enhanced())
        return base(request, seed)

    params = {"database": "tables", "tables": str(seeds), "complexities": "[simple, moderate]",
              "embedder": "hashing"}
    summary = run(Recipe.load("text2sql", params), tmp_path / "out",
                  ScriptedTestBackend(respond), limit=2)
    assert_closed(summary)
    # One seed table: its two calls are made once and shared by both tasks.
    assert len(prompts["schema"]) == 1 and len(prompts["enhance"]) == 1
    assert "| 0 | Harbour Gate | 24 |" in prompts["schema"][0]
    assert re.search(r"containing \d+ tables", prompts["schema"][0])
    assert '"station_id"' in prompts["enhance"][0] and "Bike sharing" in prompts["enhance"][0]
    kept = read_jsonl(tmp_path / "out" / "data.jsonl")
    assert len(kept) == 2
    record = kept[0]
    assert record["schema_origin"] == "web_table" and record["model_rows"] == 4
    assert '"district" TEXT /* City district */' in record["schema"]
    assert 'FOREIGN KEY ("station_id") REFERENCES "stations" ("station_id")' in record["schema"]
    notes = " ".join(record["schema_notes"])
    assert "rider_id" in notes and "wrong width" in notes  # dropped, with reasons
    conn = sqlite3.connect(record["database"])
    assert conn.execute("SELECT name, district FROM stations ORDER BY 1").fetchall() == [
        ("Harbour Gate", "Old Town"), ("Museum Square", "Centre")]
    conn.close()
    for r in kept:
        assert recheck(r)
