"""Word tasks on the bundled word list: sorting and anagrams.

``data/logic/words.txt`` is a list of 564 common English words written for this project. The
anagram verifier accepts any listed word with the same letters (``heart`` and ``earth`` both
unscramble ``traeh``), not only the word the generator hid.
"""

from __future__ import annotations

import random
import re
from functools import cache
from importlib import resources
from typing import Any

from synthloom.verify.logic.base import LogicTask, register_task, split_list


@cache
def word_list() -> tuple[str, ...]:
    text = resources.files("synthloom").joinpath("data/logic/words.txt").read_text("utf-8")
    return tuple(sorted({w.strip().lower() for w in text.split() if w.strip().isalpha()}))


@cache
def word_set() -> frozenset[str]:
    return frozenset(word_list())


SORT_KEYS = {
    "alphabetical": ("in alphabetical order (a to z)", lambda w: w),
    "reverse": ("in reverse alphabetical order (z to a)", None),
    "length": ("by length, shortest first; words of the same length in alphabetical order",
               lambda w: (len(w), w)),
    "last_letter": ("by their last letter (a to z); words with the same last letter in "
                    "alphabetical order", lambda w: (w[-1], w)),
}


def sort_words(words: list[str], key: str) -> list[str]:
    if key == "reverse":
        return sorted(words, reverse=True)
    return sorted(words, key=SORT_KEYS[key][1])


@register_task
class WordSorting(LogicTask):
    name = "word_sorting"
    description = "sort a list of words by a stated rule"
    answer_format = "the sorted words separated by commas, e.g. apple, banana, cherry"
    levels = {1: {"count": 5, "key": "alphabetical"}, 2: {"count": 8, "key": "alphabetical"},
              3: {"count": 10, "key": "reverse"}, 4: {"count": 12, "key": "length"},
              5: {"count": 15, "key": "last_letter"}}

    def generate(self, rng: random.Random, count: int = 8,
                 key: str = "alphabetical") -> dict[str, Any]:
        if key not in SORT_KEYS:
            raise ValueError(f"sort key must be one of {sorted(SORT_KEYS)}")
        words = rng.sample(word_list(), count)
        question = (f"Sort these words {SORT_KEYS[key][0]}: {', '.join(words)}.")
        return {"question": question, "answer": ", ".join(sort_words(words, key)),
                "words": words, "sort_key": key}

    def verify(self, item: dict[str, Any], candidate: str) -> str | None:
        given = list(item["words"])
        words = [w.lower() for w in split_list(candidate)]
        if sorted(words) != sorted(given):
            return "not the given words, each once"
        if words != sort_words(given, str(item["sort_key"])):
            return "not in the requested order"
        return None


def _letters(word: str) -> str:
    return "".join(sorted(word))


@register_task
class Anagram(LogicTask):
    name = "anagram"
    description = "unscramble letters into an English word (any listed word with them counts)"
    answer_format = "the single word, in lowercase, e.g. garden"
    levels = {1: {"min_len": 3, "max_len": 4}, 2: {"min_len": 5, "max_len": 5},
              3: {"min_len": 6, "max_len": 6}, 4: {"min_len": 7, "max_len": 7},
              5: {"min_len": 8, "max_len": 12}}

    def generate(self, rng: random.Random, min_len: int = 5, max_len: int = 6) -> dict[str, Any]:
        pool = [w for w in word_list() if min_len <= len(w) <= max_len and len(set(w)) > 1]
        if not pool:
            raise ValueError(f"no listed word has {min_len}-{max_len} letters")
        word = rng.choice(pool)
        others = {w for w in word_list() if _letters(w) == _letters(word)}
        letters = list(word)
        while "".join(letters) in others:  # never show a word itself
            rng.shuffle(letters)
        scrambled = "".join(letters).upper()
        question = (f"Rearrange the letters {scrambled} to form a common English word. "
                    "Use every letter exactly once.")
        return {"question": question, "answer": word, "letters": scrambled}

    def verify(self, item: dict[str, Any], candidate: str) -> str | None:
        word = re.sub(r"[^a-z]", "", candidate.lower())
        if _letters(word) != _letters(str(item["letters"]).lower()):
            return f"{word!r} does not use exactly the letters {item['letters']}"
        if word not in word_set():
            return f"{word!r} is not in the word list"
        return None
