"""The ``documents`` source read by worker processes (``read_workers``, sources/documents.py):
real HTML, PDF and DOCX files from ../shared/data, broken copies and generated pages in
several parts of 32 files; a run writes the same bytes (records, failures, identical-row
drops, ``--limit``) and fills the same parse cache with 2 workers as with 1."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import shutil
import sqlite3
import time
from pathlib import Path

import pytest

from synthloom.api import RunOptions, run_recipe
from synthloom.core.context import RunContext
from synthloom.core.recipe import Recipe
from synthloom.core.scaleout import PARTS_PER_TASK
from synthloom.sources.documents import Documents
from synthloom.sources.parse_cache import DB_NAME
from tests.support.corpora import add_real_and_broken_files
from tests.support.scale_inputs import write_documents

PAST = time.time() - 3600  # older than the parse cache's racy window: cached


@pytest.fixture()
def corpus(shared_data: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "corpus"
    write_documents(folder / "gen", 64, html_share=0.5)
    docs = shared_data / "web" / "python-3.11-docs"
    for page in sorted((docs / "tutorial").glob("*.html"))[:4]:
        shutil.copy(page, folder / f"tutorial_{page.name}")
    add_real_and_broken_files(shared_data, folder)
    (folder / "empty.html").write_bytes(b"")
    # Identical rows: the runner drops the second (same id) wherever the part was read.
    (folder / "rows.jsonl").write_text('{"text": "a row"}\n{"text": 3}\n{"text": "a row"}\n')
    for path in folder.rglob("*"):
        os.utime(path, (PAST, PAST))
    assert len(list(folder.rglob("*.*"))) > 2 * PARTS_PER_TASK  # three parts at least
    return folder


def _run(corpus: Path, out: Path, workers: int, limit: int | None = None) -> dict[str, bytes]:
    source = Documents(name="docs", path=str(corpus), read_workers=workers)
    asyncio.run(run_recipe(Recipe(name="read", sources=[source]), out, RunOptions(limit=limit)))
    return {name: (out / name).read_bytes() for name in ("data.jsonl", "failed.jsonl")}


def _cached(run_dir: Path) -> list[tuple[str, bytes]]:
    with sqlite3.connect(run_dir / DB_NAME) as db:
        return sorted(db.execute("SELECT * FROM parsed").fetchall())  # type: ignore[arg-type]


def test_two_workers_write_what_one_writes(corpus: Path, tmp_path: Path) -> None:
    serial = _run(corpus, tmp_path / "one", 1)
    assert serial["data.jsonl"].count(b"\n") > 70 and serial["failed.jsonl"].count(b"\n") >= 4
    assert _run(corpus, tmp_path / "two", 2) == serial  # cold: the workers parse and cache
    assert _cached(tmp_path / "two") == _cached(tmp_path / "one")
    # --limit stops inside the third part: the same first records, the same failures before
    # (warm: the workers' cache lookups).
    limited = _run(corpus, tmp_path / "one", 1, limit=70)
    assert 2 * PARTS_PER_TASK < limited["data.jsonl"].count(b"\n") < \
        serial["data.jsonl"].count(b"\n")
    assert _run(corpus, tmp_path / "two", 2, limit=70) == limited


def test_workers_start_only_for_more_than_one_part(tmp_path: Path) -> None:
    corpus = write_documents(tmp_path / "corpus", PARTS_PER_TASK + 8, html_share=0.0)
    for path in corpus.iterdir():
        os.utime(path, (PAST, PAST))
    ctx = RunContext(run_dir=tmp_path / "run")
    pooled = Documents(name="d", path=str(corpus), read_workers=2).read(ctx)
    next(pooled)
    assert len(multiprocessing.active_children()) == 2
    pooled.close()  # the pool is shut down when the read stops early (--limit)
    assert not multiprocessing.active_children()
    files = PARTS_PER_TASK + 8
    for expected in ((0, files), (files, 0)):  # cold, then warm: the workers' counts add up
        source = Documents(name="d", path=str(corpus), read_workers=2)
        assert len(list(source.read(RunContext(run_dir=tmp_path / "counted")))) == files
        assert (source.cache_hits, source.cache_misses) == expected
    small = Documents(name="d", path=str(corpus), read_workers=2, extensions=["txt"])
    assert 0 < len(list(small.read(ctx))) < PARTS_PER_TASK
    assert not multiprocessing.active_children()
