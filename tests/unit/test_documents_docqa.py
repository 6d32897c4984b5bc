"""doc-qa steps with the ScriptedTestBackend (a test double, no model): exact pair quota and its
accounting, reasoning and summaries, groundedness (overlap and judge), per-document question
dedup, and the shipped recipe end to end with closed accounting and failure lines."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest

from synthloom.api import RunOptions, run_recipe
from synthloom.core.context import RunContext
from synthloom.core.recipe import Recipe
from synthloom.core.records import make_record
from synthloom.methods.common.overlap import support
from synthloom.methods.common.question_dedup import DedupQuestions
from synthloom.methods.docqa.grounding import Grounding
from synthloom.methods.docqa.pairs import DocQAPairs, pairs_schema, usable_pairs
from synthloom.sources.chunk_step import ChunkDocuments
from synthloom.sources.documents import Documents
from tests.support.runs import read_jsonl
from tests.support.scripted_backend import ScriptedTestBackend, last_user_text
from tests.unit.test_documents_readers import make_pdf

PASSAGE_RE = re.compile(r'"""\n(.*?)\n"""', re.DOTALL)


def passage_of(request) -> str:
    match = PASSAGE_RE.search(last_user_text(request))
    assert match, last_user_text(request)
    return match.group(1)


def qa_responder(request, seed, *, repeat: bool = False, cot: bool = False) -> str:
    """Questions about the passage's sentences, answered with the sentence itself."""
    text = last_user_text(request)
    if "Is the answer supported" in text:
        return json.dumps({"supported": "moon cheese" not in text})
    n = int(re.search(r"Write exactly (\d+)", text).group(1))
    sentences = [s for s in re.split(r"(?<=[.!?])\s+", passage_of(request)) if len(s) > 20]
    pairs = []
    for i in range(n):
        sentence = sentences[i % len(sentences)].lstrip("# ")
        question = "What does the passage say first?" if repeat else \
            f"What does the passage say in sentence {i + 1}?"
        pair = {"question": question}
        if cot:
            pair["reasoning"] = f"Sentence {i + 1} states it."
        pair["answer"] = sentence
        pairs.append(pair)
    out = {"pairs": pairs}
    if "summary" in text:
        out = {"summary": "A short summary.", **out}
    return json.dumps(out)


def run(recipe: Recipe, out: Path, backend: ScriptedTestBackend | None = None) -> dict:
    return asyncio.run(run_recipe(recipe, out, RunOptions(backend=backend))).to_json()


def step(summary: dict, name: str) -> dict:
    return next(s for s in summary["steps"] if s["name"] == name)


def assert_closed(summary: dict) -> None:
    for s in summary["steps"]:
        done = {"expand": s.get("expanded"), "global": s.get("kept")}.get(s["kind"], s["out"])
        assert s["in"] == done + s["failed"] + s["dropped"], s


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "owls.md").write_text(
        "# Owls\n\nOwls hunt small mammals at night. Their soft feathers make their flight "
        "silent. Barn owls find mice by sound alone.\n")
    (folder / "ferns.md").write_text(
        "# Ferns\n\nFerns reproduce with spores instead of seeds. The spores grow on the "
        "underside of the fronds. Young fronds unroll from tight coils called fiddleheads.\n")
    return folder


def pairs_recipe(corpus: Path, **pairs_config: object) -> Recipe:
    return Recipe(name="pairs", sources=[Documents(name="docs", path=str(corpus))],
                  steps=[ChunkDocuments(name="chunks", max_tokens=200),
                         DocQAPairs(name="qa", **pairs_config)])


# --- the pairs step ------------------------------------------------------------------------------


def test_schema_requests_an_exact_count() -> None:
    schema = pairs_schema(3, cot=True, summary=True)
    array = schema["properties"]["pairs"]
    assert array["minItems"] == array["maxItems"] == 3
    assert list(array["items"]["properties"]) == ["question", "reasoning", "answer"]
    assert list(schema["properties"]) == ["summary", "pairs"]
    assert "reasoning" not in pairs_schema(2, cot=False, summary=False)["properties"]["pairs"][
        "items"]["properties"]


def test_each_pair_is_one_record_with_quota_in_meta(corpus: Path, tmp_path: Path) -> None:
    backend = ScriptedTestBackend(qa_responder)
    summary = run(pairs_recipe(corpus, pairs=3), tmp_path / "out", backend)
    assert_closed(summary)
    qa = step(summary, "qa")
    assert qa["in"] == 2 and qa["out"] == 6 and qa["llm_calls"] == 2
    rows = read_jsonl(tmp_path / "out" / "data.jsonl")
    assert sorted(r["pair_index"] for r in rows) == [0, 0, 1, 1, 2, 2]
    for row in rows:
        meta = row["_meta"]
        assert meta["pairs_asked"] == 3 and meta["pairs_got"] == 3
        assert row["answer"] in row["text"]  # the chunk stays beside the pair
        assert meta["source"]["path"] in ("owls.md", "ferns.md")
        assert meta["template_hash"] and meta["model"] == "scripted:scripted"
    # A call's tokens are split over its records: they sum to the step's count.
    total = sum(r["_meta"]["usage"]["completion_tokens"] for r in rows)
    assert total == qa["completion_tokens"] > 0


def test_shortfall_is_accounted(corpus: Path, tmp_path: Path) -> None:
    backend = ScriptedTestBackend(lambda r, s: qa_responder(r, s, repeat=True))
    run(pairs_recipe(corpus, pairs=3), tmp_path / "out", backend)
    rows = read_jsonl(tmp_path / "out" / "data.jsonl")
    assert len(rows) == 2  # one usable pair per chunk
    for row in rows:
        assert (row["_meta"]["pairs_asked"], row["_meta"]["pairs_got"]) == (3, 1)
        assert row["_meta"]["pairs_rejected"] == [
            "pair 1: repeats an earlier question of this chunk",
            "pair 2: repeats an earlier question of this chunk"]
    # Too few pairs for the schema: re-asked, then a failure with the schema error.
    short = ScriptedTestBackend(lambda r, s: json.dumps({"pairs": [
        {"question": "Only one question here?", "answer": "Owls."}]}))
    summary = run(pairs_recipe(corpus, pairs=2), tmp_path / "short", short)
    assert step(summary, "qa")["failed"] == 2 and step(summary, "qa")["out"] == 0
    failed = read_jsonl(tmp_path / "short" / "failed.jsonl")
    assert all("too short" in f["message"] for f in failed)
    # No usable pair at all: the chunk is a drop that says why.
    echo = ScriptedTestBackend(lambda r, s: json.dumps({"pairs": [
        {"question": f"Question number {i}?", "answer": f"question number {i}"}
        for i in range(2)]}))
    summary = run(pairs_recipe(corpus, pairs=2), tmp_path / "echo", echo)
    assert step(summary, "qa")["dropped"] == 2 and step(summary, "qa")["out"] == 0
    reasons = {d["reason"] for d in read_jsonl(tmp_path / "echo" / "dropped.jsonl")}
    assert reasons == {"model returned 0 usable of 2 requested QA pairs (pair 0: the answer "
                       "repeats the question; pair 1: the answer repeats the question)"}
    assert usable_pairs([{"question": "", "answer": "x"}, "junk",
                         {"question": "Why so?", "answer": "why so"},
                         {"question": "What is it?", "answer": " } "}]) == (
        [], ["pair 0: question has no words", "pair 1: not an object",
             "pair 2: the answer repeats the question", "pair 3: answer has no words"])


def test_cot_and_summary_columns(corpus: Path, tmp_path: Path) -> None:
    backend = ScriptedTestBackend(lambda r, s: qa_responder(r, s, cot=True))
    run(pairs_recipe(corpus, pairs=2, cot=True, summary=True), tmp_path / "out", backend)
    rows = read_jsonl(tmp_path / "out" / "data.jsonl")
    assert len(rows) == 4
    assert all(r["reasoning"].startswith("Sentence") and r["summary"] == "A short summary."
               for r in rows)
    prompt = next(iter(backend.prompts))
    assert "reasoning" in prompt and "summary" in prompt


# --- groundedness --------------------------------------------------------------------------------


def qa_record(question: str, answer: str, text: str, doc_id: str = "d1") -> dict:
    return make_record({"question": question, "answer": answer, "text": text,
                        "doc_id": doc_id}, step="qa")


def test_overlap_support_counts_content_words() -> None:
    passage = "Barn owls find mice by sound alone, hunting at night."
    assert support("They find mice by sound.", passage) == (1.0, [])
    share, missing = support("Owls eat cheese from the moon.", passage)
    assert share == pytest.approx(1 / 4) and missing == ["eat", "cheese", "moon"]


def test_grounding_overlap_drops_with_reason(tmp_path: Path) -> None:
    step_ = Grounding(name="g", threshold=0.6)
    assert step_.uses_llm is False
    passage = "Barn owls find mice by sound alone, hunting at night."
    keep = asyncio.run(step_.process(qa_record("How?", "By sound alone.", passage), None))
    drop = asyncio.run(step_.process(qa_record("What?", "Owls eat moon cheese.", passage), None))
    assert keep is None
    assert drop.startswith("answer not supported by the chunk: 0.25")
    assert "missing: eat, moon, cheese" in drop


def test_grounding_judge_uses_the_model(corpus: Path, tmp_path: Path) -> None:
    def responder(request, seed):
        text = last_user_text(request)
        if "Is the answer supported" in text:
            return json.dumps({"supported": "first" in text.split("Question:")[1]})
        return qa_responder(request, seed)

    recipe = pairs_recipe(corpus, pairs=2)
    recipe.steps.append(Grounding(name="grounded", mode="judge"))
    recipe.validate_graph()
    summary = run(recipe, tmp_path / "out", ScriptedTestBackend(responder))
    assert_closed(summary)
    grounded = step(summary, "grounded")
    assert grounded["llm_calls"] == 4 and grounded["dropped"] == 4 and grounded["out"] == 0
    dropped = read_jsonl(tmp_path / "out" / "dropped.jsonl")
    assert all(d["reason"].startswith("judge (scripted:scripted) found the answer not "
                                      "supported") for d in dropped)


# --- question dedup ------------------------------------------------------------------------------


def test_dedup_within_a_document_names_the_kept_record() -> None:
    records = [
        qa_record("What do owls hunt at night?", "Mice.", "t", "d1"),
        qa_record("what do OWLS hunt at night", "Mice.", "t", "d1"),          # exact after norm
        qa_record("What do the owls hunt at night?", "Mice.", "t", "d1"),     # Jaccard 6/7
        qa_record("Why is owl flight silent?", "Soft feathers.", "t", "d1"),  # different
        qa_record("What do owls hunt at night?", "Mice.", "t", "d2"),         # other document
    ]
    results = asyncio.run(DedupQuestions(name="dq").process_all(records, RunContext(Path("."))))
    kept_id = records[0]["_meta"]["id"]
    assert [r.dropped is None for r in results] == [True, False, False, True, True]
    assert results[1].dropped.startswith("duplicate question in document d1: same as kept "
                                         f"record {kept_id}")
    assert "word Jaccard 0.86 >= 0.80" in results[2].dropped and kept_id in results[2].dropped
    exact_only = asyncio.run(DedupQuestions(name="dq", jaccard=1.1).process_all(
        records, RunContext(Path("."))))
    assert [r.dropped is None for r in exact_only] == [True, False, True, True, True]


# --- the shipped recipe --------------------------------------------------------------------------


def test_doc_qa_recipe_end_to_end(corpus: Path, tmp_path: Path) -> None:
    (corpus / "broken.pdf").write_bytes(make_pdf([["Some text."]])[:150] + b"\x00" * 50)
    (corpus / "blob.txt").write_bytes(b"\x7fELF\x02\x01\x01" + bytes(200))
    (corpus / "owls_copy.md").write_text((corpus / "owls.md").read_text())
    recipe = Recipe.load("doc-qa", {"corpus": str(corpus), "pairs_per_chunk": "2"})
    out = tmp_path / "out"
    summary = run(recipe, out, ScriptedTestBackend(qa_responder))
    assert_closed(summary)
    source = step(summary, "documents")
    assert (source["in"], source["out"], source["failed"]) == (5, 3, 2)
    failed = read_jsonl(out / "failed.jsonl")
    assert {(Path(f["where"]).name, f["error_class"]) for f in failed} == {
        ("broken.pdf", "CorruptDocument"), ("blob.txt", "BinaryContent")}
    rows = read_jsonl(out / "data.jsonl")
    # owls.md and its copy have the same text (same doc_id): their questions are duplicates.
    assert step(summary, "unique_questions")["dropped"] == 2
    assert len(rows) == 4
    for row in rows:
        source_meta = row["_meta"]["source"]
        assert source_meta["path"] in ("owls.md", "ferns.md", "owls_copy.md")
        assert row["text"] == (corpus / source_meta["path"]).read_text().strip()[
            source_meta["char_start"]:source_meta["char_end"]]
        assert source_meta["chunk_id"] == row["chunk_id"]
    # A rerun replays every item from the cache: no new model calls.
    again = run(Recipe.load("doc-qa", {"corpus": str(corpus), "pairs_per_chunk": "2"}), out,
                ScriptedTestBackend(qa_responder))
    assert again["llm_calls"] == 0 and again["records"] == len(rows)
