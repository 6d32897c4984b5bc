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
