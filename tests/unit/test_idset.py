"""IdSet, the compact "seen before?" set of the source step: agrees with a Python set over
random batches with repeats, within and across batches, and stays at 8 bytes per id."""

from __future__ import annotations

import numpy as np

from synthloom.core.idset import IdSet


def test_agrees_with_a_python_set_over_many_batches() -> None:
    rng = np.random.default_rng(0)
    ids, reference = IdSet(), set()
    for _ in range(300):
        batch = rng.integers(0, 5000, size=64, dtype=np.uint64)  # many repeats
        found = ids.contains(batch)
        assert found.tolist() == [int(x) in reference for x in batch]
        ids.add(batch[~found])
        reference.update(int(x) for x in batch)
    assert len(ids) == len(reference)
    assert len(ids._runs) <= 14  # merged like a binary counter


def test_large_ids_and_memory() -> None:
    ids = IdSet()
    top = np.array([2**64 - 1, 2**63, 1], dtype=np.uint64)
    ids.add(top)
    assert ids.contains(np.array([2**64 - 1, 2, 2**63], dtype=np.uint64)).tolist() == \
        [True, False, True]
    many = IdSet()
    for start in range(0, 200_000, 256):
        many.add(np.arange(start, start + 256, dtype=np.uint64) * 7919)
    assert len(many) == 200_192
    assert sum(run.nbytes for run in many._runs) == 8 * len(many)
