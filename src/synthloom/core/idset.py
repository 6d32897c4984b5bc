"""A compact set of 64-bit ids for "seen before?" checks over millions of items.

Sorted numpy runs merged like a binary counter (a log-structured set): 8 bytes per id instead of
~60 for a Python set of ints, membership by binary search in each run (at most log2(N / batch)
runs). Built for batch use: the source step checks and adds one batch at a time.
"""

from __future__ import annotations

import numpy as np


class IdSet:
    def __init__(self) -> None:
        self._runs: list[np.ndarray] = []  # sorted, unique, sizes strictly decreasing

    def __len__(self) -> int:
        return sum(len(run) for run in self._runs)

    def contains(self, ids: np.ndarray) -> np.ndarray:
        """A boolean per id: already in the set."""
        found = np.zeros(len(ids), dtype=bool)
        for run in self._runs:
            at = np.searchsorted(run, ids)
            inside = at < len(run)
            found[inside] |= run[at[inside]] == ids[inside]
        return found

    def add(self, ids: np.ndarray) -> None:
        """Add ids not in the set yet (the caller checked with ``contains``)."""
        run = np.unique(ids.astype(np.uint64))
        # Merge while the newest run is at least as long as the one before: O(N log N) in all.
        # Concatenate + stable sort (timsort merges two sorted runs in O(n)) rather than
        # np.union1d, whose ~4 temporary copies were the run's memory high-water mark
        # (benchmarks/memory.py --trace); ids added are new, so there is nothing to dedupe.
        while self._runs and len(self._runs[-1]) <= len(run):
            run = np.concatenate((self._runs.pop(), run))
            run.sort(kind="stable")
        self._runs.append(run)
