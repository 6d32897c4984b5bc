"""Hostile inputs to the file sources (issue 22 items 1, 2, 9), on real files made here: a JSONL
line nested thousands of levels deep, file names that are not UTF-8, symbolic links out of the
corpus (into /proc, to a private key), dangling links, link loops, a FIFO, a socket, a file of
NUL bytes. Each is one named failure (SourceFailure: the path and why) and the run goes on."""

from __future__ import annotations

import asyncio
import json
import os
import socket
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from synthloom.api import RunOptions, run_recipe
from synthloom.cli import app
from synthloom.core.context import RunContext
from synthloom.core.recipe import Recipe
from synthloom.core.records import Output
from synthloom.core.steps import SourceFailure, SourceStep
from synthloom.sources.documents import Documents
from synthloom.sources.files import JsonlRows, TabularRows, TextFiles
from synthloom.sources.tabular import MAX_NESTING

SOURCES = {"rows": TabularRows, "jsonl": JsonlRows, "documents": Documents,
           "text_files": TextFiles}


def read(source: SourceStep, where: Path) -> list[Output | SourceFailure]:
    return list(source.read(RunContext(run_dir=where)))


def outputs(items: list) -> list[Output]:
    return [i for i in items if isinstance(i, Output)]


def failures(items: list) -> dict[str, SourceFailure]:
    """Failures by the file name (and :line) they name."""
    return {Path(f.where).name: f for f in items if isinstance(f, SourceFailure)}


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def run(recipe: Recipe, out: Path) -> dict[str, Any]:
    return asyncio.run(run_recipe(recipe, out, RunOptions())).to_json()


def assert_json_writable(items: list) -> None:
    """What the executor writes (orjson, as data.jsonl / failed.jsonl do) never raises."""
    for item in items:
        orjson.dumps(item.columns if isinstance(item, Output) else
                     [item.where, item.error_class, item.message])
        if isinstance(item, Output):
            orjson.dumps(item.meta)


# --- item 1: deep nesting ----------------------------------------------------------------------


def nested(levels: int) -> str:
    """A JSON object whose "meta" field holds ``levels - 1`` nested arrays."""
    return '{"text": "deep row", "meta": ' + "[" * (levels - 1) + "]" * (levels - 1) + "}"


def deep_jsonl(folder: Path) -> Path:
    path = folder / "rows.jsonl"
    path.write_text("\n".join([
        '{"text": "first good row"}',
        nested(5000),            # RecursionError in the JSON parser
        nested(300),             # parses, but orjson hashes/writes 255 levels at most
        nested(MAX_NESTING),     # the deepest row that is read
        '{"text": "last good row"}',
    ]) + "\n")
    return path


@pytest.mark.parametrize("kind", ["rows", "jsonl", "documents"])
def test_a_line_nested_thousands_deep_is_one_failure_naming_file_and_line(
        tmp_path: Path, kind: str) -> None:
    path = deep_jsonl(tmp_path)
    items = read(SOURCES[kind](name="s", path=str(tmp_path)), tmp_path)
    assert [o.columns["text"] for o in outputs(items)] == [
        "first good row", "deep row", "last good row"]
    bad = failures(items)
    assert set(bad) == {"rows.jsonl:2", "rows.jsonl:3"}
    for f in bad.values():
        assert f.where.startswith(str(path)) and f.error_class == "NestedTooDeep"
        assert f"more than {MAX_NESTING} levels" in f.message
    assert_json_writable(items)


def test_deep_lines_in_a_run_are_counted_failures_and_the_run_goes_on(tmp_path: Path) -> None:
    """Through synthloom.api: both deep lines in failed.jsonl, the other rows in data.jsonl."""
    path = deep_jsonl(tmp_path)
    out = tmp_path / "out"
    summary = run(Recipe(name="deep", sources=[TabularRows(name="seeds", path=str(path))]), out)
    assert [r["text"] for r in lines(out / "data.jsonl")] == [
        "first good row", "deep row", "last good row"]
    failed = lines(out / "failed.jsonl")
    assert [f["where"] for f in failed] == [f"{path}:2", f"{path}:3"]
    assert {f["error_class"] for f in failed} == {"NestedTooDeep"}
    assert summary["steps"][0] == {**summary["steps"][0], "in": 5, "out": 3, "failed": 2}


# --- item 2: file names that are not UTF-8 ------------------------------------------------------


def write_bytes_name(folder: Path, name: bytes, data: bytes) -> Path:
    """Create ``folder/name`` through a bytes path, as a Latin-1 system would."""
    raw = os.path.join(os.fsencode(folder), name)
    with open(raw, "wb") as handle:
        handle.write(data)
    return Path(os.fsdecode(raw))


def latin1_corpus(folder: Path) -> Path:
    folder.mkdir()
    write_bytes_name(folder, b"caf\xe9.txt", b"Caf\xc3\xa9 menu\n\nCoffee and cake.\n")
    write_bytes_name(folder, b"bad\xff.txt", b"\x00\x01\x02 not text \xff\xfe\x00" * 50)
    write_bytes_name(folder, b"r\xe9sum\xe9.jsonl", b'{"text": "row one"}\n{broken\n')
    (folder / "plain.txt").write_text("Plain name.\n")
    return folder


def test_non_utf8_file_names_are_read_and_named_escaped(tmp_path: Path) -> None:
    corpus = latin1_corpus(tmp_path / "corpus")
    items = read(Documents(name="d", path=str(corpus)), tmp_path)
    docs = {o.columns["path"]: o for o in outputs(items)}
    assert set(docs) == {"caf\\xe9.txt", "plain.txt", "r\\xe9sum\\xe9.jsonl"}
    assert docs["caf\\xe9.txt"].columns["text"] == "Café menu\n\nCoffee and cake."
    assert docs["caf\\xe9.txt"].meta["path"] == f"{corpus}/caf\\xe9.txt"
    bad = failures(items)
    assert bad["bad\\xff.txt"].error_class == "BinaryContent"
    assert bad["r\\xe9sum\\xe9.jsonl:2"].error_class == "CorruptDocument"
    assert_json_writable(items)

    text_items = read(TextFiles(name="t", path=str(corpus)), tmp_path)
    assert {o.columns["path"] for o in outputs(text_items)} == {"caf\\xe9.txt", "plain.txt"}
    assert failures(text_items)["bad\\xff.txt"].error_class == "UnicodeDecodeError"
    assert_json_writable(text_items)

    rows = read(TabularRows(name="r", path=str(corpus)), tmp_path)
    assert [o.meta["where"] for o in outputs(rows)] == [f"{corpus}/r\\xe9sum\\xe9.jsonl:1"]
    assert list(failures(rows)) == ["r\\xe9sum\\xe9.jsonl:2"]
    assert_json_writable(rows)


@pytest.mark.parametrize("kind", ["documents", "text_files"])
def test_a_run_over_non_utf8_names_writes_records_and_failures(tmp_path: Path,
                                                               kind: str) -> None:
    corpus = latin1_corpus(tmp_path / "corpus")
    out = tmp_path / "out"
    summary = run(Recipe(name="names", sources=[SOURCES[kind](name="docs", path=str(corpus))]),
                  out)
    data = lines(out / "data.jsonl")
    assert "caf\\xe9.txt" in {d["path"] for d in data}
    assert any(d["_meta"]["source"]["path"].endswith("/caf\\xe9.txt") for d in data)
    failed = lines(out / "failed.jsonl")
    assert f"{corpus}/bad\\xff.txt" in {f["where"] for f in failed}
    [step] = summary["steps"]
    assert step["failed"] == len(failed) and step["out"] == len(data) > 0
    assert step["in"] == step["out"] + step["failed"] + step["dropped"]


# --- item 9: links, special files, NUL files ------------------------------------------------------


@pytest.fixture
def hostile(tmp_path: Path) -> Path:
    """A corpus with links out of it (a fake key and environment beside it, /proc, /dev),
    links inside it, a dangling link, a link loop, a FIFO, a socket and a NUL-only file."""
    outside = tmp_path / "home"
    (outside / ".ssh").mkdir(parents=True)
    (outside / ".ssh" / "id_rsa").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn\n")
    (outside / "environ.txt").write_text("OPENAI_API_KEY=sk-leaked-secret\n")
    (outside / "shared").mkdir()
    (outside / "shared" / "outside_note.txt").write_text("A note from a shared folder.\n")
    os.symlink(outside / "shared", outside / "shared" / "loop")  # a folder loop

    corpus = tmp_path / "corpus"
    (corpus / "sub").mkdir(parents=True)
    (corpus / "good.txt").write_text("Good document.\n")
    (corpus / "sub" / "real.txt").write_text("Real document inside.\n")
    os.symlink("sub/real.txt", corpus / "alias.txt")          # stays inside: read
    os.symlink(corpus / "sub", corpus / "sub_alias")           # folder inside: walked once
    os.symlink("/proc/self/environ", corpus / "notes.txt")
    os.symlink(outside / "environ.txt", corpus / "env.txt")
    os.symlink(outside / ".ssh" / "id_rsa", corpus / "id.txt")
    os.symlink("/dev/zero", corpus / "zero.txt")
    os.symlink(outside / "shared", corpus / "shared")          # folder out of the corpus
    os.symlink("missing.txt", corpus / "gone.txt")
    os.symlink("loop.txt", corpus / "loop.txt")
    os.mkfifo(corpus / "pipe.txt")
    os.mkfifo(corpus / "pipe.jsonl")
    (corpus / "zeros.txt").write_bytes(b"\x00" * 4096)
    return corpus


def bind_socket(path: Path) -> socket.socket:
    """A UNIX socket at ``path`` (bound from its folder: socket paths are short)."""
    sock = socket.socket(socket.AF_UNIX)
    here = os.getcwd()
    os.chdir(path.parent)
    try:
        sock.bind(path.name)
    finally:
        os.chdir(here)
    return sock


EXPECTED = {  # file -> error class, for a text source over the hostile corpus
    "notes.txt": "ForbiddenPath", "zero.txt": "ForbiddenPath",
    "env.txt": "OutsideFolder", "id.txt": "OutsideFolder", "shared": "OutsideFolder",
    "gone.txt": "DanglingSymlink", "loop.txt": "DanglingSymlink",
    "pipe.txt": "SpecialFile", "sock.txt": "SpecialFile",
    "zeros.txt": "EmptyDocument",
}


@pytest.mark.timeout(60)  # before the fix a FIFO named .jsonl blocked the reader for ever
@pytest.mark.parametrize("kind", ["documents", "text_files"])
def test_links_out_of_the_folder_and_special_files_are_named_failures(
        hostile: Path, kind: str) -> None:
    with bind_socket(hostile / "sock.txt"):
        items = read(SOURCES[kind](name="s", path=str(hostile)), hostile)
    texts = {o.columns["path"]: o.columns["text"] for o in outputs(items)}
    # Links that stay inside the folder are read; the inside folder link is not walked twice.
    assert texts == {"good.txt": "Good document.", "alias.txt": "Real document inside.",
                     "sub/real.txt": "Real document inside."}
    bad = failures(items)
    expected = {**EXPECTED, **({"pipe.jsonl": "SpecialFile"} if kind == "documents" else {})}
    assert {name: f.error_class for name, f in bad.items()} == expected
    assert "/proc/self" in bad["notes.txt"].message or "/proc/" in bad["notes.txt"].message
    assert "outside the folder" in bad["id.txt"].message
    assert "follow_symlinks: true" in bad["id.txt"].message
    assert "missing.txt" in bad["gone.txt"].message and "loop" in bad["loop.txt"].message
    assert "FIFO" in bad["pipe.txt"].message and "socket" in bad["sock.txt"].message
    assert "empty / binary file" in bad["zeros.txt"].message
    assert all(f.where == str(hostile / name) for name, f in bad.items())
    assert "sk-leaked-secret" not in repr(items) and "PRIVATE KEY" not in repr(items)


@pytest.mark.timeout(60)
def test_rows_refuse_a_fifo_a_dangling_link_and_a_link_out(tmp_path: Path) -> None:
    (tmp_path / "secret.jsonl").write_text('{"text": "outside"}\n')
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / "a.jsonl").write_text('{"text": "seed"}\n')
    os.mkfifo(seeds / "b.jsonl")
    os.symlink("nothing.jsonl", seeds / "c.jsonl")
    os.symlink(tmp_path / "secret.jsonl", seeds / "d.jsonl")
    os.symlink("a.jsonl", seeds / "e.jsonl")
    for kind in ("rows", "jsonl"):
        items = read(SOURCES[kind](name="s", path=str(seeds)), tmp_path)
        assert [(o.columns["text"], Path(o.meta["path"]).name) for o in outputs(items)] == [
            ("seed", "a.jsonl"), ("seed", "e.jsonl")]
        assert {k: f.error_class for k, f in failures(items).items()} == {
            "b.jsonl": "SpecialFile", "c.jsonl": "DanglingSymlink", "d.jsonl": "OutsideFolder"}
        followed = read(SOURCES[kind](name="s", path=str(seeds), follow_symlinks=True), tmp_path)
        assert "outside" in [o.columns["text"] for o in outputs(followed)]


def test_follow_symlinks_reads_out_of_the_folder_but_never_proc_dev_or_fifos(
        hostile: Path) -> None:
    items = read(Documents(name="s", path=str(hostile), follow_symlinks=True), hostile)
    texts = {o.columns["path"]: o.columns["text"] for o in outputs(items)}
    assert texts["env.txt"] == "OPENAI_API_KEY=sk-leaked-secret"  # the user asked for it
    assert texts["shared/outside_note.txt"] == "A note from a shared folder."  # walked once
    assert not any(p.startswith("shared/loop") for p in texts)
    assert {k: f.error_class for k, f in failures(items).items()} == {
        "notes.txt": "ForbiddenPath", "zero.txt": "ForbiddenPath",
        "gone.txt": "DanglingSymlink", "loop.txt": "DanglingSymlink",
        "pipe.txt": "SpecialFile", "pipe.jsonl": "SpecialFile", "zeros.txt": "EmptyDocument"}


@pytest.mark.parametrize("kind", ["documents", "text_files", "rows"])
def test_a_path_into_proc_or_a_fifo_given_as_the_source_is_refused(tmp_path: Path,
                                                                    kind: str) -> None:
    [proc] = read(SOURCES[kind](name="s", path="/proc/self/environ"), tmp_path)
    assert isinstance(proc, SourceFailure) and proc.error_class == "ForbiddenPath"
    os.mkfifo(tmp_path / "fifo.jsonl")
    [fifo] = read(SOURCES[kind](name="s", path=str(tmp_path / "fifo.jsonl")), tmp_path)
    assert isinstance(fifo, SourceFailure) and fifo.error_class == "SpecialFile"


def test_nul_only_and_bom_only_files_are_not_documents(tmp_path: Path) -> None:
    (tmp_path / "zeros.md").write_bytes(b"\x00" * 100)
    (tmp_path / "bom.txt").write_bytes(b"\xef\xbb\xbf\n")
    (tmp_path / "nul_inside.txt").write_bytes(b"text\x00with a NUL")
    bad = failures(read(TextFiles(name="t", path=str(tmp_path)), tmp_path))
    assert {k: f.error_class for k, f in bad.items()} == {
        "zeros.md": "EmptyDocument", "bom.txt": "EmptyDocument", "nul_inside.txt": "BinaryContent"}
    assert "empty / binary file" in bad["zeros.md"].message
    [zeros] = read(Documents(name="d", path=str(tmp_path / "zeros.md")), tmp_path)
    assert isinstance(zeros, SourceFailure) and zeros.error_class == "EmptyDocument"
    assert "all 100 bytes are NUL" in zeros.message


@pytest.mark.timeout(60)
def test_cli_run_over_the_hostile_corpus_leaks_nothing_and_counts_every_refusal(
        hostile: Path, tmp_path: Path) -> None:
    """`synthloom run recipe.yaml` (CLI, no LLM step): the key and the environment reach no
    output file, every refused entry is one failed.jsonl line, and the run exits 0."""
    recipe = tmp_path / "read.yaml"
    recipe.write_text(f"name: read\nsources:\n  - {{name: docs, type: text_files, "
                      f"path: '{hostile}'}}\nsinks:\n  - {{type: jsonl, path: data.jsonl}}\n")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["run", str(recipe), "--out", str(out), "--quiet",
                                      "--no-report"])
    assert result.exit_code == 0, result.output
    everything = b"".join(p.read_bytes() for p in out.rglob("*") if p.is_file())
    assert b"sk-leaked-secret" not in everything and b"PRIVATE KEY" not in everything
    assert os.environ.get("PATH", "unset").encode() not in everything  # /proc/self/environ
    assert len(lines(out / "data.jsonl")) == 3
    failed = lines(out / "failed.jsonl")
    assert {Path(f["where"]).name: f["error_class"] for f in failed} == {
        k: v for k, v in EXPECTED.items() if k != "sock.txt"}  # no socket in this corpus
    step = json.loads((out / "summary.json").read_text())["steps"][0]
    assert step == {**step, "in": 3 + len(failed), "out": 3, "failed": len(failed)}

    # The same recipe with follow_symlinks: true reads the link out of the folder.
    recipe.write_text(recipe.read_text().replace("type: text_files,",
                                                 "type: text_files, follow_symlinks: true,"))
    result = CliRunner().invoke(app, ["run", str(recipe), "--out", str(tmp_path / "out2"),
                                      "--quiet", "--no-report"])
    assert result.exit_code == 0, result.output
    assert "sk-leaked-secret" in (tmp_path / "out2" / "data.jsonl").read_text()
