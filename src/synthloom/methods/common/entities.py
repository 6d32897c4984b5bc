"""Entities in text, for the document-corpus recipes (multihop-qa, kg-questions, web-mining):
entity normalisation and mention tests, and a proper-noun fallback for entities."""

from __future__ import annotations

import re

from synthloom.methods.common.overlap import STOPWORDS
from synthloom.quality.text import plain_words

ARTICLES = frozenset({"the", "a", "an"})
_POSSESSIVE = re.compile(r"['’]s\b")
#: Capitalised word runs ("Bay of Fundy", "Vienna State Opera"): the fallback entity spotter.
_PROPER = re.compile(
    r"\b[A-Z][\w'’-]*(?:\s+(?:of|de|del|da|di|von|van|la|le|the)?\s*[A-Z][\w'’-]*)*")


def normalize_entity(name: str) -> str:
    """Index key of an entity: lower case, punctuation and possessive 's dropped, leading
    articles dropped, whitespace collapsed (``"The Moon's"`` -> ``"moon"``)."""
    tokens = plain_words(_POSSESSIVE.sub("", str(name)))
    while tokens and tokens[0] in ARTICLES:
        tokens = tokens[1:]
    return " ".join(tokens)


def token_text(text: str) -> str:
    """Text as space-padded normalised words, for whole-word containment tests."""
    return " " + " ".join(plain_words(_POSSESSIVE.sub("", text))) + " "


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
