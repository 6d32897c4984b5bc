"""Number tasks: bit-manipulation chains and integer sequence completion.

Both verifiers recompute from the puzzle's own fields (the start value and operations; the
sequence's rule), never from the stored answer. A sequence's next term is the one its rule
gives: the generator shows at least three more terms than the rule has free parameters, so a
simpler rule that fits the shown terms and continues differently is unlikely (not impossible).
"""

from __future__ import annotations

import random
import re
from typing import Any

from synthloom.verify.logic.base import LogicTask, register_task

# --- bit operations -------------------------------------------------------------------------

OP_TEXT = {"and": "AND with {}", "or": "OR with {}", "xor": "XOR with {}", "not": "NOT (flip "
           "every bit)", "shl": "shift left by {} (bits leaving the left end are lost, zeros "
           "come in)", "shr": "shift right by {} (zeros come in)", "rol": "rotate left by {}",
           "ror": "rotate right by {}"}


def apply_ops(value: int, ops: list[list], width: int) -> int:
    mask = (1 << width) - 1
    for op in ops:
        name = op[0]
        arg = op[1] if len(op) > 1 else 0
        if name in ("and", "or", "xor"):
            arg = int(arg, 2) if isinstance(arg, str) else int(arg)
        if name == "and":
            value &= arg
        elif name == "or":
            value |= arg
        elif name == "xor":
            value ^= arg
        elif name == "not":
            value = ~value
        elif name == "shl":
            value <<= arg
        elif name == "shr":
            value >>= arg
        elif name == "rol":
            value = (value << arg) | (value >> (width - arg))
        elif name == "ror":
            value = (value >> arg) | (value << (width - arg))
        else:
            raise ValueError(f"unknown bit operation {name!r}")
        value &= mask
    return value


@register_task
class BitOps(LogicTask):
    name = "bit_ops"
    description = "apply a chain of AND/OR/XOR/NOT/shift/rotate operations to a binary number"
    answer_format = "the result in binary with exactly as many bits as the input, e.g. 0110"
    levels = {1: {"width": 4, "steps": 2, "ops": ["and", "or", "xor"]},
              2: {"width": 6, "steps": 3, "ops": ["and", "or", "xor", "not"]},
              3: {"width": 8, "steps": 4, "ops": ["and", "or", "xor", "not", "shl", "shr"]},
              4: {"width": 8, "steps": 6, "ops": list(OP_TEXT)},
              5: {"width": 12, "steps": 8, "ops": list(OP_TEXT)}}

    def generate(self, rng: random.Random, width: int = 8, steps: int = 4,
                 ops: list[str] | None = None) -> dict[str, Any]:
        names = ops or list(OP_TEXT)
        unknown = set(names) - set(OP_TEXT)
        if unknown or width < 2:
            raise ValueError(f"bit ops: width >= 2 and ops from {sorted(OP_TEXT)}")
        start = format(rng.getrandbits(width), f"0{width}b")
        chain: list[list] = []
        for _ in range(steps):
            name = rng.choice(names)
            if name in ("and", "or", "xor"):
                chain.append([name, format(rng.getrandbits(width), f"0{width}b")])
            elif name == "not":
                chain.append([name])
            else:
                chain.append([name, rng.randint(1, width - 1)])
        listing = "\n".join(f"{i}. {OP_TEXT[op[0]].format(*op[1:])}"
                            for i, op in enumerate(chain, 1))
        question = (f"Start with the {width}-bit binary number {start}. Apply these operations "
                    f"in order, keeping {width} bits after each:\n{listing}\n\nWhat is the "
                    "result?")
        result = apply_ops(int(start, 2), chain, width)
        return {"question": question, "answer": format(result, f"0{width}b"), "start": start,
                "width": width, "operations": chain}

    def verify(self, item: dict[str, Any], candidate: str) -> str | None:
        width = int(item["width"])
        bits = re.sub(r"[\s_]", "", candidate)
        bits = bits[2:] if bits.lower().startswith("0b") else bits
        if not bits or set(bits) - {"0", "1"}:
            return "not a binary number"
        if len(bits) != width:
            return f"expected {width} bits, got {len(bits)}"
        want = apply_ops(int(str(item["start"]), 2), list(item["operations"]), width)
        if int(bits, 2) != want:
            return f"{bits} is not the result"
        return None


# --- sequences ------------------------------------------------------------------------------

#: family → free parameters (the generator shows this many terms + 3 or more)
FAMILIES = {"arithmetic": 2, "geometric": 2, "quadratic": 3, "fibonacci": 2,
            "interleaved": 4, "affine": 3, "cubic": 4, "alternating_ops": 3}


def sequence_terms(rule: dict[str, Any], count: int) -> list[int]:
    """The first ``count`` terms of ``rule`` (integers only)."""
    family = rule["family"]
    out: list[int] = []
    if family == "arithmetic":
        out = [rule["a"] + rule["d"] * i for i in range(count)]
    elif family == "geometric":
        out = [rule["a"] * rule["r"] ** i for i in range(count)]
    elif family == "quadratic":
        out = [rule["a"] * i * i + rule["b"] * i + rule["c"] for i in range(1, count + 1)]
    elif family == "cubic":
        out = [rule["a"] * i ** 3 + rule["b"] * i * i + rule["c"] * i + rule["d"]
               for i in range(1, count + 1)]
    elif family == "fibonacci":
        out = [rule["a"], rule["b"]]
        while len(out) < count:
            out.append(out[-1] + out[-2])
        out = out[:count]
    elif family == "interleaved":  # two arithmetic sequences, taking turns
        out = [rule["a"] + rule["d"] * (i // 2) if i % 2 == 0 else
               rule["b"] + rule["e"] * (i // 2) for i in range(count)]
    elif family == "affine":  # x(n+1) = m * x(n) + c
        out = [rule["a"]]
        while len(out) < count:
            out.append(rule["m"] * out[-1] + rule["c"])
    elif family == "alternating_ops":  # add p, then multiply by q, in turn
        out = [rule["a"]]
        while len(out) < count:
            out.append(out[-1] + rule["p"] if len(out) % 2 == 1 else out[-1] * rule["q"])
    else:
        raise ValueError(f"unknown sequence family {family!r}")
    return out


def _rule(rng: random.Random, family: str) -> dict[str, Any]:
    r = rng.randint
    rules = {
        "arithmetic": lambda: {"a": r(-20, 50), "d": rng.choice([*range(-9, 0), *range(2, 13)])},
        "geometric": lambda: {"a": r(1, 9) * rng.choice([1, -1]), "r": rng.choice([2, 3, -2])},
        "quadratic": lambda: {"a": r(1, 4), "b": r(-6, 6), "c": r(-10, 10)},
        "cubic": lambda: {"a": 1, "b": r(-3, 3), "c": r(-5, 5), "d": r(-10, 10)},
        "fibonacci": lambda: {"a": r(1, 9), "b": r(1, 12)},
        "interleaved": lambda: {"a": r(1, 20), "d": r(2, 9), "b": r(30, 80), "e": -r(2, 9)},
        "affine": lambda: {"a": r(1, 6), "m": rng.choice([2, 3]), "c": r(-3, 5)},
        "alternating_ops": lambda: {"a": r(1, 9), "p": r(1, 6), "q": rng.choice([2, 3])},
    }
    return {"family": family, **rules[family]()}


@register_task
class Sequence(LogicTask):
    name = "sequence"
    description = "give the next term of an integer sequence"
    answer_format = "the next term as an integer, e.g. 42"
    levels = {1: {"families": ["arithmetic"]},
              2: {"families": ["arithmetic", "geometric"]},
              3: {"families": ["quadratic", "fibonacci"]},
              4: {"families": ["interleaved", "affine"]},
              5: {"families": ["cubic", "alternating_ops"]}}

    def generate(self, rng: random.Random, families: list[str] | None = None,
                 extra_terms: int = 3) -> dict[str, Any]:
        names = families or list(FAMILIES)
        unknown = set(names) - set(FAMILIES)
        if unknown:
            raise ValueError(f"sequence families are {sorted(FAMILIES)}")
        family = rng.choice(names)
        rule = _rule(rng, family)
        shown = FAMILIES[family] + max(3, extra_terms)
        terms = sequence_terms(rule, shown + 1)
        question = (f"What is the next term of the sequence {', '.join(map(str, terms[:-1]))}, "
                    "...?")
        return {"question": question, "answer": str(terms[-1]), "sequence": terms[:-1],
                "rule": rule}

    def verify(self, item: dict[str, Any], candidate: str) -> str | None:
        shown = [int(v) for v in item["sequence"]]
        terms = sequence_terms(dict(item["rule"]), len(shown) + 1)
        if terms[:-1] != shown:
            return "the stored rule does not give the shown terms"
        match = re.fullmatch(r"\s*(-?\d+)\s*", candidate.replace(",", ""))
        if match is None:
            return "not an integer"
        if int(match.group(1)) != terms[-1]:
            return f"{match.group(1)} is not the next term"
        return None
