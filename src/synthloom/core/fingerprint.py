"""Stable content hashes: the basis of record ids and cache keys."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace, so equal content gives equal text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def stable_hash(*parts: Any, length: int = 32) -> str:
    """Hex digest of the canonical JSON of ``parts`` (blake2b, ``length`` hex chars)."""
    digest = hashlib.blake2b(canonical_json(parts).encode("utf-8"), digest_size=length // 2)
    return digest.hexdigest()


def text_hash(text: str, length: int = 16) -> str:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=length // 2).hexdigest()
