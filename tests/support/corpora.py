"""Corpora of real third-party files (../shared/data) for the documents source's tests."""

from __future__ import annotations

import shutil
from pathlib import Path


def add_real_and_broken_files(shared_data: Path, folder: Path) -> None:
    """Two PDFs (one scanned: no text layer), a DOCX, and broken copies: a PDF cut to a third
    and a DOCX cut in half (each a named read failure)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("curator_sample_text.pdf", "curator_prescription_scanned.pdf"):
        shutil.copy(shared_data / "pdf" / name, folder / name)
    shutil.copy(shared_data / "docx" / "unstructured_headings_lists.docx", folder / "lists.docx")
    pdf = (shared_data / "pdf" / "glpk_cnfsat_math_note.pdf").read_bytes()
    (folder / "truncated.pdf").write_bytes(pdf[: len(pdf) // 3])
    docx = (shared_data / "docx" / "unstructured_docx_tables_nested_merged.docx").read_bytes()
    (folder / "truncated.docx").write_bytes(docx[: len(docx) // 2])
