"""Sinks: where final records are written in the run directory.

A sink's ``path`` is relative to the run folder and must stay inside it: an absolute path or
one with ``..`` is refused when the recipe loads, and the resolved target (symlinks followed)
is checked again when the sink opens, so a recipe cannot write over files elsewhere.

A file sink writes ``NAME.partial`` and ``publish()`` (called by the executor once the run ends
complete) renames it over ``NAME`` in one atomic step: a run interrupted or failing midway
leaves the previous run's ``NAME`` whole, and its own rows in ``NAME.partial``.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import IO, Any

from pydantic import field_validator

from synthloom.core import jsonio
from synthloom.core.errors import SynthloomError
from synthloom.core.registry import register_sink
from synthloom.core.steps import Sink, SinkConfig


def _outside_reason(path: str) -> str:
    """Why ``path`` (as written in a recipe) would leave the run folder; '' when it stays."""
    pure = Path(path)
    if not path.strip() or pure == Path("."):
        return "it is empty"
    if pure.is_absolute():
        return "it is absolute"
    if ".." in pure.parts:
        return "it contains '..'"
    return ""


class FileSinkConfig(SinkConfig):
    @field_validator("path")
    @classmethod
    def _inside_run_folder(cls, value: str) -> str:
        why = _outside_reason(value)
        if why:
            raise ValueError(f"sink path {value!r} must be a file inside the run folder, "
                             f"relative to it ({why})")
        return value


def sink_target(run_dir: Path, sink: Sink) -> Path:
    """Where ``sink`` writes in ``run_dir``; refuses a path that leaves it (also via a
    symlink inside the run folder)."""
    path = str(sink.config.path)
    where = f"{sink.type_name} sink path {path!r}"
    why = _outside_reason(path)
    if why:
        raise SynthloomError(f"{where}: must be a file inside the run folder ({why})")
    root = Path(run_dir).resolve()
    target = (root / path).resolve()
    if not target.is_relative_to(root) or target == root:
        raise SynthloomError(f"{where}: resolves to {target}, outside the run folder {root}")
    return target


class _PublishedFile:
    """Written at ``partial`` while the run goes on, renamed over ``target`` by ``publish``:
    by ``close`` itself, unless ``defer`` was called (the executor does, and publishes all of a
    run's outputs together once the run ends complete)."""

    target: Path
    partial: Path
    _deferred = False

    def defer(self) -> None:
        """``close`` leaves the file at ``partial``; the caller calls ``publish``."""
        self._deferred = True

    def _closed(self) -> None:
        if not self._deferred:
            self.publish()

    def _place(self, run_dir: Path) -> None:
        self.target = sink_target(run_dir, self)  # type: ignore[arg-type]
        self.target.parent.mkdir(parents=True, exist_ok=True)
        self.partial = self.target.with_name(self.target.name + ".partial")

    def publish(self) -> None:
        """Replace the previous run's file with this run's (an atomic rename)."""
        os.replace(self.partial, self.target)


@register_sink
class JsonlSink(_PublishedFile, Sink):
    """One JSON object per line, ``_meta`` included."""

    type_name = "jsonl"
    Config = FileSinkConfig

    def open(self, run_dir: Path) -> None:
        self._place(run_dir)
        self._handle: IO[bytes] = self.partial.open("wb")

    def write(self, records: list[dict[str, Any]]) -> None:
        self._handle.writelines(jsonio.dumps_line(r) for r in records)
        self._handle.flush()

    def close(self) -> None:
        self._handle.close()
        self._closed()

    def abort(self) -> None:
        """The run ends incomplete: what was written stays as NAME.partial."""
        self._handle.close()


@register_sink
class ParquetSink(_PublishedFile, Sink):
    """Parquet via pyarrow (extra ``synthloom[parquet]``); ``_meta`` stored as a JSON string."""

    type_name = "parquet"
    Config = FileSinkConfig

    def open(self, run_dir: Path) -> None:
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise SynthloomError(
                'the parquet sink needs pyarrow: pip install "synthloom[parquet]"') from None
        self._place(run_dir)
        self._path = self.target
        # Why spool: a column may first appear (or first be non-null) in a later batch, so the
        # schema is only known at the end. Each batch goes to its own part file; close() unifies
        # the schemas and rewrites the parts one at a time, so memory stays at one batch.
        self._spool = self._path.parent / f".{self._path.name}.parts"
        shutil.rmtree(self._spool, ignore_errors=True)
        self._spool.mkdir()
        self._parts: list[Path] = []

    def write(self, records: list[dict[str, Any]]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not records:
            return
        rows = [{**r, "_meta": json.dumps(r.get("_meta"), ensure_ascii=False)} for r in records]
        part = self._spool / f"{len(self._parts):06d}.parquet"
        pq.write_table(pa.Table.from_pylist(rows), part)
        self._parts.append(part)

    def close(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            if not self._parts:
                # No records: an empty file, so no earlier run's file is left standing.
                pq.write_table(pa.table({}), self.partial)
            else:
                schemas = [pq.read_schema(p) for p in self._parts]
                try:
                    schema = pa.unify_schemas(schemas, promote_options="permissive")
                except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
                    raise SynthloomError(f"parquet sink {self._path}: columns with incompatible "
                                         f"types across batches: {exc}") from None
                with pq.ParquetWriter(self.partial, schema) as writer:
                    for part in self._parts:
                        writer.write_table(_conform(pq.read_table(part), schema))
        finally:
            shutil.rmtree(self._spool, ignore_errors=True)
        self._closed()

    def abort(self) -> None:
        """The run ends incomplete: drop the spooled parts (no partial parquet is built)."""
        shutil.rmtree(self._spool, ignore_errors=True)


def _conform(table: Any, schema: Any) -> Any:
    """Give ``table`` every column of ``schema`` (missing ones as nulls), in order and type."""
    import pyarrow as pa

    columns = []
    for f in schema:
        if f.name in table.column_names:
            columns.append(table.column(f.name).cast(f.type))
        else:
            columns.append(pa.nulls(table.num_rows, type=f.type))
    return pa.Table.from_arrays(columns, schema=schema)
