"""The `rows` source (alias `jsonl`): files and folders of JSONL / CSV / Parquet, bad rows
become failures naming file and line, plain JSON strings become `text`."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from synthloom.core.executor import LocalExecutor
from synthloom.core.recipe import Recipe
from synthloom.sources.files import TabularRows


def test_a_folder_of_mixed_tabular_files(tmp_path: Path) -> None:
    seeds = tmp_path / "seeds"
    (seeds / "more").mkdir(parents=True)
    (seeds / "a.jsonl").write_text('"plain string seed"\n{"instruction": "object seed"}\n'
                                   "{broken\n")
    (seeds / "b.csv").write_text("instruction,label\ncsv seed,1\n")
    pq.write_table(pa.table({"instruction": ["parquet seed"], "n": [3]}),
                   seeds / "more" / "c.parquet")
    (seeds / "notes.bin").write_bytes(b"\x00\x01 ignored: not a tabular suffix")
    recipe = Recipe(name="rows", sources=[TabularRows(name="seeds", path=str(seeds))])
    summary = asyncio.run(LocalExecutor(recipe, tmp_path / "out").run()).to_json()
    rows = [json.loads(x) for x in (tmp_path / "out" / "data.jsonl").read_text().splitlines()]
    texts = [r.get("instruction") or r.get("text") for r in rows]
    assert texts == ["plain string seed", "object seed", "csv seed", "parquet seed"]
    assert rows[3]["n"] == 3 and rows[2]["_meta"]["source"]["where"].endswith("b.csv:2")
    failed = [json.loads(x) for x in (tmp_path / "out" / "failed.jsonl").read_text().splitlines()]
    assert len(failed) == 1 and "a.jsonl:3" in failed[0]["message"]
    assert summary["steps"][0] == {**summary["steps"][0], "in": 5, "out": 4, "failed": 1}


def test_columns_and_rename(tmp_path: Path) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text('{"q": "x", "a": "y", "z": 1}\n{"q": "only q"}\n')
    recipe = Recipe(name="rows", sources=[TabularRows(name="s", path=str(data),
                                                      columns=["q", "a"], rename={"q": "question"})])
    asyncio.run(LocalExecutor(recipe, tmp_path / "out").run())
    rows = [json.loads(x) for x in (tmp_path / "out" / "data.jsonl").read_text().splitlines()]
    assert [{k: v for k, v in r.items() if k != "_meta"} for r in rows] == [
        {"question": "x", "a": "y"}]
    failed = (tmp_path / "out" / "failed.jsonl").read_text()
    assert "missing field(s) ['a']" in failed and "d.jsonl:2" in failed


#: A lone surrogate escape, a valid escaped pair (one emoji), and a literal backslash-u text.
SURROGATE_LINES = ('{"text": "good row one"}\n'
                   '{"text": "bad \\ud800 row"}\n'
                   '{"text": "pair \\ud83d\\ude00 is one character"}\n'
                   '{"text": "a path C:\\\\ud800 is plain text"}\n')


def test_a_lone_surrogate_is_a_failure_naming_the_line(tmp_path: Path) -> None:
    """orjson refuses lone surrogates when data.jsonl is written: such a row used to kill the
    run. Now it is one failure naming file:line and the cause; the rest of the file is read."""
    data = tmp_path / "s.jsonl"
    data.write_text(SURROGATE_LINES)
    recipe = Recipe(name="rows", sources=[TabularRows(name="seeds", path=str(data))])
    summary = asyncio.run(LocalExecutor(recipe, tmp_path / "out").run()).to_json()
    rows = [json.loads(x) for x in (tmp_path / "out" / "data.jsonl").read_text().splitlines()]
    assert [r["text"] for r in rows] == ["good row one", "pair \U0001f600 is one character",
                                         "a path C:\\ud800 is plain text"]
    failed = [json.loads(x) for x in (tmp_path / "out" / "failed.jsonl").read_text().splitlines()]
    assert len(failed) == 1 and failed[0]["error_class"] == "CorruptDocument"
    assert "s.jsonl:2" in failed[0]["message"] and "lone UTF-16 surrogate" in failed[0]["message"]
    assert summary["steps"][0] == {**summary["steps"][0], "in": 4, "out": 3, "failed": 1}


def test_a_lone_surrogate_in_a_documents_folder(tmp_path: Path) -> None:
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "rows.jsonl").write_text(SURROGATE_LINES)
    recipe = Recipe.from_dict({"name": "docs", "sources": [
        {"name": "corpus", "type": "documents", "path": str(folder)}],
        "sinks": [{"type": "jsonl", "path": "data.jsonl"}]})
    summary = asyncio.run(LocalExecutor(recipe, tmp_path / "out").run()).to_json()
    assert summary["steps"][0]["out"] == 3 and summary["steps"][0]["failed"] == 1
    failed = (tmp_path / "out" / "failed.jsonl").read_text()
    assert "rows.jsonl:2" in failed and "lone UTF-16 surrogate" in failed
