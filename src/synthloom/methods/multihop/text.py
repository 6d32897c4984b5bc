"""Helpers shared by the document-corpus recipes (multihop-qa, kg-questions, web-mining):
entity normalisation and mention tests, a proper-noun fallback for entities, the chunk's
provenance as a small mapping, seeded choice, and splitting one call's usage over records."""

from __future__ import annotations

import random
import re
from typing import Any

from synthloom.core.fingerprint import stable_hash
from synthloom.core.records import META
from synthloom.methods.docqa.text import STOPWORDS, words

ARTICLES = frozenset({"the", "a", "an"})
_POSSESSIVE = re.compile(r"['’]s\b")
#: Capitalised word runs ("Bay of Fundy", "Vienna State Opera"): the fallback entity spotter.
_PROPER = re.compile(
    r"\b[A-Z][\w'’-]*(?:\s+(?:of|de|del|da|di|von|van|la|le|the)?\s*[A-Z][\w'’-]*)*")
#: Chunk-level provenance fields copied onto each clue / triple / hop.
SOURCE_FIELDS = ("path", "title", "doc_id", "chunk_id", "chunk_index", "char_start", "char_end",
                 "pages")


def normalize_entity(name: str) -> str:
    """Index key of an entity: lower case, punctuation and possessive 's dropped, leading
    articles dropped, whitespace collapsed (``"The Moon's"`` -> ``"moon"``)."""
    tokens = words(_POSSESSIVE.sub("", str(name)))
    while tokens and tokens[0] in ARTICLES:
        tokens = tokens[1:]
    return " ".join(tokens)


def token_text(text: str) -> str:
    """Text as space-padded normalised words, for whole-word containment tests."""
    return " " + " ".join(words(_POSSESSIVE.sub("", text))) + " "


def mentions(key: str, padded: str) -> bool:
    """Whether the normalised entity ``key`` occurs as whole words in ``token_text(...)``."""
    return bool(key) and f" {key} " in padded


def is_informative(key: str) -> bool:
    """An entity key worth linking on: not empty, not only stopwords or digits."""
    return any(t not in STOPWORDS and not t.isdigit() and len(t) > 1 for t in key.split())


def proper_nouns(text: str, limit: int = 4) -> list[str]:
    """Capitalised word runs of ``text``: entities when the model's own do not occur in it."""
    found: list[str] = []
    for match in _PROPER.finditer(text):
        name = match.group(0).strip()
        if len(name.split()) > 5:
            continue  # an all-caps sentence or heading, not a name
        key = normalize_entity(name)
        if not key or not is_informative(key) or all(t in STOPWORDS for t in key.split()):
            continue
        if key not in {normalize_entity(f) for f in found}:
            found.append(name)
        if len(found) >= limit:
            break
    return found


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
