"""Stable content hashes: the basis of record ids and cache keys."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


def canonical_json_bytes(value: Any) -> bytes:
    """UTF-8 JSON with sorted keys and no whitespace, so equal content gives equal bytes."""
    return orjson.dumps(value, option=_OPTIONS, default=str)


def canonical_json(value: Any) -> str:
    return canonical_json_bytes(value).decode("utf-8")


def stable_hash(*parts: Any, length: int = 32) -> str:
    """Hex digest of the canonical JSON of ``parts`` (blake2b, ``length`` hex chars)."""
    return hashlib.blake2b(canonical_json_bytes(parts), digest_size=length // 2).hexdigest()


def text_hash(text: str, length: int = 16) -> str:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=length // 2).hexdigest()
