"""The embedding cache fills one matrix in place: the same vectors, bit for bit and in input
order, as the embedder it wraps, on misses, hits and mixes (a real hashing embedder, a real
SQLite file); sparse rows stored under their own model key; a bad row is an error."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import httpx
import numpy as np
import pytest

from synthloom.llm import embeddings
from synthloom.llm.embeddings import (
    CachedEmbedder,
    HashingEmbedder,
    OpenAIEmbedder,
    pack_row,
    unpack_row,
)

TEXTS = [f"how do i {w} the {v} of {i % 37} {w}s" for i, (w, v) in enumerate(
    zip(["bake", "fold", "mend", "paint", "sort"] * 60, ["bread", "map", "kite", "wall"] * 75,
        strict=True))]


def bits(vectors: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(vectors, dtype=np.float32).view(np.uint32)


def hashing(row_format: str = "sparse") -> HashingEmbedder:
    """The hashing embedder, its rows cached in ``row_format`` (dense: the format before)."""
    inner = HashingEmbedder(dims=2048)
    inner.row_format = row_format
    return inner


def embed(embedder: object, texts: list[str]) -> np.ndarray:
    return asyncio.run(embedder.embed(texts))  # type: ignore[attr-defined]


@pytest.mark.parametrize("row_format", ["sparse", "dense"])
def test_cache_returns_the_inner_vectors_on_misses_hits_and_mixes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, row_format: str) -> None:
    monkeypatch.setattr(embeddings, "MISS_ROWS", 16)  # several miss chunks on a few texts
    texts = [*TEXTS, *TEXTS[:40], "", "ünïcode -- ok"]  # repeats, an empty and odd text
    want = embed(HashingEmbedder(dims=2048), texts)
    cached = CachedEmbedder(hashing(row_format), tmp_path / "e.db")
    half = texts[::2]
    assert np.array_equal(bits(embed(cached, half)), bits(want[::2]))  # all misses
    assert cached.misses == len(set(half)) and cached.hits == 0  # a repeat: one miss
    mixed = texts[::-1]  # half hits, half misses, reversed input order
    got = embed(cached, mixed)
    assert got.dtype == np.float32 and got.flags.c_contiguous and got.shape == want.shape
    assert np.array_equal(bits(got), bits(want[::-1]))
    again = CachedEmbedder(hashing(row_format), tmp_path / "e.db")  # as a new process
    assert np.array_equal(bits(embed(again, texts)), bits(want))
    assert again.misses == 0 and again.hits == len(texts)


def test_sparse_rows_are_small_exact_and_stored_under_their_own_key(tmp_path: Path) -> None:
    vector = np.zeros(2048, dtype=np.float32)
    vector[[0, 7, 2047]] = [0.5, -np.float32(1) / 3, 1e-30]
    vector[9] = -0.0  # a negative zero is a nonzero bit pattern: kept
    blob = pack_row(vector, "sparse", 2048)
    assert len(blob) == 4 * (2 + 4)
    row = np.full(2048, 9.0, dtype=np.float32)
    unpack_row(blob, row, "sparse")
    assert np.array_equal(bits(row), bits(vector))
    assert len(pack_row(vector, "sparse", 100_000)) == 4 * (4 + 4)  # wide rows: 32-bit index

    path = tmp_path / "e.db"
    cached = CachedEmbedder(HashingEmbedder(), path)
    embed(cached, TEXTS[:50])
    with sqlite3.connect(path) as db:
        models = db.execute("SELECT DISTINCT model FROM embeddings").fetchall()
        largest = db.execute("SELECT max(length(vector)) FROM embeddings").fetchone()[0]
    assert models == [("hashing:2048|sparse",)]
    assert largest < 2048 * 4 // 10  # tens of words: a tenth of a dense row at most


def test_rows_of_an_old_dense_cache_are_not_read_as_sparse(tmp_path: Path) -> None:
    path = tmp_path / "e.db"
    old = CachedEmbedder(hashing("dense"), path)
    embed(old, TEXTS[:20])
    cached = CachedEmbedder(HashingEmbedder(), path)
    got = embed(cached, TEXTS[:20])
    assert cached.misses == 20 and cached.hits == 0
    assert np.array_equal(bits(got), bits(embed(HashingEmbedder(), TEXTS[:20])))


@pytest.mark.parametrize("row_format", ["sparse", "dense"])
def test_a_corrupt_cached_row_is_an_error_naming_the_file(tmp_path: Path,
                                                          row_format: str) -> None:
    path = tmp_path / "e.db"
    cached = CachedEmbedder(hashing(row_format), path)
    embed(cached, TEXTS[:5])
    with sqlite3.connect(path) as db:
        db.execute("UPDATE embeddings SET vector = substr(vector, 1, 13) WHERE rowid = 3")
    with pytest.raises(ValueError, match="embedding cache .*e.db.*delete"):
        embed(cached, TEXTS[:5])


def test_misses_are_embedded_in_whole_batches_by_key(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks of misses are a multiple of the model's batch: an endpoint sees the batches one
    call would have sent, in the same order (by key) whatever the input order."""
    monkeypatch.setattr(embeddings, "MISS_ROWS", 8)
    seen: list[list[str]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        texts = json.loads(request.content)["input"]
        seen.append(texts)
        return httpx.Response(200, json={"data": [
            {"index": i, "embedding": [len(t), 1.0, t.count("o") + 0.5]}
            for i, t in enumerate(texts)]})

    def endpoint() -> OpenAIEmbedder:
        return OpenAIEmbedder("http://embed.test/v1", "e5", batch_size=3,
                              transport=httpx.MockTransport(answer))

    texts = TEXTS[:10]
    one = embed(CachedEmbedder(endpoint(), tmp_path / "a.db"), texts)
    assert [len(b) for b in seen] == [3, 3, 3, 1]  # chunks of 6, then 4
    batches, seen[:] = list(seen), []
    other = embed(CachedEmbedder(endpoint(), tmp_path / "b.db"), texts[::-1])
    assert seen == batches
    assert np.array_equal(bits(other), bits(one[::-1]))
    assert np.array_equal(bits(one), bits(embed(endpoint(), texts)))


def test_a_large_result_is_file_backed_and_the_same(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Over SPILL_BYTES the matrix maps an unnamed file in the cache's folder (reclaimable
    pages): the same bits, a plain ndarray to callers, no file left behind."""
    monkeypatch.setattr(embeddings, "SPILL_BYTES", 2048 * 4 * 10)
    cached = CachedEmbedder(hashing(), tmp_path / "e.db")
    small = embed(cached, TEXTS[:10])
    assert not isinstance(small.base, np.memmap)
    for texts in (TEXTS[:100], TEXTS[:200]):  # misses, then hits and misses
        got = embed(cached, texts)
        assert type(got) is np.ndarray and isinstance(got.base, np.memmap)
        assert np.array_equal(bits(got), bits(embed(HashingEmbedder(), texts)))
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("e.db")) == []
