"""Small text helpers shared by methods."""

from __future__ import annotations

from collections.abc import Callable


def estimate_tokens(text: str) -> int:
    return max(1, len(text) // 4)


def truncate_to_tokens(text: str, max_tokens: int,
                       count: Callable[[str], int] | None = None) -> str:
    """Longest prefix (cut at a word boundary) within ``max_tokens`` by ``count``."""
    count = count or estimate_tokens
    if count(text) <= max_tokens:
        return text
    low, high = 0, len(text)
    while low < high:  # binary search on characters: O(log n) tokenizer calls
        mid = (low + high + 1) // 2
        if count(text[:mid]) <= max_tokens:
            low = mid
        else:
            high = mid - 1
    cut = text[:low]
    space = cut.rfind(" ")
    return (cut[:space] if space > low * 0.8 else cut).rstrip() + " …"
