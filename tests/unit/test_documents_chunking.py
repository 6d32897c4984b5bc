"""Chunker: exact spans, token bounds, overlap, structure (headings, code fences), min_tokens,
max_chunks; the ``chunk`` step's columns and the ``_meta.source`` its descendants inherit."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from synthloom.api import RunOptions, run_recipe
from synthloom.core.recipe import Recipe
from synthloom.methods.generate import Generate
from synthloom.sources.chunk_step import ChunkDocuments, select_spread
from synthloom.sources.chunking import chunk_text, estimate_tokens, segment
from synthloom.sources.documents import Documents
from tests.support.runs import read_jsonl
from tests.support.scripted_backend import ScriptedTestBackend
from tests.unit.test_documents_readers import make_pdf

WORDS = ["river", "stone", "maple", "quiet", "lantern", "copper", "meadow", "signal", "harbor",
         "ember", "violet", "canyon", "thread", "orbit", "saddle", "pepper", "glacier", "willow"]


def words_count(text: str) -> int:
    return len(text.split())


def make_doc(seed: int = 0, sections: int = 4) -> str:
    rng = random.Random(seed)
    parts = []
    for s in range(sections):
        parts.append(f"{'#' * (1 + s % 2)} Section {s}")
        for _ in range(rng.randint(1, 4)):
            sentences = []
            for _ in range(rng.randint(1, 6)):
                words = [rng.choice(WORDS) for _ in range(rng.randint(3, 18))]
                sentences.append(" ".join(words).capitalize() + rng.choice(".!?"))
            parts.append(" ".join(sentences))
    return "\n\n".join(parts) + "\n"


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("counter", [estimate_tokens, words_count])
def test_spans_are_exact_and_within_the_token_bound(seed: int, counter) -> None:
    text = make_doc(seed, sections=6)
    chunks = chunk_text(text, max_tokens=60, overlap_tokens=15, min_tokens=10, count=counter)
    assert len(chunks) > 2
    for i, chunk in enumerate(chunks):
        piece = text[chunk.char_start:chunk.char_end]
        assert piece == piece.strip() and piece
        assert chunk.index == i
        assert counter(piece) == chunk.n_tokens <= 60
    # Chunks move forward and together cover every word of the document.
    starts = [c.char_start for c in chunks]
    assert starts == sorted(set(starts))
    covered = set()
    for c in chunks:
        covered.update(range(c.char_start, c.char_end))
    assert all(i in covered for i, ch in enumerate(text) if not ch.isspace())


def test_overlap_repeats_tail_sentences_within_the_budget() -> None:
    sentence = "One two three four five six seven eight nine ten."  # 10 words
    text = " ".join([sentence] * 12)  # one paragraph, no headings
    chunks = chunk_text(text, max_tokens=40, overlap_tokens=20, count=words_count)
    assert len(chunks) >= 3
    for prev, nxt in zip(chunks, chunks[1:], strict=False):
        assert nxt.char_start < prev.char_end  # they overlap ...
        shared = text[nxt.char_start:prev.char_end]
        assert 0 < words_count(shared) <= 20  # ... by at most overlap_tokens
    none = chunk_text(text, max_tokens=40, overlap_tokens=0, count=words_count)
    assert all(b.char_start >= a.char_end for a, b in zip(none, none[1:], strict=False))


def test_headings_start_chunks_and_give_the_heading_path() -> None:
    text = ("# Guide\n\nIntro words here for the guide.\n\n## Install\n\nRun the installer now.\n\n"
            "### Linux\n\nUse the package manager.\n\n## Use\n\nOpen the app and click.\n")
    chunks = chunk_text(text, max_tokens=200, overlap_tokens=10, min_tokens=1,
                        count=words_count)
    assert [text[c.char_start:c.char_end].splitlines()[0] for c in chunks] == [
        "# Guide", "## Install", "### Linux", "## Use"]
    assert [c.headings for c in chunks] == [["Guide"], ["Guide", "Install"],
                                            ["Guide", "Install", "Linux"], ["Guide", "Use"]]
    # No overlap across a heading.
    assert all(b.char_start >= a.char_end for a, b in zip(chunks, chunks[1:], strict=False))
    # min_tokens keeps small sections together.
    merged = chunk_text(text, max_tokens=200, min_tokens=50, count=words_count)
    assert len(merged) == 1 and merged[0].char_end == len(text.rstrip())


def test_code_fences_are_not_split_on_comment_lines() -> None:
    text = ("# Title\n\nSome prose.\n\n```\n# not a heading\nx = 1\n\ny = 2\n```\n\n"
            "More prose after the code.\n")
    units = segment(text)
    kinds = [(u.kind, text[u.start:u.end]) for u in units]
    assert ("code", "```\n# not a heading\nx = 1\n\ny = 2\n```") in kinds
    assert [k for k, _ in kinds].count("heading") == 1


def test_a_giant_sentence_is_cut_at_whitespace() -> None:
    text = " ".join(f"w{i}" for i in range(500))  # no punctuation at all
    chunks = chunk_text(text, max_tokens=50, overlap_tokens=0, count=words_count)
    assert all(c.n_tokens <= 50 for c in chunks)
    assert " ".join(text[c.char_start:c.char_end] for c in chunks) == text


def test_small_tail_merges_and_empty_text_has_no_chunks() -> None:
    text = ("Alpha beta gamma delta. " * 9) + "\n\n" + "Tail."
    chunks = chunk_text(text, max_tokens=40, min_tokens=5, count=words_count)
    assert text[chunks[-1].char_start:chunks[-1].char_end].endswith("Tail.")
    assert all(c.n_tokens >= 5 for c in chunks)
    assert chunk_text("  \n\n ", max_tokens=10) == []


def test_select_spread_keeps_first_and_last() -> None:
    chunks = chunk_text("\n\n".join(f"Paragraph {i} words." for i in range(10)), max_tokens=3,
                        count=words_count)
    assert len(chunks) == 10
    assert [c.index for c in select_spread(chunks, 4)] == [0, 3, 6, 9]
    assert select_spread(chunks, None) == chunks == select_spread(chunks, 0)
    assert [c.index for c in select_spread(chunks, 1)] == [0]


# --- the chunk step in a run ---------------------------------------------------------------------


def test_chunk_step_columns_pages_and_source(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    long_page = [f"Line {i} of the first page talks about owls." for i in range(12)]
    (corpus / "owls.pdf").write_bytes(make_pdf([long_page, ["Second page: owls hunt mice."]]))
    (corpus / "notes.md").write_text("# Notes\n\nShort note.\n")
    recipe = Recipe(name="chunks", sources=[Documents(name="docs", path=str(corpus))],
                    steps=[ChunkDocuments(name="chunks", max_tokens=40, overlap_tokens=8,
                                          min_tokens=4)])
    out = tmp_path / "out"
    summary = asyncio.run(run_recipe(recipe, out, RunOptions())).to_json()
    step = summary["steps"][1]
    assert step["in"] == step["expanded"] + step["failed"] + step["dropped"] == 2
    docs = read_jsonl(out / "data.jsonl")
    pdf_chunks = [c for c in docs if c["path"] == "owls.pdf"]
    assert len(pdf_chunks) >= 3 and step["out"] == len(pdf_chunks) + 1
    for c in pdf_chunks:
        meta = c["_meta"]["source"]
        assert meta["path"] == "owls.pdf" and meta["chunk_id"] == c["chunk_id"]
        assert (meta["char_start"], meta["char_end"]) == (c["char_start"], c["char_end"])
        assert meta["pages"] == c["pages"] and c["pages"]
        assert meta["id"] == c["_meta"]["parents"][0]  # the document's record
        assert c["n_chunks"] == len(pdf_chunks) and "page_spans" not in c
    assert pdf_chunks[0]["pages"] == [1] and pdf_chunks[-1]["pages"][-1] == 2
    assert len({c["chunk_id"] for c in pdf_chunks}) == len(pdf_chunks)
    note = next(c for c in docs if c["path"] == "notes.md")
    assert note["text"] == "# Notes\n\nShort note." and note["headings"] == ["Notes"]
    assert note["pages"] == []


def test_descendants_inherit_the_chunk_source(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.md").write_text("# A\n\n" + "Alpha words here. " * 30)
    (tmp_path / "ask.jinja").write_text("Ask about: {{ text }}")
    recipe = Recipe(name="chunks", sources=[Documents(name="docs", path=str(corpus))],
                    steps=[ChunkDocuments(name="chunks", max_tokens=60, overlap_tokens=0),
                           Generate(name="ask", template=str(tmp_path / "ask.jinja"),
                                    output="q")])
    backend = ScriptedTestBackend(lambda req, seed: "What is alpha?")
    out = tmp_path / "out"
    asyncio.run(run_recipe(recipe, out, RunOptions(backend=backend)))
    rows = read_jsonl(out / "data.jsonl")
    assert len(rows) >= 2
    for row in rows:
        source = row["_meta"]["source"]
        assert source["path"] == "a.md" and source["chunk_id"] == row["chunk_id"]
        assert row["text"] == (corpus / "a.md").read_text()[
            source["char_start"]:source["char_end"]]
