"""Consistent hashing over a context pool (demos, filler segments): small blast radius.

A step that picks a few items of a large ``context:`` pool per record (SynthQuestions' demos,
IN2's filler segments) places every pool item on a ring at the hash of its *content* and lets
each record walk the ring from the hash of its own anchor. What a record picks then depends
only on the record and the items next to its anchor: one item added to the pool changes the
picks of the records whose walked window covers its position (about window / pool of them),
not of every record as a whole-pool shuffle does. A walk looks at O(window) items, never the
whole pool.

Positions come from content (not record ids): an upstream change that only renames records
(new parents, new ids) moves nothing.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_left
from collections.abc import Callable, Iterator
from typing import Any


def ring_point(text: str) -> int:
    """A 64-bit position on the ring."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "big")


class HashRing:
    """Pool items sorted by the ring position of their content keys."""

    __slots__ = ("keys", "_order", "_points")

    def __init__(self, keys: list[str]) -> None:
        self.keys = keys  # content key per pool index
        points = [ring_point(k) for k in keys]
        # Equal content gives equal points: ties keep pool order (deterministic for one pool).
        self._order = sorted(range(len(keys)), key=points.__getitem__)
        self._points = [points[i] for i in self._order]

    def __len__(self) -> int:
        return len(self.keys)

    def walk(self, anchor: str) -> Iterator[int]:
        """Pool indices clockwise from ``anchor``'s position, each once (lazily: a caller
        that stops early pays only for what it looked at)."""
        n = len(self._order)
        if not n:
            return
        start = bisect_left(self._points, ring_point(anchor))
        for j in range(n):
            yield self._order[(start + j) % n]


class RingCache:
    """The ring of one pool list, built once and rebuilt when another list (or a longer or
    shorter one) comes. Holds the list, so its identity cannot be reused while cached."""

    def __init__(self, key_of: Callable[[dict[str, Any]], str]) -> None:
        self.key_of = key_of
        self._pool: list[dict[str, Any]] | None = None
        self._length = -1
        self._ring = HashRing([])

    def get(self, pool: list[dict[str, Any]]) -> HashRing:
        if pool is not self._pool or len(pool) != self._length:
            self._ring = HashRing([self.key_of(item) for item in pool])
            self._pool, self._length = pool, len(pool)
        return self._ring
