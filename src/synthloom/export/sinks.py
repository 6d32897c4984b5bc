"""Sinks: where final records are written in the run directory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO, Any

from synthloom.core import jsonio
from synthloom.core.errors import SynthloomError
from synthloom.core.registry import register_sink
from synthloom.core.steps import Sink


@register_sink
class JsonlSink(Sink):
    """One JSON object per line, ``_meta`` included."""

    type_name = "jsonl"

    def open(self, run_dir: Path) -> None:
        path = Path(run_dir) / self.config.path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._handle: IO[bytes] = path.open("wb")

    def write(self, records: list[dict[str, Any]]) -> None:
        self._handle.writelines(jsonio.dumps_line(r) for r in records)
        self._handle.flush()

    def close(self) -> None:
        self._handle.close()


@register_sink
class ParquetSink(Sink):
    """Parquet via pyarrow (extra ``synthloom[parquet]``); ``_meta`` stored as a JSON string."""

    type_name = "parquet"

    def open(self, run_dir: Path) -> None:
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise SynthloomError(
                'the parquet sink needs pyarrow: pip install "synthloom[parquet]"') from None
        self._path = Path(run_dir) / self.config.path
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._writer: Any = None
        self._schema: Any = None

    def write(self, records: list[dict[str, Any]]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not records:
            return
        rows = [{**r, "_meta": json.dumps(r.get("_meta"), ensure_ascii=False)} for r in records]
        if self._writer is None:
            table = pa.Table.from_pylist(rows)
            self._schema = table.schema
            self._writer = pq.ParquetWriter(self._path, self._schema)
        else:
            table = pa.Table.from_pylist(rows, schema=self._schema)
        self._writer.write_table(table)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
