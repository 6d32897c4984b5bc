"""Source2Synth with the scripted test backend (a test double that plays the generator and the
curator by reading the prompts); every SQL query runs on a real SQLite copy of its table.

Each stage has a test that fails without it: SQL execution (a failing query is dropped with its
error), the answer's grounding in the executed result, slicing (slice 0 is never curated), the
k-try filter (an entry the curator never answers right is dropped; one right try keeps it) and
imputation (the question is blanked and rewritten, the original kept).
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import yaml

from synthloom.api import RunOptions, run_recipe
from synthloom.core.recipe import Recipe, packaged_recipes
from synthloom.methods.source2synth.curation import soft_match
from synthloom.methods.source2synth.tables import states_value
from tests.support.runs import assert_closed, read_jsonl
from tests.support.scripted_backend import ScriptedTestBackend, last_user_text

GOLD_SQL = {
    "lighthouses": "SELECT name FROM lighthouses WHERE height_m = "
                   "(SELECT MAX(height_m) FROM lighthouses)",
    "orchard_harvest": "SELECT nope FROM orchard_harvest",  # no such column: dropped at sql
    "ferry_timetable": "SELECT vessel FROM ferry_timetable WHERE minutes = 25 LIMIT 1",
}
ANSWERS = {"lighthouses": "Eider Bank is the tallest.", "ferry_timetable": "The Puffin."}


def _table(text: str) -> str:
    return next(name for name in GOLD_SQL if name in text)


def responder(request, seed) -> str:
    system = request.messages[0]["content"]
    text = last_user_text(request)
    if "interesting fact" in system:
        return json.dumps({"seed": f"The table {_table(text)} has several rows of data."})
    if system.startswith("You write SQLite queries"):
        return f"```sql\n{GOLD_SQL[_table(text)]}\n```"
    if "turn SQL queries into the questions" in system:
        return json.dumps({"question": f"Which entry of {_table(text)} does this pick out?"})
    if "answer questions from the result" in system:
        return json.dumps({"answer": ANSWERS[_table(text)]})
    if "answer questions about a table by writing" in system:
        # The curator: right for lighthouses on one try in three (seeds differ per try),
        # always wrong for the ferries.
        table = _table(text)
        if table == "lighthouses" and seed is not None and seed % 3 == 0:
            return f"```sql\n{GOLD_SQL[table]}\n```"
        return f"```sql\nSELECT route FROM {table} LIMIT 1\n```"
    if "restore the missing part" in system:
        if "Danube" in text:
            return json.dumps({"question": "Which capital city lies on the Danube river?"})
        return json.dumps({"question": f"Which {_table(text)} entry is the tallest one?"})
    if system.startswith("Answer the question from the context"):
        return "Vienna" if "Danube" in text else "I do not know"
    raise AssertionError(system)


def run(recipe: Recipe, out: Path, backend: ScriptedTestBackend) -> dict[str, Any]:
    return asyncio.run(run_recipe(recipe, out, RunOptions(backend=backend))).to_json()


def test_scripted_backend_tables_every_stage(tmp_path: Path) -> None:
    out = tmp_path / "out"
    summary = run(Recipe.load("source2synth-tables", {"slice0_share": "0"}), out,
                  ScriptedTestBackend(responder))
    assert_closed(summary)
    dropped = {d["record"]["table_name"]: d for d in read_jsonl(out / "dropped.jsonl")}
    # sql: the orchard query names a column the table lacks; the real SQLite says so.
    assert dropped["orchard_harvest"]["step"] == "sql"
    assert dropped["orchard_harvest"]["reason"].startswith("sql: SQL failed")
    assert "nope" in dropped["orchard_harvest"]["reason"]
    # filter: the curator never reproduces the ferry result in k=3 tries.
    assert dropped["ferry_timetable"]["step"] == "filter"
    assert dropped["ferry_timetable"]["reason"].startswith(
        "filter: not answered correctly in any of k=3 tries")
    [kept] = read_jsonl(out / "data.jsonl")
    assert kept["table_name"] == "lighthouses" and kept["slice"] == 1
    assert kept["result"]["rows"] == [["Eider Bank"]]  # executed, not written by the model
    assert kept["curated"] is True and 1 <= kept["filter_correct"] < 3
    # impute: the question was blanked and rewritten; the original is kept.
    assert kept["imputed"] is True
    assert kept["question"] == "Which lighthouses entry is the tallest one?"
    assert kept["question_original"] == "Which entry of lighthouses does this pick out?"


def test_scripted_backend_tables_answer_must_state_the_result(tmp_path: Path) -> None:
    def wrong_answer(request, seed):
        if "answer questions from the result" in request.messages[0]["content"]:
            return json.dumps({"answer": "It is the one near the harbour."})
        return responder(request, seed)

    out = tmp_path / "out"
    run(Recipe.load("source2synth-tables", {"slice0_share": "0"}), out,
        ScriptedTestBackend(wrong_answer))
    reasons = [d["reason"] for d in read_jsonl(out / "dropped.jsonl") if d["step"] == "answer"]
    assert len(reasons) == 2 and all(r.startswith("answer: states no value") for r in reasons)


def test_scripted_backend_slice0_is_not_curated(tmp_path: Path) -> None:
    out = tmp_path / "out"
    backend = ScriptedTestBackend(responder)
    run(Recipe.load("source2synth-tables", {"slice0_share": "1"}), out, backend)
    kept = read_jsonl(out / "data.jsonl")
    assert {r["table_name"] for r in kept} == {"lighthouses", "ferry_timetable"}
    assert all(r["slice"] == 0 and r["curated"] is False and r["imputed"] is False
               for r in kept)
    assert not [p for p in backend.prompts if "[BLANK]" in p]  # no curator call


def _entries(path: Path) -> Path:
    rows = [{"question": f"Which city on the Danube is the capital of Austria? ({i})",
             "answer": "Vienna", "evidence": [{"clue": "The Danube flows through Vienna."},
                                              {"clue": "The capital of Austria is Vienna."}]}
            for i in range(3)]
    rows.append({"question": "Which river did the ferry cross?", "answer": "Tagus",
                 "evidence": [{"clue": "The ferry crossed the Tagus at dawn."}]})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_scripted_backend_mhqa_curation(tmp_path: Path) -> None:
    """The curation steps of the source2synth recipe (answer mode, clue evidence) on fixed
    entries: the entry the curator cannot answer is filtered, the others imputed."""
    shipped = yaml.safe_load(packaged_recipes()["source2synth"].read_text())
    curation = [s for s in shipped["steps"] if s["type"].startswith("s2s_")]
    assert [s["type"] for s in curation] == ["s2s_slice", "s2s_filter", "s2s_impute"]
    raw = {"name": "s2s-curation", "sources": [{"name": "entries", "type": "jsonl",
                                                "path": str(_entries(tmp_path / "e.jsonl"))}],
           "steps": [{**s, "slice0_share": 0} if s["type"] == "s2s_slice" else
                     {**s, "k": 3} if s["type"] == "s2s_filter" else s for s in curation],
           "sinks": [{"type": "jsonl", "path": "data.jsonl"}]}
    out = tmp_path / "out"
    backend = ScriptedTestBackend(responder)
    summary = run(Recipe.from_dict(raw), out, backend)
    assert_closed(summary)
    [drop] = read_jsonl(out / "dropped.jsonl")
    assert drop["step"] == "filter" and "gold 'Tagus'" in drop["reason"]
    kept = read_jsonl(out / "data.jsonl")
    assert len(kept) == 3 and all(r["filter_correct"] == 3 for r in kept)
    assert all(r["imputed"] and r["question_original"].startswith("Which city on the Danube")
               for r in kept)
    prompts = [p for p in backend.prompts if "Question: [BLANK]" in p]
    assert prompts and "- The capital of Austria is Vienna." in prompts[0]


def test_soft_match_and_states_value() -> None:
    assert soft_match("It is the Vienna one.", "vienna") and not soft_match("Viennese", "Vienna")
    assert states_value("about 41 metres", 41) and states_value("41.0", 41.0)
    assert not states_value("4", 41) and states_value("Eider Bank rises", "Eider Bank")
    assert re.match(r"\d", "4")
