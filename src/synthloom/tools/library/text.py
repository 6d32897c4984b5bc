"""Text tools (self-contained: run in the sandbox from this source)."""

from __future__ import annotations

import re


def word_count(text: str) -> int:
    """The number of words in a text.

    Args:
        text: The text.
    """
    return len(re.findall(r"\b\w+\b", text))


def reverse_text(text: str) -> str:
    """The text reversed, character by character.

    Args:
        text: The text.
    """
    return text[::-1]


def to_uppercase(text: str) -> str:
    """The text in upper case.

    Args:
        text: The text.
    """
    return text.upper()


def count_occurrences(text: str, substring: str) -> int:
    """How often a substring occurs in a text (non-overlapping).

    Args:
        text: The text.
        substring: What to count.
    """
    if not substring:
        raise ValueError("substring must not be empty")
    return text.count(substring)
