"""Vectorised MinHash + LSH banding (numpy), the engine behind ``dedup_minhash``.

Why not datasketch's ``MinHash.update`` per shingle: it hashes each shingle with SHA-1 and
applies the permutations one shingle at a time in Python. Here a batch of documents is hashed
at once: words are hashed once each (memoised), word n-gram hashes are combined with uint64
arithmetic, and the ``num_perm`` permutations are multiply-shift hashes ``(a*h + b) >> 32``
applied to a whole (shingles x permutations) block, reduced per document with
``np.minimum.reduceat``. LSH parameters (bands x rows) are chosen like datasketch's
``_optimal_param`` (weighted false-positive / false-negative areas, weighted towards recall),
and candidates are verified by the signatures' estimated Jaccard before a record is called a
duplicate.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from synthloom.quality.text import WordHasher, fold_tokens, mix64, ngram_hashes

_MAX32 = np.uint32(0xFFFFFFFF)
#: (false-positive, false-negative) weights for choosing LSH bands x rows.
RECALL_WEIGHTS = (0.1, 0.9)
#: Rows of the (shingles x permutations) block computed at once (x num_perm x 8 bytes).
_BLOCK_ROWS = 2048


def optimal_bands(threshold: float, num_perm: int, fp_weight: float = 0.5,
                  fn_weight: float = 0.5) -> tuple[int, int]:
    """(bands, rows) with bands*rows <= num_perm minimising the weighted FP + FN areas under
    the LSH S-curve ``1 - (1 - s^r)^b`` (the same objective as datasketch)."""
    grid_lo = np.linspace(0.0, threshold, 201)
    grid_hi = np.linspace(threshold, 1.0, 201)
    best, best_err = (1, num_perm), float("inf")
    for bands in range(1, num_perm + 1):
        for rows in range(1, num_perm // bands + 1):
            p_lo = 1 - (1 - grid_lo**rows) ** bands
            p_hi = 1 - (1 - grid_hi**rows) ** bands
            fp = np.trapezoid(p_lo, grid_lo)
            fn = np.trapezoid(1 - p_hi, grid_hi)
            err = fp_weight * fp + fn_weight * fn
            if err < best_err:
                best, best_err = (bands, rows), err
    return best


class MinHasher:
    """Signatures of many texts at once: ``signatures(texts) -> (n, num_perm) uint32``.

    A text without words gets an all-0xFFFFFFFF signature; ``shingle_counts`` tells which.
    """

    def __init__(self, num_perm: int = 128, ngram: int = 5, seed: int = 1) -> None:
        if num_perm < 2 or ngram < 1:
            raise ValueError("num_perm must be >= 2 and ngram >= 1")
        rng = np.random.default_rng(seed)
        self.num_perm = num_perm
        self.ngram = ngram
        # Odd multipliers make ``a*h`` a bijection mod 2^64; the top 32 bits are the hash.
        self._a = rng.integers(1, 2**63, size=num_perm, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
        self._b = rng.integers(0, 2**63, size=num_perm, dtype=np.uint64)
        self._words = WordHasher()

    def shingles(self, text: str) -> np.ndarray:
        """Hashes of the text's word n-grams (normalised words)."""
        return ngram_hashes(self._words.hash_words(fold_tokens(text)), self.ngram)

    def signatures(self, texts: list[str]) -> np.ndarray:
        shingle_sets = [self.shingles(t) for t in texts]
        self.shingle_counts = np.array([len(s) for s in shingle_sets], dtype=np.int64)
        return self.signatures_from_shingles(shingle_sets)

    def signatures_from_shingles(self, shingle_sets: list[np.ndarray]) -> np.ndarray:
        n = len(shingle_sets)
        sigs = np.full((n, self.num_perm), _MAX32, dtype=np.uint32)
        counts = np.array([len(s) for s in shingle_sets], dtype=np.int64)
        if n == 0 or counts.sum() == 0:
            return sigs
        flat = np.concatenate([s for s in shingle_sets if len(s)])
        owner = np.repeat(np.arange(n), counts)
        a, b = self._a[None, :], self._b
        # One reusable block, small enough to stay in cache; in-place ops avoid temporaries.
        buf = np.empty((min(_BLOCK_ROWS, len(flat)), self.num_perm), dtype=np.uint64)
        for start in range(0, len(flat), _BLOCK_ROWS):
            block = flat[start : start + _BLOCK_ROWS]
            docs = owner[start : start + _BLOCK_ROWS]
            values = buf[: len(block)]
            with np.errstate(over="ignore"):
                np.multiply(block[:, None], a, out=values)
                values += b
            values >>= np.uint64(32)
            # Segment starts where the owning document changes inside this block.
            cuts = np.flatnonzero(np.r_[True, docs[1:] != docs[:-1]])
            mins = np.minimum.reduceat(values.astype(np.uint32), cuts, axis=0)
            rows = docs[cuts]
            sigs[rows] = np.minimum(sigs[rows], mins)
        return sigs


def band_keys(sigs: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """One uint64 key per (document, band): the band's ``rows`` values hashed together."""
    n = sigs.shape[0]
    used = sigs[:, : bands * rows].astype(np.uint64).reshape(n, bands, rows)
    acc = np.zeros((n, bands), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(rows):
            acc = acc * np.uint64(0x100000001B3) + used[:, :, j]
        # The band index is mixed in so equal values in different bands never collide.
        return mix64(acc ^ np.arange(bands, dtype=np.uint64)[None, :])


@dataclass
class LSHIndex:
    """Banded LSH over MinHash signatures; ``find_or_add`` is query-then-insert for one doc."""

    threshold: float
    num_perm: int
    bands: int = 0
    rows: int = 0
    _buckets: list[dict[int, list[int]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.bands or not self.rows:
            # Candidates are verified by their estimated Jaccard, so a false positive costs
            # one comparison while a false negative is a duplicate kept: favour recall.
            self.bands, self.rows = optimal_bands(self.threshold, self.num_perm,
                                                  RECALL_WEIGHTS[0], RECALL_WEIGHTS[1])
        self._buckets = [{} for _ in range(self.bands)]

    def keys(self, sigs: np.ndarray) -> np.ndarray:
        return band_keys(sigs, self.bands, self.rows)

    def candidates(self, keys: np.ndarray) -> set[int]:
        found: set[int] = set()
        for bucket, key in zip(self._buckets, keys.tolist(), strict=True):
            hit = bucket.get(key)
            if hit:
                found.update(hit)
        return found

    def add(self, index: int, keys: np.ndarray) -> None:
        for bucket, key in zip(self._buckets, keys.tolist(), strict=True):
            bucket.setdefault(key, []).append(index)


def find_near_duplicates(sigs: np.ndarray, valid: np.ndarray, threshold: float,
                         seeded: int = 0, bands: int = 0, rows: int = 0,
                         ) -> list[tuple[int, float] | None]:
    """For each row of ``sigs`` (in order): ``(index of an earlier kept row, estimated
    Jaccard)`` when it is a near-duplicate, else None (kept, and indexed for later rows).

    The first ``seeded`` rows (records accepted earlier) are indexed without being judged;
    rows with ``valid`` False (no shingles) are kept and never indexed.
    """
    index = LSHIndex(threshold, sigs.shape[1], bands, rows)
    keys = index.keys(sigs)
    out: list[tuple[int, float] | None] = []
    for i in range(sigs.shape[0]):
        if not valid[i]:
            out.append(None)
            continue
        if i >= seeded:
            found = index.candidates(keys[i])
            if found:
                cands = np.sort(np.fromiter(found, dtype=np.int64, count=len(found)))
                sims = (sigs[cands] == sigs[i]).mean(axis=1)
                best = int(np.argmax(sims))
                if sims[best] >= threshold:
                    out.append((int(cands[best]), float(sims[best])))
                    continue
        index.add(i, keys[i])
        out.append(None)
    return out[seeded:]
