"""Difficulty levels as users write them, for the rule-generated task families."""

from __future__ import annotations

from collections.abc import Collection


def parse_levels(value: int | str | list[int], known: Collection[int]) -> list[int]:
    """``3``, ``"mix"`` (all known levels in turn), ``"1-3"``, ``"1,4"`` or ``[1, 4]`` → levels."""
    if isinstance(value, bool):
        raise ValueError("difficulty must be a level, a range, a list or 'mix'")
    if isinstance(value, int):
        levels = [value]
    elif isinstance(value, list):
        levels = [int(v) for v in value]
    elif value.strip().lower() == "mix":
        levels = sorted(known)
    elif "-" in value:
        low, high = (int(v) for v in value.split("-", 1))
        levels = list(range(low, high + 1))
    else:
        levels = [int(v) for v in value.split(",")]
    if not levels or any(v not in known for v in levels):
        raise ValueError(f"difficulty levels are {min(known)}-{max(known)}; got {value!r}")
    return levels
