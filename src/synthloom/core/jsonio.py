"""Fast JSON for hot paths (cache rows, JSONL lines): orjson, keys in insertion order; and the
one JSONL reader (``read_jsonl``) with the one error policy for bad lines."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

_log = logging.getLogger(__name__)
_BOM = b"\xef\xbb\xbf"

_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


def dumps(value: Any) -> str:
    return orjson.dumps(value, option=_OPTIONS, default=str).decode("utf-8")


def dumps_line(value: Any) -> bytes:
    return orjson.dumps(value, option=_OPTIONS | orjson.OPT_APPEND_NEWLINE, default=str)


loads = orjson.loads


@dataclass(frozen=True)
class BadLine:
    """A JSONL line that could not be read: where it is and why."""

    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


class BadJsonLine(ValueError):
    """A bad line in a file read with ``strict=True``; ``str()`` names file and line."""

    def __init__(self, bad: BadLine) -> None:
        super().__init__(str(bad))
        self.bad = bad


def read_jsonl(path: str | Path, *, strict: bool = False, bad: list[BadLine] | None = None,
               objects: bool = False) -> Iterator[tuple[int, Any]]:
    """``(line number, value)`` of each non-blank line of a JSONL file (numbers from 1).

    The one error policy: a line that is not JSON (or, with ``objects``, not a JSON object) is
    reported with file and line number and the rest is read — appended to ``bad`` when the
    caller keeps them (to count or show them), else logged as a warning. A torn last line of a
    killed writer must not hide everything before it. ``strict=True`` raises
    ``BadJsonLine`` instead, for files a person wrote (a recipe's labels, topics).
    Bytes that are not UTF-8 are read as U+FFFD (like ``errors="replace"``).
    """
    with Path(path).open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            if number == 1 and raw.startswith(_BOM):
                raw = raw[len(_BOM):]
            try:
                value = _loads_line(raw)
            except orjson.JSONDecodeError as exc:
                problem = BadLine(str(path), number, f"not JSON ({exc})")
            else:
                if not objects or isinstance(value, dict):
                    yield number, value
                    continue
                problem = BadLine(str(path), number,
                                  f"not a JSON object ({type(value).__name__})")
            if strict:
                raise BadJsonLine(problem)
            if bad is not None:
                bad.append(problem)
            else:
                _log.warning("%s", problem)


def _loads_line(raw: bytes) -> Any:
    try:
        return loads(raw)
    except orjson.JSONDecodeError:
        text = raw.decode("utf-8", "replace")
        if text.encode("utf-8") == raw:
            raise  # valid UTF-8: the line itself is not JSON
        return loads(text)
