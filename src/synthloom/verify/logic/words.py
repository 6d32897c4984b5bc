"""Word tasks on the bundled word list: SynLogic's ``word_sorting`` (a modified alphabet), our
``word_sorting_rules`` (fixed sort keys) and ``anagram``.

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
class WordSortingRules(LogicTask):
    # Ours (was "word_sorting" before SynLogic's task took the name).
    name = "word_sorting_rules"
    description = "sort a list of words by a stated rule (a-z, z-a, length, last letter)"
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


@cache
def _by_first_letter() -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for word in word_list():
        groups.setdefault(word[0], []).append(word)
    return groups


def alphabet_with(front: list[str]) -> str:
    """SynLogic's modified alphabet: ``front`` first, then the other letters in order."""
    return "".join(front) + "".join(c for c in "abcdefghijklmnopqrstuvwxyz" if c not in front)


def sort_by_alphabet(words: list[str], alphabet: str, order: int) -> list[str]:
    rank = {c: i for i, c in enumerate(alphabet)}
    # Letter by letter; a word that is a prefix of another comes first (the authors' key).
    ranked = sorted(words, key=lambda w: [rank.get(c, len(rank)) for c in w.lower()])
    return ranked if order == 1 else ranked[::-1]


@register_task
class WordSorting(LogicTask):
    name = "word_sorting"
    synlogic = "games/tasks/word_sorting/scripts/word_sorting.py"
    description = "sort words by an alphabet with some letters moved to the front"
    answer_format = "the sorted words separated by commas, e.g. word1, word2, word3"
    # count words; front letters moved to the front (the authors: 15-25 words, 1-3 letters).
    levels = {1: {"count": 5, "front": 1}, 2: {"count": 10, "front": 2},
              3: {"count": 15, "front": 3}, 4: {"count": 20, "front": 4},
              5: {"count": 25, "front": 5}}

    def generate(self, rng: random.Random, count: int = 15, front: int = 3) -> dict[str, Any]:
        front_letters = rng.sample("abcdefghijklmnopqrstuvwxyz", front)
        groups = _by_first_letter()
        words: list[str] = []
        while len(words) < count:  # the authors' draw: a first letter, then a word of it
            pool = [w for w in groups[rng.choice(sorted(groups))] if w not in words]
            if pool:
                words.append(rng.choice(pool))
        rng.shuffle(words)
        order = rng.choice([1, -1])
        listed = ",".join(front_letters[:-1]) + " and " + front_letters[-1] \
            if front > 1 else front_letters[0]
        question = (f"Consider a new alphabet whose letters have the same order as the English "
                    f"alphabet, except that {listed} are moved to the front. Sort the following "
                    f"words with the new alphabet in {'increasing' if order == 1 else 'decreasing'}"
                    f" order and separate them with commas: {','.join(words)}.")
        answer = sort_by_alphabet(words, alphabet_with(front_letters), order)
        return {"question": question, "answer": ", ".join(answer), "words": words,
                "front_letters": front_letters, "order": order}

    def verify(self, item: dict[str, Any], candidate: str) -> str | None:
        given = list(item["words"])
        words = [w.lower() for w in split_list(candidate.replace("，", ","))]
        if sorted(words) != sorted(given):
            return "not the given words, each once"
        want = sort_by_alphabet(given, alphabet_with(list(item["front_letters"])),
                                int(item["order"]))
        return None if words == want else "not in the requested order"


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
