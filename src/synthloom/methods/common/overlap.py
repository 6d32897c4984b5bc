"""Word overlap between an answer and its passage: stopwords, a light stemmer, the share of an
answer's content words a passage supports, and set Jaccard (no model, no downloads)."""

from __future__ import annotations

from synthloom.quality.text import plain_words

#: Function words: they say nothing about whether an answer comes from the passage.
STOPWORDS = frozenset(["a", "an", "and", "are", "as", "at", "be", "been", "being", "but", "by", "can", "could", "did", "do", "does", "doing", "for", "from", "had", "has", "have", "having", "he", "her", "hers", "him", "his", "how", "i", "if", "in", "into", "is", "it", "its", "itself", "just", "me", "more", "most", "my", "no", "nor", "not", "of", "off", "on", "once", "only", "or", "other", "our", "ours", "out", "over", "own", "same", "she", "should", "so", "some", "such", "than", "that", "the", "their", "theirs", "them", "then", "there", "these", "they", "this", "those", "through", "to", "too", "under", "until", "up", "very", "was", "we", "were", "what", "when", "where", "which", "while", "who", "whom", "why", "will", "with", "would", "you", "your", "yours", "also", "about", "above", "after", "again", "against", "all", "any", "because", "before", "below", "between", "both", "down", "during", "each", "few", "further", "here", "may", "might", "must", "shall", "upon", "yes"])


def stem(word: str) -> str:
    """A deliberately light suffix strip, so 'hunts'/'hunting'/'hunted' meet 'hunt'."""
    for suffix in ("ing", "ed", "es", "s"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def content_words(text: str) -> list[str]:
    """Stemmed words without stopwords; all stemmed words when nothing else is left."""
    tokens = plain_words(text)
    content = [stem(t) for t in tokens if t not in STOPWORDS]
    return content or [stem(t) for t in tokens]


def support(answer: str, passage: str) -> tuple[float, list[str]]:
    """Share of the answer's distinct content words found in the passage, and the missing ones."""
    wanted = list(dict.fromkeys(content_words(answer)))
    if not wanted:
        return 0.0, []
    present = {stem(t) for t in plain_words(passage)}
    missing = [w for w in wanted if w not in present]
    return 1 - len(missing) / len(wanted), missing


def jaccard(a: set[str], b: set[str]) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)
