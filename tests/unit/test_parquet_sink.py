"""Parquet sink: the schema is unified across batches (real pyarrow, read back)."""

from __future__ import annotations

import json

import pytest

pa = pytest.importorskip("pyarrow", reason="the parquet sink needs the parquet extra")
pq = pytest.importorskip("pyarrow.parquet")

from synthloom.core.errors import SynthloomError  # noqa: E402
from synthloom.export.sinks import ParquetSink  # noqa: E402


def _sink(tmp_path):
    sink = ParquetSink(path="data.parquet")
    sink.open(tmp_path)
    return sink


def _meta(i):
    return {"id": str(i)}


def test_columns_nulls_and_promotion_across_batches(tmp_path):
    sink = _sink(tmp_path)
    sink.write([{"a": 1, "n": None, "l": None, "_meta": _meta(0)}])
    sink.write([{"a": 2.5, "n": {"x": 1}, "l": [1, 2], "late": "hi", "_meta": _meta(1)}])
    sink.write([{"a": 3, "_meta": _meta(2)}])
    sink.close()
    table = pq.read_table(tmp_path / "data.parquet")
    assert table.schema.field("a").type == pa.float64()
    rows = table.to_pylist()
    assert [r["a"] for r in rows] == [1.0, 2.5, 3.0]
    assert [r["n"] for r in rows] == [None, {"x": 1}, None]
    assert [r["l"] for r in rows] == [None, [1, 2], None]
    assert [r["late"] for r in rows] == [None, "hi", None]
    assert [json.loads(r["_meta"]) for r in rows] == [_meta(0), _meta(1), _meta(2)]
    assert not (tmp_path / ".data.parquet.parts").exists()


def test_incompatible_types_fail_with_the_file_named(tmp_path):
    sink = _sink(tmp_path)
    sink.write([{"a": 1, "_meta": None}])
    sink.write([{"a": "text", "_meta": None}])
    with pytest.raises(SynthloomError, match="data.parquet"):
        sink.close()
