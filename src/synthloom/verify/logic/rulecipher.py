"""SynLogic's ``cipher``: encrypt or decrypt a text by a cipher rule stated in the question.

SynLogic ships only the verifier for this task (games/tasks/cipher/scripts/cipher_verifier.py:
the reply's ``[[...]]`` compared exactly with the reference); its items come from a corpus that
is not in the repository, nor are its rule texts. The ``[[...]]`` answers are the convention of
KOR-Bench's cipher category (a benchmark the SynLogic paper reports on), so the task is built in
that style - a rule written out as encryption and decryption steps, a plain or cipher text of
capital letters without spaces, the answer in ``[[...]]`` - with rules written here from the
ciphers' standard definitions (not the authors' or KOR-Bench's texts): Atbash, affine, keyword substitution, Polybius square
(I and J share a cell), rail fence and columnar transposition; level 5 chains a substitution
and a transposition. Texts are words of the bundled list, capitalised, spaces removed.

The verifier goes the other way from the candidate where it can: a claimed decryption must
encrypt back to the given ciphertext (any preimage counts: with the Polybius square J and I are
the same letter); a claimed encryption must equal the text's encryption (the rules are
deterministic). ``[[...]]``, quotes and spaces around the letters are ignored. Synthloom's
``caesar`` and ``vigenere`` stay as extra tasks.
"""

from __future__ import annotations

import random
import re
import string
from typing import Any

from synthloom.verify.logic.base import LogicTask, register_task
from synthloom.verify.logic.words import word_list

ABC = string.ascii_uppercase
AFFINE_A = (3, 5, 7, 9, 11, 15, 17, 19, 21, 23, 25)
KEYWORDS = ("CIPHER", "SECRET", "PUZZLE", "GARDEN", "WINTER", "MONKEY", "PLANET", "BORDER",
            "CASTLE", "FOREST", "MARKET", "SILVER")
SUBSTITUTIONS = ("atbash", "affine", "keyword")
TRANSPOSITIONS = ("rail_fence", "columnar")
ALL = (*SUBSTITUTIONS, "polybius", *TRANSPOSITIONS)


def keyed_alphabet(keyword: str, letters: str = ABC) -> str:
    """The keyword's letters (first time each), then the rest of ``letters`` in order."""
    return "".join(dict.fromkeys(keyword + letters))


def _square(keyword: str) -> str:
    return keyed_alphabet(keyword.replace("J", "I"), ABC.replace("J", ""))


def _rails(n: int, rails: int) -> list[int]:
    """The rail of each position on the zigzag."""
    cycle = 2 * rails - 2
    return [min(i % cycle, cycle - i % cycle) for i in range(n)]


def _column_order(key: str) -> list[int]:
    return sorted(range(len(key)), key=lambda i: (key[i], i))


def encrypt(text: str, rule: str, key: Any) -> str:
    """``text`` (capital letters) under one rule and its key."""
    if rule == "atbash":
        return text.translate(str.maketrans(ABC, ABC[::-1]))
    if rule == "affine":
        a, b = key
        return "".join(ABC[(a * ABC.index(c) + b) % 26] for c in text)
    if rule == "keyword":
        return text.translate(str.maketrans(ABC, keyed_alphabet(key)))
    if rule == "polybius":
        sq = _square(key)
        return "".join(f"{sq.index(c) // 5 + 1}{sq.index(c) % 5 + 1}"
                       for c in text.replace("J", "I"))
    if rule == "rail_fence":
        rails = _rails(len(text), key)
        return "".join(c for r in range(key) for c, rr in zip(text, rails, strict=True) if rr == r)
    if rule == "columnar":
        return "".join(text[i::len(key)] for i in _column_order(key))
    raise ValueError(f"unknown cipher rule {rule!r}")


def decrypt(text: str, rule: str, key: Any) -> str:
    """The inverse of :func:`encrypt` (Polybius gives I for I/J)."""
    if rule == "atbash":
        return encrypt(text, rule, key)
    if rule == "affine":
        a, b = key
        inv = pow(a, -1, 26)
        return "".join(ABC[inv * (ABC.index(c) - b) % 26] for c in text)
    if rule == "keyword":
        return text.translate(str.maketrans(keyed_alphabet(key), ABC))
    if rule == "polybius":
        sq = _square(key)
        return "".join(sq[(int(text[i]) - 1) * 5 + int(text[i + 1]) - 1]
                       for i in range(0, len(text) - 1, 2))
    if rule in ("rail_fence", "columnar"):
        # Encrypt the positions, then put each letter back where it came from.
        where = list(range(len(text)))
        if rule == "rail_fence":
            rails = _rails(len(text), key)
            order = [i for r in range(key) for i, rr in zip(where, rails, strict=True) if rr == r]
        else:
            order = [i for c in _column_order(key) for i in where[c::len(key)]]
        out = [""] * len(text)
        for ch, i in zip(text, order, strict=True):
            out[i] = ch
        return "".join(out)
    raise ValueError(f"unknown cipher rule {rule!r}")


def apply_chain(text: str, steps: list[list[Any]], forward: bool) -> str:
    for rule, key in steps if forward else steps[::-1]:
        text = encrypt(text, rule, key) if forward else decrypt(text, rule, key)
    return text


def _describe(rule: str, key: Any) -> str:
    """The rule written out as steps, KOR-Bench style."""
    if rule == "atbash":
        return ("Atbash substitution: the alphabet is reversed, A<->Z, B<->Y, C<->X, ... "
                "Encryption and decryption both replace each letter by its mirror letter.")
    if rule == "affine":
        a, b = key
        return (f"Affine substitution with a = {a}, b = {b}: number the letters A=0 ... Z=25. "
                f"Encryption: x -> (a*x + b) mod 26. Decryption: y -> a_inv*(y - b) mod 26, "
                f"where a_inv = {pow(a, -1, 26)} is the inverse of a modulo 26.")
    if rule == "keyword":
        return (f"Keyword substitution with keyword {key}: the cipher alphabet is the keyword's "
                f"letters (each once) followed by the remaining letters in order: "
                f"{keyed_alphabet(key)}. Encryption replaces the i-th letter of the standard "
                "alphabet by the i-th letter of the cipher alphabet; decryption the reverse.")
    if rule == "polybius":
        sq = _square(key)
        rows = "; ".join(f"row {r + 1}: {' '.join(sq[r * 5:r * 5 + 5])}" for r in range(5))
        return ("Polybius square (5x5, I and J share a cell), rows and columns numbered 1-5: "
                f"{rows}. Encryption replaces each letter by its row digit then its column "
                "digit; decryption reads the digits in pairs (row, column).")
    if rule == "rail_fence":
        return (f"Rail fence with {key} rails: write the letters in a zigzag down and up "
                f"across {key} rails (rail 1, 2, ..., {key}, {key - 1}, ..., 1, 2, ...), then "
                "read the rails from top to bottom, each left to right. Decryption rebuilds "
                "the zigzag from the rail lengths.")
    return (f"Columnar transposition with keyword {key}: write the text in rows of "
            f"{len(key)} letters under the keyword (the last row may be short), then read the "
            "columns top to bottom in the alphabetical order of the keyword's letters (equal "
            "letters left to right). Decryption refills the columns in that order.")


def _key(rng: random.Random, rule: str, length: int) -> Any:
    if rule == "affine":
        return [rng.choice(AFFINE_A), rng.randint(1, 25)]
    if rule in ("keyword", "polybius"):
        return rng.choice(KEYWORDS)
    if rule == "rail_fence":
        return rng.randint(2, max(2, min(5, length // 2)))
    if rule == "columnar":
        return rng.choice([k for k in KEYWORDS if len(set(k)) == len(k)] + ["KEY", "ZEBRA"])
    return None


def _letters(text: str) -> str:
    """Capital letters and digits only (wrappers, quotes and spaces dropped)."""
    return re.sub(r"[^A-Z0-9]", "", text.upper())


@register_task
class Cipher(LogicTask):
    name = "cipher"
    synlogic = "games/tasks/cipher/scripts/cipher_verifier.py"
    description = "encrypt or decrypt a text by a cipher rule written out in the question"
    answer_format = ("the resulting text without spaces, in capital letters (digits for a "
                     "Polybius encryption), e.g. [[HELLOWORLD]]")
    levels = {1: {"words": 1, "rules": ["atbash", "keyword"], "chain": 1, "mode": "any"},
              2: {"words": 2, "rules": ["affine", "polybius"], "chain": 1, "mode": "any"},
              3: {"words": 3, "rules": list(TRANSPOSITIONS), "chain": 1, "mode": "any"},
              4: {"words": 4, "rules": list(ALL), "chain": 1, "mode": "decrypt"},
              5: {"words": 5, "rules": list(ALL), "chain": 2, "mode": "any"}}

    def generate(self, rng: random.Random, words: int = 3, rules: list[str] | None = None,
                 chain: int = 1, mode: str = "any") -> dict[str, Any]:
        rules = list(rules or ALL)
        if not 1 <= words <= 12 or chain not in (1, 2) or any(r not in ALL for r in rules) \
                or mode not in ("any", "encrypt", "decrypt"):
            raise ValueError("words 1-12, chain 1 or 2, rules among " + ", ".join(ALL))
        plain = "".join(rng.sample([w for w in word_list() if "j" not in w], words)).upper()
        if chain == 1:
            picked = [rng.choice(rules)]
        else:  # a substitution, then a transposition
            picked = [rng.choice([r for r in rules if r in SUBSTITUTIONS] or list(SUBSTITUTIONS)),
                      rng.choice([r for r in rules if r in TRANSPOSITIONS] or
                                 list(TRANSPOSITIONS))]
        steps = [[r, _key(rng, r, len(plain))] for r in picked]
        cipher = apply_chain(plain, steps, True)
        direction = rng.choice(["encrypt", "decrypt"]) if mode == "any" else mode
        rule_text = " Then ".join(_describe(r, k) for r, k in steps) if chain == 1 else \
            "Encryption applies two rules in turn; decryption undoes them in reverse order. " \
            + " ".join(f"Step {i + 1}: {_describe(r, k)}" for i, (r, k) in enumerate(steps))
        given = plain if direction == "encrypt" else cipher
        question = (f"You are a cipher expert. Rule: {rule_text}\n\n"
                    f"{'Plaintext' if direction == 'encrypt' else 'Ciphertext'}: {given}\n\n"
                    f"Please {direction} the text above by the rule and give the result in "
                    "double square brackets, e.g. [[ABC]].")
        return {"question": question, "answer": f"[[{cipher if direction == 'encrypt' else plain}]]",
                "mode": direction, "steps": steps, "text": given}

    def verify(self, item: dict[str, Any], candidate: str) -> str | None:
        got, text, steps = _letters(candidate), str(item["text"]), item["steps"]
        if not got:
            return "no letters in the answer"
        if item["mode"] == "encrypt":
            return None if got == apply_chain(text, steps, True) else \
                "not the text's encryption"
        if not got.isalpha():
            return "a decryption is letters only"
        return None if apply_chain(got, steps, True) == text else \
            "encrypting the answer does not give back the ciphertext"
