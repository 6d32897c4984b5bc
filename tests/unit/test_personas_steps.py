"""PersonaHub recipe (``personas``) with the scripted test backend (a test double, no model):
text-to-persona verbs, persona-to-persona expansion, MinHash + embedding dedup of personas,
persona-conditioned tasks, and the accounting of every drop."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

from synthloom.api import RunOptions, run_recipe
from synthloom.core.recipe import Recipe
from synthloom.methods.personas.steps import (
    UNNAMED_RELATION,
    PersonaFromText,
    PersonaTask,
    clean_persona,
)
from tests.support.runs import read_jsonl, step_closes
from tests.support.scripted_backend import ScriptedTestBackend, last_user_text

DOCS = {
    "bees.txt": "Honeybees communicate the direction of flowers with a waggle dance. "
                "Foragers returning to the hive repeat the dance so that others can find food. "
                "Beekeepers watch the dances to judge how the colony is doing in spring.",
    "tides.txt": "Tides rise and fall twice a day because the Moon pulls on the oceans. "
                 "Spring tides happen at new and full moon, neap tides in between. "
                 "Harbour pilots plan the passage of large ships around the tide tables.",
    "sql.txt": "A LEFT JOIN keeps every row of the left table, filling missing columns with "
               "NULL. Analysts use it to find customers without orders. An INNER JOIN keeps "
               "only the rows that match in both tables of the query.",
}
PERSONAS = {
    "waggle": "A beekeeper in rural Slovenia who studies the waggle dance of her colonies",
    "Moon": "A harbour pilot in Rotterdam who plans ship passages around spring tides",
    # Nearly the same persona for the SQL text: a near-duplicate the MinHash step must drop.
    "LEFT JOIN": "A beekeeper in rural Slovenia who closely studies the waggle dance of her "
                 "colonies",
}


def run(recipe: Recipe, out: Path, backend: ScriptedTestBackend, limit: int | None = None,
        ) -> dict:
    return asyncio.run(run_recipe(recipe, out, RunOptions(backend=backend, limit=limit))).to_json()


def corpus(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    for name, text in DOCS.items():
        (folder / name).write_text(text)
    return folder


class Responder:
    """Answers by prompt kind and records what each prompt asked."""

    def __init__(self) -> None:
        self.verbs: list[str] = []
        self.max_tokens: dict[str, int] = {}

    def __call__(self, request, seed) -> str:
        text = last_user_text(request)
        if "Who is likely to" in text:
            self.verbs.append(re.search(r"Who is likely to (\w+)", text).group(1))
            persona = next(p for key, p in PERSONAS.items() if key in text)
            return json.dumps({"persona": f"Persona: {persona}"})
        if "close relationship" in text:
            parent = text.split("Persona: ")[1].split("\n")[0]
            who = "apprentice" if "beekeeper" in parent else "ship captain"
            return json.dumps({"related": [{"relation": "mentor of", "persona":
                                            f"A young {who} who learns the trade from {parent[2:40]}"}]})
        if "math problem" in text:
            self.max_tokens["math"] = request.params.max_tokens
            return "Math problem: A colony grows by 3% a week from 12,000 bees; when does it pass 20,000?"
        if "Guess a prompt" in text:
            return "User prompt: Plan a tide-safe route for a 300 m container ship into Rotterdam."
        if "Quora article" in text:
            return "Title: Reading a tide table\n\nA tide table lists the times of high and low water."
        return "A direct answer to the task."


def test_personas_chain_text_relation_dedup_task(tmp_path: Path) -> None:
    responder = Responder()
    backend = ScriptedTestBackend(responder)
    recipe = Recipe.load("personas", {"corpus": str(corpus(tmp_path)), "embedder": "hashing",
                                      "verbs_per_chunk": "1", "max_chunks_per_doc": "1"})
    summary = run(recipe, tmp_path / "out", backend)
    steps = {s["name"]: s for s in summary["steps"]}
    assert all(step_closes(s) for s in steps.values()), steps
    # One verb per chunk, a seeded choice among the four of the paper's question.
    assert steps["text_personas"]["llm_calls"] == 3 and len(responder.verbs) == 3
    assert set(responder.verbs) <= {"read", "write", "like", "dislike"}
    assert steps["text_personas"]["out"] == 3
    # Each persona is kept and gets one related persona: 3 -> 6.
    assert steps["related_personas"]["out"] == 6 and steps["related_personas"]["llm_calls"] == 3
    # The SQL text's persona nearly repeats the bees one (one word more): MinHash on 1-grams
    # drops it; its related persona, reworded, is caught by the embedding step.
    dropped = read_jsonl(tmp_path / "out" / "dropped.jsonl")
    reasons = {d["step"]: d["reason"] for d in dropped}
    assert steps["persona_exact"]["dropped"] == 0
    assert steps["persona_minhash"]["dropped"] == 1 and steps["persona_semantic"]["dropped"] == 1
    assert "1-gram MinHash" in reasons["persona_minhash"]
    assert "closely studies" in next(d["record"]["persona"] for d in dropped
                                     if d["step"] == "persona_minhash")
    assert reasons["persona_semantic"].startswith("semantic duplicate of ")
    personas = read_jsonl(tmp_path / "out" / "personas.jsonl")
    assert len(personas) == steps["persona_semantic"]["kept"] == 4
    by_source = {p["persona_source"] for p in personas}
    assert by_source == {"text", "relation"}
    text_p = [p for p in personas if p["persona_source"] == "text"]
    rel_p = [p for p in personas if p["persona_source"] == "relation"]
    assert all(p["relation"].startswith("likely to ") and p["round"] == 0 for p in text_p)
    assert all(not p["persona"].startswith("Persona:") for p in personas)
    assert {p["parent_persona"] for p in rel_p} == {p["persona"] for p in text_p}
    assert all(p["relation"] == "mentor of" and p["round"] == 1 for p in rel_p)
    assert all(p["_meta"]["source"]["chunk_id"] == p["chunk_id"] for p in personas)
    data = read_jsonl(tmp_path / "out" / "data.jsonl")
    assert len(data) == summary["records"] == 4
    for record in data:
        assert record["task_type"] == "math" and record["task"].startswith("A colony grows")
        assert {"persona", "persona_source", "relation", "task"} <= set(record)
        assert "response" not in record
    assert responder.max_tokens["math"] == 384
    # A rerun replays from the cache.
    again = ScriptedTestBackend(Responder())
    run(recipe, tmp_path / "out", again)
    assert again.calls == 0


def test_task_knob_and_response(tmp_path: Path) -> None:
    folder = corpus(tmp_path)
    for task, start in [("instruction", "Plan a tide-safe route"), ("knowledge", "Title: Reading")]:
        backend = ScriptedTestBackend(Responder())
        recipe = Recipe.load("personas", {"corpus": str(folder), "embedder": "hashing",
                                          "task": task, "respond": "true",
                                          "relations": "1", "verbs_per_chunk": "1"})
        summary = run(recipe, tmp_path / task, backend, limit=1)
        data = read_jsonl(tmp_path / task / "data.jsonl")
        assert data and all(r["task_type"] == task and r["task"].startswith(start) for r in data)
        assert all(r["response"] == "A direct answer to the task." for r in data)
        task_step = next(s for s in summary["steps"] if s["name"] == "task")
        assert task_step["llm_calls"] == 2 * task_step["out"]  # task + response


def test_unusable_personas_are_drops_with_reasons(tmp_path: Path) -> None:
    def short(request, seed) -> str:
        return json.dumps({"persona": "A reader."})

    recipe = Recipe.load("personas", {"corpus": str(corpus(tmp_path)), "embedder": "hashing",
                                      "verbs_per_chunk": "2"})
    summary = run(recipe, tmp_path / "out", ScriptedTestBackend(short), limit=2)
    text_step = next(s for s in summary["steps"] if s["name"] == "text_personas")
    assert text_step["in"] == 2 and text_step["dropped"] == 2 and text_step["llm_calls"] == 4
    [first, _] = read_jsonl(tmp_path / "out" / "dropped.jsonl")
    assert first["step"] == "text_personas"
    assert first["reason"].startswith("no usable persona from this text")
    assert "persona 'A reader.' has 2 words (< 5)" in first["reason"]
    assert summary["records"] == 0


def test_web_pages_feed_text_to_persona(shared_data: Path, tmp_path: Path) -> None:
    """Real HTML pages (../shared/data/web): the prompts carry the pages' text, not markup."""
    prompts: list[str] = []

    def answer(request, seed) -> str:
        text = last_user_text(request)
        prompts.append(text)
        if "Who is likely to" in text:
            return json.dumps({"persona": "A database engineer who maintains an embedded "
                                          "SQLite store in a mobile app"})
        if "close relationship" in text:
            # "..." copied from the prompt's example names no relation.
            return json.dumps({"related": [{"relation": "...", "persona":
                                            "A mobile QA tester who files bugs about app crashes"}]})
        return "Math problem: Estimate the page count of a 2 GB SQLite file with 4 KiB pages."

    recipe = Recipe.load("personas", {"corpus": str(shared_data / "web" / "sqlite-docs"),
                                      "embedder": "hashing", "max_chunks_per_doc": "1",
                                      "verbs_per_chunk": "1",
                                      "documents.extensions": '[".html"]'})
    summary = run(recipe, tmp_path / "out", ScriptedTestBackend(answer), limit=2)
    steps = {s["name"]: s for s in summary["steps"]}
    assert all(step_closes(s) for s in steps.values())
    persona_prompts = [p for p in prompts if "Who is likely to" in p]
    assert len(persona_prompts) == 2
    assert all("<div" not in p and "</p>" not in p and len(p.split()) > 60
               for p in persona_prompts)
    # Two identical personas from two pages: exact dedup keeps one (and one related persona).
    assert steps["persona_exact"]["dropped"] == 2
    data = read_jsonl(tmp_path / "out" / "data.jsonl")
    assert len(data) == 2 and {r["persona_source"] for r in data} == {"text", "relation"}
    assert data[0]["_meta"]["source"]["path"].endswith(".html")
    assert data[1]["relation"] == UNNAMED_RELATION


def test_helpers(tmp_path: Path) -> None:
    step = PersonaFromText(name="p", verbs=["read", "write", "like", "dislike"],
                           verbs_per_chunk=2)
    assert step.verbs_for(7) == step.verbs_for(7) and len(step.verbs_for(7)) == 2
    assert {tuple(step.verbs_for(s)) for s in range(40)} > {tuple(step.verbs_for(7))}
    assert PersonaFromText(name="p", verbs_per_chunk=0).verbs_for(1) == [
        "read", "write", "like", "dislike"]
    assert clean_persona('**Persona:** "A nurse  who works nights"') == "A nurse who works nights"
    task = PersonaTask(name="t", task="math")
    assert task.clean_task("Math problem: Find x.") == "Find x."
    assert task.clean_task("The math problem: Find y.") == "Find y."
    assert PersonaTask(name="t", task="knowledge").clean_task("Title: X\nbody") == "Title: X\nbody"
