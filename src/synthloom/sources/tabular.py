"""Tabular readers (JSONL, CSV, Parquet, HF datasets saved with ``save_to_disk``), streamed.

Each yields ``(where, row)`` one row at a time, or ``(where, DocumentError)`` for a row that
cannot be read (a broken JSONL line): memory stays flat whatever the file size.
"""

from __future__ import annotations

import csv
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from synthloom.core.errors import SynthloomError
from synthloom.sources.decode import SNIFF_BYTES, decode_text
from synthloom.sources.document import (
    CorruptDocument,
    DocumentError,
    MissingColumn,
    NestedTooDeep,
)
from synthloom.sources.fsguard import shown

Row = tuple[str, dict[str, Any] | DocumentError]
HF_MARKERS = ("dataset_info.json", "state.json")
HF_DICT_MARKER = "dataset_dict.json"
PARQUET_BATCH = 1024
#: Deepest JSON row read (the row object is level 1). Records are hashed and written by orjson,
#: which stops at 255 levels, and Python's JSON parser at ~1000: a row nested deeper than this
#: is one failure naming file:line, not a crash of the run. Real rows nest a few levels.
MAX_NESTING = 100
#: A JSON escape of a UTF-16 surrogate (``\ud800``-``\udfff``): a pair decodes to one character,
#: a lone one to a string no UTF-8 writer accepts (orjson refuses it when data.jsonl is written).
SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def is_hf_dataset_dir(path: Path) -> bool:
    """A folder written by ``Dataset.save_to_disk`` or ``DatasetDict.save_to_disk``."""
    if not path.is_dir():
        return False
    return (path / HF_DICT_MARKER).is_file() or all((path / m).is_file() for m in HF_MARKERS)


def _stream_encoding(path: Path) -> str:
    """Pick the encoding from the head of the file (raises BinaryContent / DecodeFailed)."""
    with path.open("rb") as handle:
        head = handle.read(SNIFF_BYTES)
    # Cut at the last newline so a multi-byte character split by the sample does not count.
    cut = head.rfind(b"\n")
    _, encoding = decode_text(head[: cut + 1] if cut > 0 else head)
    return encoding


def nested_deeper(value: Any, limit: int) -> bool:
    """Whether ``value`` has containers more than ``limit`` levels deep (no recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        for child in item.values() if isinstance(item, dict) else item:
            if isinstance(child, dict | list):
                stack.append((child, depth + 1))
    return False


def lone_surrogate(value: Any) -> str | None:
    """The first string (key or value) in ``value`` holding a lone surrogate, else None."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return item
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return None


def _too_deep() -> NestedTooDeep:
    return NestedTooDeep(f"JSON nested more than {MAX_NESTING} levels deep: not read")


def _json_array(path: Path, encoding: str) -> bool:
    """Whether a ``.json`` file is one JSON array (``[{...}, ...]``) rather than JSON lines."""
    if path.suffix.lower() != ".json":
        return False
    with path.open(encoding=encoding, errors="replace") as handle:
        head = handle.read(SNIFF_BYTES).lstrip("\ufeff \t\r\n")
    return head.startswith("[")


def iter_json_array(path: Path, encoding: str) -> Iterator[Row]:
    """The objects of a file holding one JSON array (the Loong seed sets' shape), each named
    ``file#row=N``; read whole (such files are small), checked as JSONL rows are."""
    name = shown(path)
    try:
        rows = json.loads(path.read_text(encoding=encoding, errors="replace"))
    except json.JSONDecodeError as exc:
        yield name, CorruptDocument(f"not JSON ({exc})")
        return
    except RecursionError:
        yield name, _too_deep()
        return
    for number, row in enumerate(rows if isinstance(rows, list) else [rows], start=1):
        where = f"{name}#row={number}"
        if isinstance(row, dict | list) and nested_deeper(row, MAX_NESTING):
            yield where, _too_deep()
        elif lone_surrogate(row) is not None:
            yield where, CorruptDocument("string with a lone UTF-16 surrogate escape: not read")
        elif isinstance(row, str):
            yield where, {"text": row}
        elif not isinstance(row, dict):
            yield where, CorruptDocument(f"expected an object, got {type(row).__name__}")
        else:
            yield where, row


def iter_jsonl(path: Path) -> Iterator[Row]:
    encoding = _stream_encoding(path)
    if _json_array(path, encoding):
        yield from iter_json_array(path, encoding)
        return
    name = shown(path)
    with path.open(encoding=encoding, errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{name}:{number}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                yield where, CorruptDocument(f"line is not JSON ({exc})")
                continue
            except RecursionError:  # thousands of levels: the parser's own limit
                yield where, _too_deep()
                continue
            # Fewer brackets than the limit cannot nest deeper: most rows skip the walk.
            if (line.count("{") + line.count("[") > MAX_NESTING
                    and isinstance(row, dict | list) and nested_deeper(row, MAX_NESTING)):
                yield where, _too_deep()
                continue
            # Only a line with a surrogate escape can hold one: most rows skip the walk.
            if SURROGATE_ESCAPE.search(line):
                bad = lone_surrogate(row)
                if bad is not None:
                    # Named here, not escaped away: the row's text is not what its writer meant.
                    shown_text = bad.encode("utf-8", "backslashreplace").decode()[:60]
                    yield where, CorruptDocument(
                        f"string with a lone UTF-16 surrogate escape ({shown_text!r}): not "
                        "valid Unicode, not read")
                    continue
            if isinstance(row, str):
                row = {"text": row}
            if not isinstance(row, dict):
                yield where, CorruptDocument(f"expected an object, got {type(row).__name__}")
                continue
            yield where, row


def iter_csv(path: Path) -> Iterator[Row]:
    encoding = _stream_encoding(path)
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # documents can be long cells
    with path.open(encoding=encoding, errors="replace", newline="") as handle:
        sample = handle.read(8192)
        handle.seek(0)
        try:
            dialect: Any = csv.Sniffer().sniff(sample, delimiters=",;\t|")
        except csv.Error:
            dialect = csv.excel
        reader = csv.DictReader(handle, dialect=dialect)
        name = shown(path)
        try:
            for row in reader:
                yield f"{name}:{reader.line_num}", dict(row)
        except csv.Error as exc:
            yield f"{name}:{reader.line_num}", CorruptDocument(f"CSV cannot be parsed: {exc}")


def iter_parquet(path: Path, columns: list[str]) -> Iterator[Row]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise SynthloomError("reading Parquet needs pyarrow; pip install 'synthloom[parquet]'")\
            from None
    try:
        handle = pq.ParquetFile(path)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises ArrowInvalid/OSError on damage
        yield shown(path), CorruptDocument(f"Parquet cannot be opened ({exc})")
        return
    # No columns named: read them all.
    present = [c for c in columns if c in handle.schema_arrow.names] if columns else None
    missing = sorted(set(columns) - set(present or []))
    if missing:
        yield shown(path), MissingColumn(
            f"no column(s) {missing}; columns are {handle.schema_arrow.names}")
        return
    index = 0
    name = shown(path)
    for batch in handle.iter_batches(batch_size=PARQUET_BATCH, columns=present):
        for row in batch.to_pylist():
            yield f"{name}#row={index}", row
            index += 1


def iter_hf_dataset(path: Path) -> Iterator[Row]:
    try:
        import datasets
    except ImportError:
        raise SynthloomError(
            f"{path} is a Hugging Face dataset folder; reading it needs the datasets library: "
            "pip install 'synthloom[hf]'") from None
    try:
        loaded = datasets.load_from_disk(str(path))
    except Exception as exc:  # noqa: BLE001 - damaged arrow files, wrong versions
        yield shown(path), CorruptDocument(f"dataset cannot be loaded ({exc})")
        return
    splits = loaded.items() if isinstance(loaded, datasets.DatasetDict) else [("", loaded)]
    for split, dataset in splits:
        label = f"{shown(path)}[{split}]" if split else shown(path)
        # Iterating a memory-mapped Arrow dataset reads row by row, not the whole table.
        for index, row in enumerate(dataset):
            yield f"{label}#row={index}", row


def iter_rows(path: Path, fmt: str, columns: list[str]) -> Iterator[Row]:
    if fmt == "jsonl":
        return iter_jsonl(path)
    if fmt == "csv":
        return iter_csv(path)
    if fmt == "parquet":
        return iter_parquet(path, columns)
    if fmt == "hf":
        return iter_hf_dataset(path)
    raise ValueError(f"not a tabular format: {fmt}")

