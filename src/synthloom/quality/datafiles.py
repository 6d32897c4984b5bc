"""Rows from user files that quality steps compare against (earlier runs, evaluation sets):
JSONL, JSON (a list, or ``{"data": [...]}``), Parquet, CSV, a folder of those, or a Hugging
Face dataset saved with ``save_to_disk``. Content hashes feed step fingerprints."""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from synthloom.core.errors import RecipeError, SynthloomError
from synthloom.core.jsonio import read_jsonl
from synthloom.core.recipe import resolve_data_path

SUFFIXES = (".jsonl", ".json", ".parquet", ".csv")


def resolve(path: str, base: Path | None) -> Path:
    found = resolve_data_path(path, base)
    if not found.exists():
        raise RecipeError(f"file not found: {found}")
    return found


def _is_hf_dataset(path: Path) -> bool:
    return path.is_dir() and any((path / name).is_file() for name in
                                 ("dataset_info.json", "dataset_dict.json", "state.json"))


def read_rows(path: Path, split: str | None = None) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(where, row)`` pairs; ``where`` is ``file:line`` / ``file#row`` for messages."""
    if _is_hf_dataset(path):
        yield from _read_hf(path, split)
    elif path.is_dir():
        for file in sorted(p for p in path.rglob("*") if p.suffix.lower() in SUFFIXES):
            yield from read_rows(file)
    elif path.suffix.lower() == ".jsonl":
        for number, row in read_jsonl(path):
            yield f"{path.name}:{number}", row if isinstance(row, dict) else {"text": row}
    elif path.suffix.lower() == ".json":
        data = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(data, dict):
            data = data.get("data", data.get("rows", []))
        for number, row in enumerate(data):
            yield f"{path.name}#{number}", row if isinstance(row, dict) else {"text": row}
    elif path.suffix.lower() == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise SynthloomError('reading Parquet needs pyarrow: pip install "synthloom[parquet]"'
                                 ) from None
        for number, row in enumerate(pq.read_table(path).to_pylist()):
            yield f"{path.name}#{number}", row
    elif path.suffix.lower() == ".csv":
        with path.open(encoding="utf-8", newline="") as handle:
            for number, row in enumerate(csv.DictReader(handle), start=2):
                yield f"{path.name}:{number}", dict(row)
    else:
        raise RecipeError(f"{path}: unsupported file type (use {', '.join(SUFFIXES)}, a folder, "
                          "or a Hugging Face dataset folder)")


def _read_hf(path: Path, split: str | None) -> Iterator[tuple[str, dict[str, Any]]]:
    try:
        from datasets import DatasetDict, load_from_disk
    except ImportError:
        raise SynthloomError(f"{path} is a Hugging Face dataset folder; reading it needs "
                             "`pip install datasets`") from None
    data = load_from_disk(str(path))
    if isinstance(data, DatasetDict):
        splits = [split] if split else list(data)
        for name in splits:
            for number, row in enumerate(data[name]):
                yield f"{path.name}[{name}]#{number}", dict(row)
    else:
        for number, row in enumerate(data):
            yield f"{path.name}#{number}", dict(row)


def content_hash(path: Path) -> str:
    """blake2b of the file's bytes (every file, in order, for a folder)."""
    digest = hashlib.blake2b(digest_size=16)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        digest.update(str(file.relative_to(path) if path.is_dir() else file.name).encode())
        with file.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()
