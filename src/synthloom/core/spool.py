"""Records kept on disk instead of in memory: JSONL written once, read by position.

An executor spools what it would otherwise hold whole: the Ray driver a source before Ray
reads it, a global step's input and a ``context:`` node; the local executor a global step's
input (the barrier) and the batches a node receives while it waits for its context. Memory is
8 bytes per record (its offset) instead of the record. :class:`SpooledRecords` is a read-only
sequence, so a global step's ``process_all`` takes it where it takes a list.

A spool made without a path is an anonymous temporary file in the given folder: the system
removes it when it is closed, or when the process dies (a kill -9 leaves nothing behind).
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any, overload

import numpy as np

from synthloom.core import jsonio

#: Offsets are moved from a Python list (32 bytes each) to an int64 array past this many.
_CHUNK = 65_536
#: Records parsed per read when a spool is iterated.
READ_BATCH = 1_024


class _Int64s:
    """An append-only column of int64 in chunks (a Python int list costs 4x the array)."""

    def __init__(self) -> None:
        self._chunks: list[np.ndarray] = []
        self._tail: list[int] = []

    def append(self, value: int) -> None:
        self._tail.append(value)
        if len(self._tail) >= _CHUNK:
            self._chunks.append(np.array(self._tail, dtype=np.int64))
            self._tail = []

    def __len__(self) -> int:
        return sum(len(c) for c in self._chunks) + len(self._tail)

    def array(self) -> np.ndarray:
        return np.concatenate([*self._chunks, np.array(self._tail, dtype=np.int64)])


class SpoolWriter:
    """Appends records (one JSON line each) to ``path``; ``close`` gives the sequence.

    ``path=None``: an anonymous temporary file in ``folder``. ``keep_batches``: remember
    where each ``write`` call's records end, so ``batches()`` gives them back as written."""

    def __init__(self, path: Path | None = None, *, folder: Path | None = None,
                 keep_batches: bool = False) -> None:
        self.path = path
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file: IO[bytes] = open(path, "wb")  # noqa: SIM115 - closed by close()
        else:
            self._file = tempfile.TemporaryFile(dir=folder, prefix=".spool-")  # noqa: SIM115
        self._offsets = _Int64s()
        self._ends = _Int64s() if keep_batches else None
        self._at = 0
        self.records = 0

    def write(self, records: Iterable[dict[str, Any]]) -> None:
        lines = []
        for record in records:
            line = jsonio.dumps_line(record)
            self._offsets.append(self._at)
            self._at += len(line)
            lines.append(line)
        self._file.write(b"".join(lines))
        self.records += len(lines)
        if self._ends is not None and lines:
            self._ends.append(self.records)

    def close(self) -> SpooledRecords:
        """The records written, as a sequence (an anonymous file stays open: it is the data)."""
        ends = self._ends.array() if self._ends is not None else None
        if self.path is not None:
            self._file.close()
            return SpooledRecords(self.path, self._offsets.array(), self._at, ends=ends)
        self._file.flush()
        return SpooledRecords(None, self._offsets.array(), self._at, ends=ends,
                              handle=self._file)

    def discard(self) -> None:
        """Close without reading back (an anonymous file is removed)."""
        self._file.close()


class SpooledRecords(Sequence[dict[str, Any]]):
    """A read-only sequence of the records in a spool file (parsed on access).

    Reads are a seek and a read under a lock, so threads may share it (a global step's
    ``process_all`` reads it from worker threads while its iterators are open)."""

    def __init__(self, path: Path | None, offsets: np.ndarray, size: int, *,
                 ends: np.ndarray | None = None, handle: IO[bytes] | None = None) -> None:
        self.path = path
        self._offsets = offsets
        self._size = size
        self._ends = ends
        self._file = handle
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._offsets)

    @overload
    def __getitem__(self, index: int) -> dict[str, Any]: ...

    @overload
    def __getitem__(self, index: slice) -> list[dict[str, Any]]: ...

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step == 1:
                return self._range(start, stop)
            return [self[i] for i in range(start, stop, step)]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        return jsonio.loads(self._read(int(self._offsets[index]), self._end(index + 1)))

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for batch in self.batches(READ_BATCH):
            yield from batch

    def batches(self, size: int | None = None) -> Iterator[list[dict[str, Any]]]:
        """The records in order, a list of ``size`` at a time (one read each); without a
        size, as they were written (``keep_batches``) or ``READ_BATCH`` at a time."""
        if size is None and self._ends is not None:
            bounds = [0, *self._ends.tolist()]
        else:
            bounds = [*range(0, len(self), size or READ_BATCH), len(self)]
        for start, stop in zip(bounds, bounds[1:], strict=False):
            if stop > start:
                yield self._range(start, stop)

    def _range(self, start: int, stop: int) -> list[dict[str, Any]]:
        if stop <= start:
            return []
        base = int(self._offsets[start])
        data = self._read(base, self._end(stop))
        cuts = [int(o) - base for o in self._offsets[start:stop]] + [len(data)]
        return [jsonio.loads(data[a:b]) for a, b in zip(cuts, cuts[1:], strict=False)]

    def _end(self, index: int) -> int:
        """Where record ``index - 1`` ends (the offset of ``index``, or the file's end)."""
        return int(self._offsets[index]) if index < len(self) else self._size

    def _read(self, start: int, stop: int) -> bytes:
        with self._lock:
            if self._file is None or self._file.closed:
                if self.path is None:
                    raise ValueError("the spool was closed")
                self._file = open(self.path, "rb")  # noqa: SIM115 - closed by close()
            self._file.seek(start)
            return self._file.read(stop - start)

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()

    def __getstate__(self) -> dict[str, Any]:
        # Pickled (Ray): the path travels, not the open file nor the lock.
        if self.path is None:
            raise TypeError("an anonymous spool cannot leave its process")
        return {**{k: v for k, v in self.__dict__.items() if k not in ("_file", "_lock")},
                "_file": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()


def spool(path: Path, records: Iterable[dict[str, Any]]) -> SpooledRecords:
    writer = SpoolWriter(path)
    writer.write(records)
    return writer.close()
