"""Records and calls of the document-corpus recipes (multihop-qa, kg-questions, web-mining):
the chunk's provenance as a small mapping, seeded choice, splitting one call's usage over the
records it made, and the string schema their structured calls use."""

from __future__ import annotations

import random
from typing import Any

from synthloom.core.fingerprint import stable_hash
from synthloom.core.records import META

#: Chunk-level provenance fields copied onto each clue / triple / hop.
SOURCE_FIELDS = ("path", "title", "doc_id", "chunk_id", "chunk_index", "char_start", "char_end",
                 "pages")


def chunk_source(record: dict[str, Any]) -> dict[str, Any]:
    """The file and chunk span a record came from (its ``_meta.source``, else its columns)."""
    source = record.get(META, {}).get("source")
    source = source if isinstance(source, dict) else {}
    out = {k: source.get(k, record.get(k)) for k in SOURCE_FIELDS}
    if out.get("chunk_id") is None:
        out["chunk_id"] = record.get("chunk_id")
    return {k: v for k, v in out.items() if v is not None}


def seeded_rng(*parts: Any) -> random.Random:
    """A random generator fixed by the run seed and the item: same inputs, same choices."""
    return random.Random(int(stable_hash("rng", *parts, length=16), 16))


def split_usage(usage: dict[str, int], n: int) -> list[dict[str, int]]:
    """One call's tokens spread over its n records, so summing records gives the call's cost."""
    return [{k: v // n + (1 if i < v % n else 0) for k, v in usage.items()} for i in range(n)]


def string_schema(min_length: int, max_length: int) -> dict[str, Any]:
    # maxLength stays <= 900: llama.cpp grammars get slow and brittle above that.
    return {"type": "string", "minLength": min_length, "maxLength": min(max_length, 900)}
