"""Readers on the real third-party files in ../shared/data (skipped in a fresh clone)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from synthloom.core.context import RunContext
from synthloom.core.records import Output
from synthloom.core.steps import SourceFailure
from synthloom.sources.documents import Documents

pytestmark = pytest.mark.integration


def read(path: Path, **config: object) -> list[Output | SourceFailure]:
    return list(Documents(name="docs", path=str(path), **config).read(RunContext(run_dir=path)))


def test_pdfs_text_pages_and_the_scanned_one_fails(shared_data: Path) -> None:
    items = read(shared_data / "pdf", extensions=[".pdf"])
    docs = {i.columns["path"]: i.columns for i in items if isinstance(i, Output)}
    [scanned] = [i for i in items if isinstance(i, SourceFailure)]
    assert "curator_prescription_scanned.pdf" in scanned.where
    assert scanned.error_class == "EmptyDocument" and "no text layer" in scanned.message
    assert set(docs) == {"asymptote_refcard_multi_column.pdf", "curator_sample_text.pdf",
                         "glpk_cnfsat_math_note.pdf", "revtex_apssamp_two_column.pdf"}
    # Page counts from SOURCES.md; each page's span holds that page's text.
    pages = {"asymptote_refcard_multi_column.pdf": 3, "curator_sample_text.pdf": 1,
             "glpk_cnfsat_math_note.pdf": 6, "revtex_apssamp_two_column.pdf": 7}
    for name, doc in docs.items():
        assert doc["n_pages"] == pages[name] and len(doc["page_spans"]) == pages[name]
        ends = [e for _, e in doc["page_spans"]]
        assert ends == sorted(ends) and ends[-1] == len(doc["text"])
    glpk = docs["glpk_cnfsat_math_note.pdf"]
    assert glpk["title"] == "CNF Satisfiability Problem"
    assert "fi" in glpk["text"] and "\ufb01" not in glpk["text"]  # ligatures normalised
    start, end = glpk["page_spans"][0]
    assert glpk["text"][start:end].startswith("CNF Satisfiability Problem")


def test_web_html_keeps_title_and_section_headings(shared_data: Path) -> None:
    page = shared_data / "web" / "python-3.11-docs" / "tutorial" / "classes.html"
    [item] = read(page)
    doc = item.columns
    assert doc["format"] == "html" and doc["title"].startswith("9. Classes")
    headings = [ln for ln in doc["text"].splitlines() if ln.startswith("#")]
    assert "# 9. Classes" in headings and "## 9.5. Inheritance" in headings
    assert "¶" not in doc["text"]
    assert "<script" not in doc["text"] and "Navigation" not in doc["text"][:200]
    items = read(shared_data / "web" / "sqlite-docs", extensions=[".html"])
    docs = [i.columns for i in items if isinstance(i, Output)]
    assert len(docs) == len(items) >= 50  # every SQLite page has main content
    about = next(d for d in docs if d["path"] == "about.html")
    assert about["title"] == "About SQLite" and about["text"].startswith("# About SQLite")


def test_docx_tables_and_headings(shared_data: Path) -> None:
    items = read(shared_data / "docx", extensions=[".docx"])
    docs = {i.columns["path"]: i.columns for i in items if isinstance(i, Output)}
    assert len(docs) == 3 == len(items)
    tables = docs["unstructured_docx_tables_nested_merged.docx"]["text"]
    assert "| Header Col 1 | Header Col 2 |" in tables
    assert "| d | [e, f; g&t, h] | i |" in tables  # the nested table stays inside its cell
    assert "| a | b |" in tables  # the merged 'b' cell written once
    lists = docs["unstructured_headings_lists.docx"]["text"]
    assert "# A Heading 1" in lists and "## A Heading 2" in lists
    assert "- A top level list item" in lists
    assert len(docs["unstructured_doj_chapter13_trustee_handbook.docx"]["text"]) > 700_000


def test_gsm8k_jsonl_with_a_text_column(shared_data: Path) -> None:
    path = shared_data / "math" / "gsm8k_test.jsonl"
    items = read(path, text_column="question", keep_columns=["answer"])
    assert len(items) == 1319 and all(isinstance(i, Output) for i in items)
    first = json.loads(path.read_text().splitlines()[0])
    assert items[0].columns["text"] == first["question"].strip()
    assert items[0].columns["answer"] == first["answer"]
    assert items[0].meta["where"].endswith("gsm8k_test.jsonl:1")
    # Without the right column every row fails, naming file:line and the missing column.
    bad = read(path, text_column="body")
    assert all(isinstance(b, SourceFailure) and b.error_class == "MissingColumn" for b in bad)
    assert bad[0].where.endswith(":1") and "'body'" in bad[0].message
