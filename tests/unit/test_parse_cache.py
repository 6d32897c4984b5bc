"""The ``documents`` source's parse cache (sources/parse_cache.py) on real HTML, PDF and DOCX
files from ../shared/data and broken copies of them: a warm read gives the same records and
the same failures, a touched or rewritten file is parsed again, several processes share the
database, and ``cache: false`` or an unusable run folder read as before."""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from synthloom.api import RunOptions, run_recipe
from synthloom.core.context import RunContext
from synthloom.core.recipe import Recipe
from synthloom.core.records import Output
from synthloom.core.steps import SourceFailure
from synthloom.sources.documents import Documents
from synthloom.sources.parse_cache import DB_NAME, RACY_NS, file_key
from tests.support.corpora import add_real_and_broken_files

HTML = ["tutorial/appetite.html", "faq/installed.html", "copyright.html"]
PAST = time.time() - 3600  # files older than the racy window are cached


def backdate(path: Path, when: float = PAST) -> None:
    os.utime(path, (when, when))


@pytest.fixture()
def corpus(shared_data: Path, tmp_path: Path) -> Path:
    """Real pages, PDFs (one scanned: no text layer) and DOCX files, plus broken copies: a
    truncated PDF and DOCX, and a JSONL file (rows are streamed, never cached)."""
    folder = tmp_path / "corpus"
    folder.mkdir()
    for rel in HTML:
        shutil.copy(shared_data / "web" / "python-3.11-docs" / rel,
                    folder / rel.replace("/", "_"))
    add_real_and_broken_files(shared_data, folder)
    (folder / "rows.jsonl").write_text('{"text": "a row"}\n{"text": 3}\n')
    for path in folder.iterdir():
        backdate(path)
    return folder


def read(source: Documents, run_dir: Path) -> list[Output | SourceFailure]:
    return list(source.read(RunContext(run_dir=run_dir)))


def cached_rows(run_dir: Path) -> int:
    with sqlite3.connect(run_dir / DB_NAME) as db:
        return int(db.execute("SELECT count(*) FROM parsed").fetchone()[0])


def test_a_warm_read_gives_the_same_records_and_failures(corpus: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    plain = read(Documents(name="d", path=str(corpus), cache=False), run)
    assert not (run / DB_NAME).exists()  # cache: false writes nothing
    cold_source = Documents(name="d", path=str(corpus))
    cold = read(cold_source, run)
    warm_source = Documents(name="d", path=str(corpus))
    warm = read(warm_source, run)
    assert cold == plain and warm == plain
    whole_files = len(HTML) + 2 + 1 + 2  # html, pdf, docx, broken pdf + docx
    assert (cold_source.cache_hits, cold_source.cache_misses) == (0, whole_files)
    assert (warm_source.cache_hits, warm_source.cache_misses) == (whole_files, 0)
    assert cached_rows(run) == whole_files  # rows of rows.jsonl are not cached
    failures = {Path(f.where).name: f for f in warm if isinstance(f, SourceFailure)}
    # Every broken file is reported on the warm read too, named, with its cause.
    assert {name: f.error_class for name, f in failures.items()} == {
        "curator_prescription_scanned.pdf": "EmptyDocument",
        "truncated.pdf": "CorruptDocument",
        "truncated.docx": "CorruptDocument",
        "rows.jsonl:2": "MissingColumn",
    }
    assert all(str(corpus) in f.where and f.message for f in failures.values())
    formats = {o.columns["format"] for o in warm if isinstance(o, Output)}
    assert formats == {"html", "pdf", "docx", "jsonl"}


def test_a_touched_or_rewritten_file_is_parsed_again(corpus: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    read(Documents(name="d", path=str(corpus)), run)
    touched = corpus / "copyright.html"
    backdate(touched, PAST + 60)  # same bytes, new mtime
    page = corpus / "tutorial_appetite.html"
    page.write_text(page.read_text().replace("Whetting Your Appetite", "Whetting A New Title"))
    backdate(page)  # new content and size, the old mtime
    source = Documents(name="d", path=str(corpus))
    items = read(source, run)
    assert (source.cache_hits, source.cache_misses) == (6, 2)
    titles = {o.columns["path"]: o.columns["title"] for o in items if isinstance(o, Output)}
    assert "Whetting A New Title" in titles["tutorial_appetite.html"]
    assert items == read(Documents(name="d", path=str(corpus), cache=False), run)


def test_a_file_modified_just_now_is_parsed_but_not_cached(corpus: Path) -> None:
    path = corpus / "copyright.html"
    mtime = path.stat().st_mtime_ns
    assert file_key(path, "html", 100, now_ns=mtime + RACY_NS) is not None
    assert file_key(path, "html", 100, now_ns=mtime + RACY_NS // 2) is None
    # The parser's settings are part of the key.
    assert file_key(path, "html", 100) != file_key(path, "html", 200)
    assert file_key(path, "html", 100) != file_key(path, "text", 100)


def _read_share(path: str, run_dir: str, share: int) -> tuple[int, int]:
    source = Documents(name="d", path=path)
    ctx = RunContext(run_dir=Path(run_dir))
    parts = list(source.parts(ctx))[share::2]
    list(source.read_parts(parts, ctx))
    return source.cache_hits, source.cache_misses


def test_processes_share_the_cache(corpus: Path, tmp_path: Path) -> None:
    """Two processes fill one database at once (as Ray read tasks do), then one warm read
    finds every file."""
    run = tmp_path / "run"
    with ProcessPoolExecutor(2) as pool:
        shares = list(pool.map(_read_share, [str(corpus)] * 2, [str(run)] * 2, [0, 1]))
    assert sum(misses for _, misses in shares) == 8
    source = Documents(name="d", path=str(corpus))
    assert read(source, run) == read(Documents(name="d", path=str(corpus), cache=False), run)
    assert (source.cache_hits, source.cache_misses) == (8, 0)


def test_an_unusable_run_folder_reads_without_the_cache(corpus: Path, tmp_path: Path) -> None:
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        items = read(Documents(name="d", path=str(corpus)), not_a_folder)
    assert items == read(Documents(name="d", path=str(corpus), cache=False), tmp_path)
    assert [str(w.message) for w in caught if "parse cache" in str(w.message)], caught


def _run(corpus: Path, out: Path, **config: Any) -> dict[str, bytes]:
    recipe = Recipe(name="read", sources=[Documents(name="docs", path=str(corpus), **config)])
    asyncio.run(run_recipe(recipe, out, RunOptions()))
    return {name: (out / name).read_bytes() for name in ("data.jsonl", "failed.jsonl")}


def test_runs_write_the_same_bytes_with_and_without_the_cache(corpus: Path,
                                                              tmp_path: Path) -> None:
    plain = _run(corpus, tmp_path / "plain", cache=False)
    assert _run(corpus, tmp_path / "cached") == plain  # cold: parses and fills the cache
    assert cached_rows(tmp_path / "cached") == 8
    assert _run(corpus, tmp_path / "cached") == plain  # warm: every file from the cache


def test_no_cache_is_written_into_the_corpus(corpus: Path) -> None:
    """A run folder that is the corpus folder (or a file of it, or under it) keeps no cache:
    reading a shared corpus never writes into it."""
    for run_dir in (corpus, corpus / "copyright.html", corpus / "sub" / "run"):
        items = read(Documents(name="d", path=str(corpus)), run_dir)
        assert len(items) == 10
    assert not list(corpus.rglob(f"{DB_NAME}*")) and not (corpus / "sub").exists()
