"""SynLogic's ``word_sorting_mistake``, after games/tasks/word_sorting_mistake: a numbered
chain of thoughts sorts words alphabetically, letter by letter (a bucket sort on the first
letter, then each bucket on the next); find the first thought with a mistake, or say "No".

The trace is the authors' ``generate_sorting_process_with_mistake``: with probability
``mistake_rate`` one thought number in 1-10 is picked; if the run reaches it, that thought
either misreads one word's letter (a reading thought) or sorts wrongly (a "We now have"
thought: two groups swapped, two merged, or one repeated, 1/3 each as the authors draw them).
The verifier does not trust that label: it rebuilds the correct trace from the words (no
randomness in it) and the answer is the first thought that differs from it, "No" when none
does. Departures: words come from the bundled list (the authors' 370,000-word
``words_alpha.txt`` is not shipped); a misread letter that would make two words the same is
not injected (the authors' loop would never end on it); English only.
"""

from __future__ import annotations

import random
import re
from collections import defaultdict
from typing import Any

from synthloom.verify.logic.base import LogicTask, register_task
from synthloom.verify.logic.words import word_list

ALPHABET = "abcdefghijklmnopqrstuvwxyz"
ORDINAL = ["first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth",
           "ninth", "tenth", "eleventh", "twelfth", "thirteenth", "fourteenth", "fifteenth",
           "sixteenth", "seventeenth", "eighteenth", "nineteenth", "twentieth"]
PROMPT = ("You are an expert in word sorting. You will be provided with a list of words and "
          "the steps taken, in the form of thoughts, to arrange them in alphabetical order.\n"
          "Your job is to identify the first step that was a mistake in reasoning about the "
          "order of the words. This can be misunderstanding the order of the alphabet or "
          "getting the word or letter wrong or missing a word entirely.\n"
          "Q: Sort the following words alphabetically: List: {words}\n{thoughts}\n"
          "Is there a mistake in this sequence? Write No if there are no mistakes, or the "
          "number N if there is a mistake in Thought N.")


def _rank(word: str, pos: int) -> int:
    return ALPHABET.index(word[pos]) if pos < len(word) else -1


def _groups(words: list[str], pos: int) -> list[list[str]]:
    by: dict[int, list[str]] = defaultdict(list)
    for w in words:
        by[_rank(w, pos)].append(w)
    return [by[k] for k in sorted(by)]


def trace(words: list[str], rng: random.Random | None = None,
          mistake: int | None = None) -> list[str]:
    """The numbered thoughts (without "Thought N:"); with ``rng`` and ``mistake``, the
    authors' error injected at thought ``mistake`` (when the run reaches it)."""
    words = list(words)
    real: dict[str, str] = {}  # misread word -> the word it stands for

    def show(group: list[str]) -> str:
        names = [f'"{real.get(w, w)}"' for w in group]
        return names[0] if len(names) == 1 else "[" + " ? ".join(names) + "]"

    def misread(group: list[str], pos: int, letters: str) -> None:
        avail = [w for w in group if len(w) > pos]
        if not avail or rng is None:
            return
        word = rng.choice(avail)
        choices = [c for c in letters if c != word[pos]]
        if not choices:
            return
        new = word[:pos] + rng.choice(choices) + word[pos + 1:]
        if new in words or new in real:
            return  # would tie two words for ever
        real[new] = real.pop(word, word)
        group[group.index(word)] = new
        if group is not words:
            words[words.index(word)] = new

    def reading(group: list[str], pos: int) -> str:
        return "".join(f'"{real.get(w, w)}": "{w[pos] if pos < len(w) else ""}" '
                       f"({_rank(w, pos) + 1}). " for w in group)

    def bad_sort(state: list[list[str]]) -> list[list[str]]:
        assert rng is not None
        if len(state) < 2:
            return state
        i, j = rng.sample(range(len(state)), 2)
        if rng.random() < 0.33:
            state[i], state[j] = state[j], state[i]
        elif rng.random() < 0.66:
            state[i] = state[i] + state[j]
            state.pop(j)
        else:
            state.insert(i, state[j])
        return state

    thoughts: list[str] = []
    state = [words]
    pos = 0
    while any(len(g) > 1 for g in state):
        if pos == 0:
            text = f"I should start by looking at the {ORDINAL[0]} letter of the words in the " \
                   f"list. The {ORDINAL[0]} letter: "
            if mistake == len(thoughts) + 1:
                misread(words, 0, "".join(w[0] for w in words))
            thoughts.append(text + reading(words, 0))
            state = _groups(words, 0)
            if mistake == len(thoughts) + 1:
                state = bad_sort(state)
            thoughts.append("We now have: " + " < ".join(show(g) for g in state) + ".")
        else:
            new: list[list[str]] = []
            for i, group in enumerate(state):
                if len(group) == 1:
                    new.append(group)
                    continue
                text = f"Now let's sort this subpart {show(group)} by looking at the " \
                       f"{ORDINAL[min(pos, 19)]} letter. The {ORDINAL[min(pos, 19)]} letter: "
                group = list(group)
                if mistake == len(thoughts) + 1:
                    misread(group, pos, ALPHABET)
                thoughts.append(text + reading(group, pos))
                part = _groups(group, pos)
                if mistake == len(thoughts) + 1:
                    part = bad_sort(part)
                new += part
                thoughts.append("We now have: " + " < ".join(
                    show(g) for g in new + state[i + 1:]) + ".")
            state = new
        pos += 1
    thoughts.append("I have now sorted all the words. The answer is " +
                    "<".join(show(g) for g in state) + ".")
    return thoughts


def first_mistake(words: list[str], thoughts: list[str]) -> int | None:
    """The first thought (1-based) that differs from the correct trace; None if none does."""
    right = trace(words)
    for i, text in enumerate(thoughts):
        if i >= len(right) or text != right[i]:
            return i + 1
    return None if len(thoughts) == len(right) else len(thoughts) + 1


@register_task
class WordSortingMistake(LogicTask):
    name = "word_sorting_mistake"
    synlogic = "games/tasks/word_sorting_mistake/scripts/word_sorting_mistake.py"
    description = "find the first wrong thought in a letter-by-letter sort (or No)"
    answer_format = "the number of the first thought with a mistake, or No"
    # The authors' knobs: word_count (their run.sh sweeps one count per set) and mistake_rate.
    levels = {1: {"word_count": 5, "mistake_rate": 0.9}, 2: {"word_count": 8, "mistake_rate": 0.9},
              3: {"word_count": 12, "mistake_rate": 0.9},
              4: {"word_count": 16, "mistake_rate": 0.9},
              5: {"word_count": 22, "mistake_rate": 0.9}}

    def generate(self, rng: random.Random, word_count: int = 15,
                 mistake_rate: float = 0.9) -> dict[str, Any]:
        if not 2 <= word_count <= 100:
            raise ValueError("word_count must be 2-100")
        words = rng.sample(word_list(), word_count)
        step = rng.randint(1, 10) if rng.random() < mistake_rate else None
        thoughts = trace(words, rng, step)
        found = first_mistake(words, thoughts)
        numbered = "\n".join(f"Thought {i}: {t}" if i < len(thoughts) else t
                           for i, t in enumerate(thoughts, 1))
        return {"question": PROMPT.format(words=" ".join(words), thoughts=numbered),
                "answer": "No" if found is None else str(found), "words": words,
                "thoughts": thoughts, "word_count": word_count}

    def verify(self, item: dict[str, Any], candidate: str) -> str | None:
        got = candidate.strip().rstrip(".").strip()
        match = re.fullmatch(r"(?i)(?:thought\s*)?(\d+)|(no|none)", got)
        if not match:
            return "not a thought number or No"
        want = first_mistake(item["words"], item["thoughts"])
        if match.group(2):
            return None if want is None else "there is a mistake"
        return None if want == int(match.group(1)) else f"thought {got} is not the first mistake"
