"""dedup_semantic above ``CELLS_ABOVE`` rows: neighbours at >= the threshold from k-means cells
(quality/cells.py) instead of usearch, against all-pairs search; its determinism; ``ann``."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from synthloom.core.context import RunContext
from synthloom.core.records import make_record
from synthloom.quality import cells
from synthloom.quality import vectors as vec
from synthloom.quality.dedup import SemanticDedup

EMBEDDER = "hashing:384"


def texts_with_copies(n: int, seed: int) -> list[str]:
    """Short random texts, 10 % of them an earlier-or-later text with one word changed (the
    hard case for a partition: hashing vectors of short texts are nearly orthogonal)."""
    rng = np.random.default_rng(seed)
    words = np.array([f"w{i}" for i in range(3_000)])
    texts = [" ".join(rng.choice(words, size=int(rng.integers(8, 25)))) for _ in range(n)]
    for i in rng.choice(n, size=n // 10, replace=False).tolist():
        tokens = texts[int(rng.integers(n))].split()
        tokens[int(rng.integers(len(tokens)))] = str(rng.choice(words))
        texts[i] = " ".join(tokens)
    return texts


def embed(texts: list[str]) -> np.ndarray:
    from synthloom.llm.embeddings import resolve_embedder

    return np.asarray(asyncio.run(resolve_embedder(EMBEDDER).embed(texts)), np.float32)


def decisions(vectors: np.ndarray, ann: vec.ThresholdAnn, threshold: float = 0.9,
              ) -> list[tuple[int, float] | None]:
    return vec.greedy_duplicates(*vec.neighbours_above(vectors, 16, threshold, ann), threshold)


def test_cells_decide_as_all_pairs_on_nearly_every_row() -> None:
    vectors = embed(texts_with_copies(7_000, seed=5))
    assert len(vectors) > vec.CELLS_ABOVE  # auto searches the cells here
    assert round(len(vectors) / cells.CELL_SIZE) > cells.PROBES  # not every cell probed
    exact, ours = decisions(vectors, "exact"), decisions(vectors, "cells")
    assert decisions(vectors.copy(), "auto") == ours  # deterministic, and auto's choice
    dropped = [i for i, m in enumerate(exact) if m is not None]
    assert len(dropped) > 300
    same = np.mean([(a is None) == (b is None) for a, b in zip(exact, ours, strict=True)])
    assert same >= 0.99
    for i, match in enumerate(ours):  # every drop a true one: an earlier row, exact cosine
        if match is not None:
            j, cosine = match
            assert j < i and cosine >= 0.9
            assert abs(float(vectors[i] @ vectors[j]) - cosine) < 1e-5
    # below-threshold slots are empty on every path (the exact one masks them)
    idx, sims = vec.neighbours_above(vectors[:500], 16, 0.9, "exact")
    assert ((sims >= 0.9) | ((idx == -1) & (sims == -np.inf))).all()


def test_the_step_is_deterministic_and_auto_switches_at_the_limit(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    texts = texts_with_copies(1_500, seed=8)
    records = [make_record({"text": t}, step="x") for t in texts]
    ctx = RunContext(run_dir=tmp_path)

    def run(ann: str) -> list[str | None]:
        step = SemanticDedup(name="semantic", embedder=EMBEDDER, ann=ann)
        return [r.dropped for r in asyncio.run(step.process_all(records, ctx))]

    monkeypatch.setattr(vec, "CELLS_ABOVE", 1_000)  # 1,500 rows: three cells, searched as cells
    first = run("auto")
    assert sum(r is not None for r in first) > 50
    assert run("auto") == first == run("cells")  # same reasons: same kept records, cosines
    monkeypatch.setattr(vec, "CELLS_ABOVE", 2_000)
    assert run("auto") == run("exact")


def test_ann_setting_is_validated() -> None:
    assert SemanticDedup(name="s", ann="cells").config.ann == "cells"
    with pytest.raises(Exception, match="ann"):
        SemanticDedup(name="s", ann="hnsw")


def test_magpie_repeats_from_cells_are_the_exact_ones() -> None:
    """magpie_distance above the limit: the same repeat counts and earliest repeats as all-pairs
    search; ``min_neighbor_distance`` is the nearest in the probed cells (never closer than
    the true one, and the true one wherever a repeat exists)."""
    from synthloom.methods.magpie.tags import MagpieDistance, neighbour_tags

    texts = texts_with_copies(6_000, seed=7)
    rng = np.random.default_rng(2)
    for i in rng.choice(6_000, size=300, replace=False).tolist():  # exact repeats
        texts[i] = texts[int(rng.integers(6_000))]
    vectors = embed(texts)
    exact = neighbour_tags(vectors, 0.05, 20, "exact")
    ours = neighbour_tags(vectors, 0.05, 20, "auto")
    assert ours == neighbour_tags(vectors.copy(), 0.05, 20, "cells")  # auto's choice; same
    assert sum(e[1] > 0 for e in exact) > 400
    assert [o[1:] for o in ours] == [e[1:] for e in exact]
    for (d_exact, count, _), (d_ours, _, _) in zip(exact, ours, strict=True):
        assert d_exact is not None and d_ours is not None and d_ours >= d_exact - 1e-6
        if count:
            assert abs(d_ours - d_exact) < 1e-6
    assert MagpieDistance(name="d", ann="cells").config.ann == "cells"


def greedy_by_brute_force(vectors: np.ndarray, threshold: float, seeded: int) -> list[bool]:
    """Row i (after the seeds) is a duplicate when any earlier kept row is at >= threshold."""
    full = vectors @ vectors.T
    kept: list[int] = list(range(seeded))
    out = []
    for i in range(seeded, len(vectors)):
        hit = bool(kept) and bool((full[i, kept] >= threshold).any())
        out.append(hit)
        if not hit:
            kept.append(i)
    return out


@pytest.mark.parametrize("ann", ["exact", "cells"])
def test_more_identical_copies_than_neighbours_share_their_first_copy_fate(ann: str) -> None:
    """Copies of a dropped row fill every neighbour slot with dropped rows: each still goes as
    a duplicate of the kept row (greedy over all pairs), and copies of a seed go too."""
    rng = np.random.default_rng(4)
    base = rng.normal(size=(300, 32))
    a = base[5]
    b = a + rng.normal(scale=0.1, size=32)  # near a: dropped as its duplicate
    rows = np.vstack([base[:2], base[2:3].repeat(3, 0), base[3:], np.tile(b, (40, 1)),
                      base[7:8].repeat(20, 0)])
    vectors = (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)
    truth = greedy_by_brute_force(vectors, 0.9, seeded=10)
    found = vec.duplicates(vectors, 0.9, 4, ann, seeded=10)
    assert [m is not None for m in found] == truth
    assert sum(truth) == 40 + 20  # the copies of base[2] (rows 3, 4) are seeds: not judged
    assert found[-1] == (9, pytest.approx(1.0, abs=1e-6))  # base[7]: the seed at row 9
    b_rows = found[302 - 10 : 342 - 10]
    assert all(m is not None and m[0] == 7 for m in b_rows)  # a (base[5]) is row 7
