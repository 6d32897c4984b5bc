"""Fast JSON for hot paths (cache rows, JSONL lines): orjson, keys in insertion order."""

from __future__ import annotations

from typing import Any

import orjson

_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


def dumps(value: Any) -> str:
    return orjson.dumps(value, option=_OPTIONS, default=str).decode("utf-8")


def dumps_line(value: Any) -> bytes:
    return orjson.dumps(value, option=_OPTIONS | orjson.OPT_APPEND_NEWLINE, default=str)


loads = orjson.loads
