"""Caesar and Vigenère ciphers over A-Z; spaces are kept and do not use up key letters.

The verifiers go the other way from the candidate: a claimed decryption must encrypt back to
the given ciphertext (a claimed encryption must decrypt to the given text). For a Caesar text
with an unknown shift, a candidate is right when it is some shift of the ciphertext and every
word is on the bundled word list; the generator keeps only texts where one shift does that.
"""

from __future__ import annotations

import random
import re
from typing import Any

from synthloom.verify.logic.base import LogicTask, register_task
from synthloom.verify.logic.words import word_list, word_set


def shift_text(text: str, shifts: list[int]) -> str:
    """Shift each letter by the next shift in turn (cycling); other characters pass through."""
    out, k = [], 0
    for ch in text.upper():
        if "A" <= ch <= "Z":
            out.append(chr((ord(ch) - 65 + shifts[k % len(shifts)]) % 26 + 65))
            k += 1
        else:
            out.append(ch)
    return "".join(out)


def _norm(text: str) -> str:
    """Upper-case letters, single spaces; anything else removed."""
    return " ".join(re.sub(r"[^A-Z ]", "", text.upper()).split())


def _sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.sample(word_list(), words)).upper()


def _check_direction(item: dict[str, Any], candidate: str, shifts: list[int]) -> str | None:
    """Encrypting (``shifts``) or decrypting (the negated shifts) ``candidate`` must give back
    the given text exactly."""
    text, mode = _norm(str(item["text"])), str(item["mode"])
    got = _norm(candidate)
    if not got:
        return "no letters in the answer"
    back = [-s for s in shifts] if mode == "encrypt" else shifts
    if shift_text(got, back) != text:
        return f"{'decrypting' if mode == 'encrypt' else 'encrypting'} the answer does not " \
               f"give back {text!r}"
    return None


@register_task
class Caesar(LogicTask):
    name = "caesar"
    description = "encrypt or decrypt a Caesar cipher (shift given, or found by the solver)"
    answer_format = "the resulting text in capital letters, words separated by single spaces"
    levels = {1: {"words": 3, "mode": "decrypt", "known": True},
              2: {"words": 4, "mode": "encrypt", "known": True},
              3: {"words": 6, "mode": "decrypt", "known": True},
              4: {"words": 4, "mode": "decrypt", "known": False},
              5: {"words": 7, "mode": "decrypt", "known": False}}

    def generate(self, rng: random.Random, words: int = 4, mode: str = "decrypt",
                 known: bool = True) -> dict[str, Any]:
        if mode not in ("encrypt", "decrypt"):
            raise ValueError("mode must be encrypt or decrypt")
        if not known and mode != "decrypt":
            raise ValueError("an unknown shift only makes sense when decrypting")
        vocab = word_set()
        for _ in range(100):
            plain, shift = _sentence(rng, words), rng.randint(1, 25)
            cipher = shift_text(plain, [shift])
            if known:
                break
            # Exactly one shift must turn the ciphertext into listed words.
            readable = [s for s in range(26)
                        if all(w.lower() in vocab for w in shift_text(cipher, [-s]).split())]
            if readable == [shift]:
                break
        if mode == "encrypt":
            question = (f"Encrypt the text \"{plain}\" with a Caesar cipher of shift {shift} "
                        f"(each letter moves {shift} places forward in the alphabet, Z wraps "
                        "to A; spaces stay).")
            return {"question": question, "answer": cipher, "mode": mode, "text": plain,
                    "shift": shift}
        how = (f"was encrypted with a Caesar cipher of shift {shift} (each letter moved "
               f"{shift} places forward, Z wrapping to A)" if known else
               "was encrypted with a Caesar cipher of unknown shift (every letter moved the "
               "same number of places forward, Z wrapping to A); the original is English words")
        question = f"The text \"{cipher}\" {how}. Decrypt it; spaces stay."
        return {"question": question, "answer": plain, "mode": mode, "text": cipher,
                "shift": shift if known else None}

    def verify(self, item: dict[str, Any], candidate: str) -> str | None:
        if item.get("shift") is not None:
            return _check_direction(item, candidate, [int(item["shift"])])
        text, got = _norm(str(item["text"])), _norm(candidate)
        shifts = [s for s in range(26) if shift_text(got, [s]) == text]
        if not shifts:
            return "the answer is not a Caesar shift of the ciphertext"
        unknown = [w for w in got.split() if w.lower() not in word_set()]
        if unknown:
            return f"not English words from the list: {unknown[:3]}"
        return None


@register_task
class Vigenere(LogicTask):
    name = "vigenere"
    description = "encrypt or decrypt a Vigenère cipher with a given key"
    answer_format = "the resulting text in capital letters, words separated by single spaces"
    levels = {1: {"words": 2, "key_length": 3, "mode": "decrypt"},
              2: {"words": 3, "key_length": 3, "mode": "encrypt"},
              3: {"words": 4, "key_length": 4, "mode": "decrypt"},
              4: {"words": 5, "key_length": 5, "mode": "decrypt"},
              5: {"words": 6, "key_length": 7, "mode": "encrypt"}}

    def generate(self, rng: random.Random, words: int = 4, key_length: int = 4,
                 mode: str = "decrypt") -> dict[str, Any]:
        if mode not in ("encrypt", "decrypt"):
            raise ValueError("mode must be encrypt or decrypt")
        keys = [w.upper() for w in word_list() if len(w) == key_length]
        key = rng.choice(keys) if keys else "".join(
            chr(65 + rng.randrange(26)) for _ in range(key_length))
        plain = _sentence(rng, words)
        shifts = [ord(ch) - 65 for ch in key]
        cipher = shift_text(plain, shifts)
        rule = (f"with the Vigenère key {key}: the n-th letter of the text is shifted forward by "
                "the n-th letter of the key (A = 0, B = 1, ..., Z = 25), the key repeating; "
                "spaces stay and do not use up key letters")
        if mode == "encrypt":
            question = f"Encrypt the text \"{plain}\" {rule}."
            return {"question": question, "answer": cipher, "mode": mode, "text": plain,
                    "key": key}
        question = f"The text \"{cipher}\" was encrypted {rule}. Decrypt it."
        return {"question": question, "answer": plain, "mode": mode, "text": cipher, "key": key}

    def verify(self, item: dict[str, Any], candidate: str) -> str | None:
        shifts = [ord(ch) - 65 for ch in str(item["key"]).upper()]
        return _check_direction(item, candidate, shifts)
