"""kg-reasoning (MedReason) with the scripted test backend (ScriptedTestBackend, a test double,
no model): KG paths between the question's and the answer's entities, the chain of thought
written along them, and MedReason's filter that keeps a CoT only when an answer from the
reasoning alone equals the gold answer."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest

from synthloom.api import RunOptions, run_recipe
from synthloom.core.errors import RecipeError
from synthloom.core.recipe import Recipe
from synthloom.methods.common.entities import normalize_entity
from synthloom.methods.kg.paths import build_graph
from synthloom.methods.kg.reasoning import (
    KgCotCheck,
    answer_nodes,
    nodes_in,
    path_hops,
    path_text,
    reaches,
    read_graph_file,
    shortest_paths,
    split_conclusion,
)
from tests.support.runs import assert_closed, read_jsonl, step
from tests.support.scripted_backend import ScriptedTestBackend, last_user_text

PROBLEMS = [
    # reaches its gold: the CoT follows the path to 7
    {"question": "Mia has 3 apples and buys 4 apples. How many apples does Mia have?",
     "answer": "3 apples and 4 apples make 7 apples.\n#### 7"},
    # the CoT ends at a wrong number: MedReason's filter drops it
    {"question": "Leo has 5 pears and buys 6 pears. How many pears does Leo have?",
     "answer": "5 pears and 6 pears make 11 pears.\n#### 11"},
    # no triple names the answer: no path
    {"question": "Ada has 2 plums and buys 2 plums. How many plums does Ada have?",
     "answer": "Ada has two pairs.\n#### 4"},
]
TRIPLES = {
    "Mia": [("Mia", "has", "3 apples"), ("Mia", "buys", "4 apples"),
            ("4 apples", "added to 3 apples make", "7 apples")],
    "Leo": [("Leo", "has", "5 pears"), ("Leo", "buys", "6 pears"),
            ("6 pears", "added to 5 pears make", "11 pears")],
    "Ada": [("Ada", "has", "2 plums"), ("Ada", "has", "two pairs")],
}


def responder(request, seed) -> str:
    text = last_user_text(request)
    if "triples stated in this passage" in text:
        name = next(n for n in TRIPLES if n in text)
        return json.dumps({"triples": [{"head": h, "relation": r, "tail": t}
                                       for h, r, t in TRIPLES[name]]})
    if "Write exactly three parts" in text:
        paths = re.findall(r"^\d+\. (.*)$", text.split("Paths:")[1], re.MULTILINE)
        gold = re.search(r"^Answer: (.*)$", text, re.MULTILINE).group(1)
        wrong = "Leo" in text
        total = "12" if wrong else gold
        return (f"Finding reasoning paths:\n- {paths[0]}\nReasoning Process:\nAdding the two "
                f"amounts gives {total}.\nConclusion:\n{total}")
    if "Answer the question using the reasoning below" in text:
        assert "Conclusion" not in text  # the conclusion is stripped before re-answering
        last = re.findall(r"\d+", text.split("Reasoning:")[1])[-1]
        return f"The answer is {last}."
    raise AssertionError(text)


def graph_of(triples: list[tuple[str, str, str]]):
    rows = [{"head": h, "relation": r, "tail": t, "head_key": normalize_entity(h),
             "tail_key": normalize_entity(t)} for h, r, t in triples]
    return build_graph([{"triples": rows}])


def test_answer_and_question_nodes_and_shortest_paths() -> None:
    graph = graph_of(TRIPLES["Mia"] + [("Mia", "likes", "7 apples"),
                                       ("3 apples", "go into", "Basket"),
                                       ("Basket", "holds", "7 apples")])
    assert answer_nodes("7", graph) == ["7 apples"]  # a node naming the answer
    assert nodes_in(PROBLEMS[0]["question"], graph) == ["3 apples", "4 apples", "mia"]
    assert answer_nodes("Basket", graph) == ["basket"]
    # mia -> 7 apples: one edge; 3 apples -> 7 apples: two shortest paths of two edges (the
    # three-edge one through 4 apples is not shortest)
    assert [len(p) for p in shortest_paths(graph, "mia", "7 apples", 5, 4)] == [1]
    two = shortest_paths(graph, "3 apples", "7 apples", 5, 4)
    assert sorted(len(p) for p in two) == [2, 2]
    texts = {path_text(path_hops(graph, p)) for p in two}
    assert "3 apples <--has-- Mia --likes--> 7 apples" in texts
    assert shortest_paths(graph, "3 apples", "7 apples", 1, 4)[:1] == two[:1]  # capped
    assert shortest_paths(graph, "3 apples", "7 apples", 5, 1) == []  # too long
    assert shortest_paths(graph, "mia", "mia", 5, 4) == []


def test_reaches_and_conclusion_split() -> None:
    assert reaches("So the answer is 7.", "7") is None
    assert reaches("The answer is 12.", "11") == "reaches '12', not '11'"
    assert reaches("It is the Danube river.", "Danube") is None
    assert reaches("It is the Rhine.", "Danube") == "does not reach 'Danube'"
    assert split_conclusion("Steps.\nConclusion:\n7") == ("Steps.", "7")
    assert split_conclusion("no marker") == ("no marker", "")


def test_conclusion_mode_needs_no_call() -> None:
    check = KgCotCheck(name="c", mode="conclusion")
    assert not check.uses_llm
    record = {"question": "q", "gold": "11", "reasoning": "5 + 6 = 11.\nConclusion: 12"}
    assert asyncio.run(check.process(record, None)) == \
        "the chain of thought's conclusion reaches '12', not '11'"
    assert asyncio.run(check.process({**record, "reasoning": "x\nConclusion: 11"}, None)) is None


def test_graph_file_reads_primekg_columns(tmp_path: Path) -> None:
    csv_file = tmp_path / "kg.csv"
    csv_file.write_text("x_name,display_relation,y_name\nAspirin,treats,Headache\n")
    assert read_graph_file(str(csv_file)) == [
        {"head": "Aspirin", "relation": "treats", "tail": "Headache", "head_key": "aspirin",
         "tail_key": "headache"}]
    with pytest.raises(RecipeError, match="scope: all"):
        Recipe.load("kg-reasoning", {"graph_file": str(csv_file)})


def run(tmp_path: Path, **params: str):
    src = tmp_path / "qa.jsonl"
    src.write_text("".join(json.dumps(p) + "\n" for p in PROBLEMS))
    backend = ScriptedTestBackend(responder)
    out = tmp_path / "out"
    recipe = Recipe.load("kg-reasoning", {"input": str(src), **params})
    summary = asyncio.run(run_recipe(recipe, out, RunOptions(backend=backend))).to_json()
    return summary, read_jsonl(out / "data.jsonl"), backend


def test_shipped_recipe_keeps_only_cots_that_reach_the_gold(tmp_path: Path) -> None:
    summary, rows, backend = run(tmp_path)
    assert_closed(summary)
    assert [r["gold"] for r in rows] == ["7"]
    [row] = rows
    assert row["question_entities"] and row["answer_entities"] == ["7 apples"]
    assert any(p["text"].endswith("7 apples") for p in row["kg_paths"])
    # the CoT was written along the paths: the first path is in it
    assert row["kg_paths"][0]["text"] in row["reasoning"]
    assert row["conclusion"] == "7"
    paths = step(summary, "paths")
    assert paths["dropped"] == 1  # Ada: no triple names the answer 4
    checked = step(summary, "checked")
    assert checked["dropped"] == 1  # Leo: the reasoning reaches 12, not 11
    assert checked["llm_calls"] == 2  # one re-answer per CoT (MedReason's filter)


def test_conclusion_check_mode(tmp_path: Path) -> None:
    summary, rows, _ = run(tmp_path, check="conclusion")
    assert [r["gold"] for r in rows] == ["7"]
    assert step(summary, "checked")["llm_calls"] == 0
