"""Diversity metrics on inputs whose values are known by construction."""

from __future__ import annotations

import numpy as np
import pytest

from synthloom.quality.diversity import (
    c_tf_idf_labels,
    corpus_mtld,
    coverage,
    distinct_n,
    diversity_report,
    mean_pairwise_cosine_distance,
    mtld,
    vendi_score,
)


def test_distinct_n() -> None:
    assert distinct_n(["a b c", "a b d"], 1) == pytest.approx(4 / 6)
    assert distinct_n(["a b c", "a b d"], 2) == pytest.approx(3 / 4)
    assert distinct_n(["same words", "same words"], 2) == pytest.approx(0.5)
    assert distinct_n(["one"], 2) == 0.0


def test_mtld_orders_texts_by_lexical_variety() -> None:
    varied = ("the quick brown fox jumps over a lazy dog while seven curious children "
              "watch from behind an old wooden fence near the quiet river bank")
    assert mtld("cat " * 60) == pytest.approx(2.0)  # one type: a factor every 2 tokens
    assert mtld(varied) > 20
    # By hand: "a b a" has TTR 2/3 <= 0.72, so 16 tokens make 5 full factors and a remainder
    # of one token (TTR 1: no partial factor), both directions: 16 / 5.
    assert mtld(["a", "b"] * 8) == pytest.approx(16 / 5)
    assert corpus_mtld([varied, varied]) < mtld(varied) * 2


def test_vendi_score_counts_effective_distinct_items() -> None:
    eye = np.eye(5)
    assert vendi_score(eye) == pytest.approx(5.0)
    assert vendi_score(np.ones((6, 3))) == pytest.approx(1.0)
    two_groups = np.vstack([np.tile([1.0, 0, 0], (4, 1)), np.tile([0, 1.0, 0], (4, 1))])
    assert vendi_score(two_groups) == pytest.approx(2.0)
    rng = np.random.default_rng(0)
    wide = rng.normal(size=(200, 16))
    assert vendi_score(wide) > vendi_score(wide[:, :2])


def test_coverage_of_a_reference_set() -> None:
    rng = np.random.default_rng(1)
    centres = np.eye(6)  # six far-apart clusters of ten tight points
    reference = np.repeat(centres, 10, axis=0) + rng.normal(scale=0.01, size=(60, 6))
    assert coverage(reference + 1e-3, reference) == pytest.approx(1.0)
    assert coverage(centres[:3], reference) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        coverage(reference, reference[:3])
    assert mean_pairwise_cosine_distance(np.ones((4, 3))) == pytest.approx(0.0)


def test_c_tf_idf_labels_pick_distinctive_words() -> None:
    pytest.importorskip("sklearn", reason="topic labels need synthloom[quality]")
    texts = ["bake bread with yeast", "bread dough and yeast", "git rebase branch",
             "merge the git branch"]
    labels = c_tf_idf_labels(texts, [0, 0, 1, 1], top=2)
    assert set(labels[0]) == {"bread", "yeast"} and set(labels[1]) == {"git", "branch"}


def test_report_has_every_metric() -> None:
    rng = np.random.default_rng(2)
    report = diversity_report(["a b c d", "e f g h"], rng.normal(size=(2, 4)),
                              rng.normal(size=(10, 4)))
    assert set(report) >= {"distinct_1", "distinct_2", "mtld", "vendi_score", "coverage"}
    assert report["distinct_1"] == 1.0
