"""Records kept on disk instead of in memory: JSONL written once, read by position.

The Ray driver spools what it used to hold whole (a source before Ray reads it, a global
step's input, a ``context:`` node): memory is 8 bytes per record (its offset) instead of the
record. :class:`SpooledRecords` is a read-only sequence, so a global step's ``process_all``
takes it where it takes a list.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any, overload

import numpy as np

from synthloom.core import jsonio


class SpoolWriter:
    """Appends records (one JSON line each) to ``path``; ``close`` gives the sequence."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[bytes] = open(path, "wb")  # noqa: SIM115 - closed by close()
        self._offsets: list[int] = []
        self._chunks: list[np.ndarray] = []
        self._at = 0

    def write(self, records: Iterable[dict[str, Any]]) -> None:
        for record in records:
            line = jsonio.dumps_line(record)
            self._offsets.append(self._at)
            self._at += len(line)
            self._file.write(line)
        if len(self._offsets) >= 65_536:  # a Python int list costs 4x the array
            self._chunks.append(np.array(self._offsets, dtype=np.int64))
            self._offsets = []

    def close(self) -> SpooledRecords:
        self._file.close()
        offsets = np.concatenate([*self._chunks, np.array(self._offsets, dtype=np.int64)])
        return SpooledRecords(self.path, offsets, self._at)


class SpooledRecords(Sequence[dict[str, Any]]):
    """A read-only sequence of the records in a spool file (parsed on access)."""

    def __init__(self, path: Path, offsets: np.ndarray, size: int) -> None:
        self.path = path
        self._offsets = offsets
        self._size = size
        self._file: IO[bytes] | None = None

    def __len__(self) -> int:
        return len(self._offsets)

    @overload
    def __getitem__(self, index: int) -> dict[str, Any]: ...

    @overload
    def __getitem__(self, index: slice) -> list[dict[str, Any]]: ...

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        handle = self._handle()
        handle.seek(int(self._offsets[index]))
        return jsonio.loads(handle.readline())

    def __iter__(self) -> Iterator[dict[str, Any]]:
        with open(self.path, "rb") as handle:
            for _ in range(len(self)):
                yield jsonio.loads(handle.readline())

    def _handle(self) -> IO[bytes]:
        if self._file is None or self._file.closed:
            self._file = open(self.path, "rb")  # noqa: SIM115 - closed by close()
        return self._file

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


def spool(path: Path, records: Iterable[dict[str, Any]]) -> SpooledRecords:
    writer = SpoolWriter(path)
    writer.write(records)
    return writer.close()
