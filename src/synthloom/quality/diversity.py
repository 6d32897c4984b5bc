"""Diversity metrics for a set of texts (plain functions, used by reports and tests).

- ``distinct_n``: unique word n-grams / all word n-grams over the corpus (Li et al., 2016).
- ``mtld``: Measure of Textual Lexical Diversity (McCarthy & Jarvis, 2010), bidirectional,
  factor threshold 0.72; on one text or on the corpus's concatenated tokens.
- ``vendi_score``: exp of the entropy of the eigenvalues of K/n, K the cosine-similarity
  kernel of the embeddings (Friedman & Dieng, 2023): the "effective number" of distinct items.
- ``coverage``: share of reference points (e.g. the seed set) whose k-NN ball in the
  reference set holds at least one generated point (Naeem et al., 2020).
- ``c_tf_idf_labels``: top words per group by class-based TF-IDF (as BERTopic), for topic labels.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from synthloom.quality.text import fold_tokens

MTLD_THRESHOLD = 0.72


def distinct_n(texts: Iterable[str], n: int = 2) -> float:
    """Unique word n-grams / total word n-grams across all texts (0.0 for no n-grams)."""
    seen: set[tuple[str, ...]] = set()
    total = 0
    for text in texts:
        tokens = fold_tokens(text)
        grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
        total += len(grams)
        seen.update(grams)
    return len(seen) / total if total else 0.0


def _mtld_pass(tokens: Sequence[str], threshold: float) -> float:
    factors = 0.0
    types: set[str] = set()
    count = 0
    for token in tokens:
        count += 1
        types.add(token)
        if len(types) / count <= threshold:
            factors += 1
            types, count = set(), 0
    if count:  # partial factor for the remainder
        ttr = len(types) / count
        factors += (1 - ttr) / (1 - threshold) if ttr < 1 else 0.0
    return len(tokens) / factors if factors else float(len(tokens))


def mtld(text_or_tokens: str | Sequence[str], threshold: float = MTLD_THRESHOLD) -> float:
    """MTLD: mean length of token runs keeping type-token ratio above ``threshold``
    (average of the forward and backward passes). Higher is more diverse."""
    tokens = fold_tokens(text_or_tokens) if isinstance(text_or_tokens, str) else list(text_or_tokens)
    if not tokens:
        return 0.0
    return (_mtld_pass(tokens, threshold) + _mtld_pass(tokens[::-1], threshold)) / 2


def corpus_mtld(texts: Iterable[str]) -> float:
    """MTLD of all texts' tokens in order (short texts alone give unstable MTLD values)."""
    tokens: list[str] = []
    for text in texts:
        tokens.extend(fold_tokens(text))
    return mtld(tokens)


def _unit_rows(embeddings: np.ndarray) -> np.ndarray:
    x = np.asarray(embeddings, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def vendi_score(embeddings: np.ndarray) -> float:
    """Vendi score with the cosine kernel: 1 for identical items, n for orthogonal ones."""
    x = _unit_rows(embeddings)
    n = len(x)
    if n == 0:
        return 0.0
    # K/n = X X^T / n has the same non-zero eigenvalues as X^T X / n (d x d: cheaper).
    gram = (x.T @ x) / n if x.shape[1] < n else (x @ x.T) / n
    eig = np.clip(np.linalg.eigvalsh(gram), 0.0, None)
    eig = eig[eig > 1e-12]
    return float(math.exp(-np.sum(eig * np.log(eig))))


def coverage(embeddings: np.ndarray, reference: np.ndarray, k: int = 5) -> float:
    """Share of ``reference`` points with a generated point inside their k-NN radius
    (cosine distance to the k-th nearest other reference point)."""
    gen, ref = _unit_rows(embeddings), _unit_rows(reference)
    if len(ref) <= k or len(gen) == 0:
        raise ValueError(f"coverage needs more than k={k} reference points and some embeddings")
    ref_dist = 1.0 - ref @ ref.T
    np.fill_diagonal(ref_dist, np.inf)
    radius = np.partition(ref_dist, k - 1, axis=1)[:, k - 1]
    nearest_gen = (1.0 - ref @ gen.T).min(axis=1)
    return float(np.mean(nearest_gen <= radius))


def mean_pairwise_cosine_distance(embeddings: np.ndarray) -> float:
    """Average 1 - cosine over distinct pairs (a simple spread measure)."""
    x = _unit_rows(embeddings)
    n = len(x)
    if n < 2:
        return 0.0
    total = float(np.sum(x @ x.T)) - n  # minus the diagonal of ones
    return 1.0 - total / (n * (n - 1))


def c_tf_idf_labels(texts: Sequence[str], groups: Sequence[int], top: int = 4,
                    ) -> dict[int, list[str]]:
    """Top ``top`` words of each group by c-TF-IDF: tf(word, group) * log(1 + A / f(word)),
    A the mean word count per group, f the word's count over all groups (English stop words
    and tokens without letters left out)."""
    try:
        from sklearn.feature_extraction.text import CountVectorizer
    except ImportError as exc:
        raise ImportError('topic labels need scikit-learn: pip install "scikit-learn>=1.4"'
                          ) from exc
    labels = sorted(set(groups))
    docs = {g: [] for g in labels}
    for text, g in zip(texts, groups, strict=True):
        docs[g].append(text)
    joined = [" ".join(docs[g]) for g in labels]
    vectorizer = CountVectorizer(stop_words="english", token_pattern=r"(?u)\b[^\W\d_]{2,}\b")
    try:
        counts = vectorizer.fit_transform(joined)
    except ValueError:  # only stop words
        return {g: [] for g in labels}
    vocab = vectorizer.get_feature_names_out()
    # Sparse throughout: a dense groups x vocabulary matrix was 7 GB at 100k texts.
    counts = counts.tocsr().astype(np.float64)
    row_sums = np.asarray(counts.sum(axis=1)).ravel()
    avg_words = float(row_sums.sum()) / len(labels)
    col_sums = np.asarray(counts.sum(axis=0)).ravel()
    idf = np.log(1 + avg_words / np.maximum(col_sums, 1))
    out: dict[int, list[str]] = {}
    for row, g in enumerate(labels):
        lo, hi = counts.indptr[row], counts.indptr[row + 1]
        cols = counts.indices[lo:hi]
        scores = counts.data[lo:hi] / max(row_sums[row], 1) * idf[cols]
        # Best score first, ties by vocabulary order (as a stable sort of the dense row).
        order = np.lexsort((cols, -scores))[:top]
        out[g] = [str(vocab[cols[i]]) for i in order if scores[i] > 0]
    return out


def diversity_report(texts: Sequence[str], embeddings: np.ndarray | None = None,
                     reference: np.ndarray | None = None) -> dict[str, Any]:
    """All metrics at once (embedding metrics only when embeddings are given)."""
    report: dict[str, Any] = {
        "n": len(texts),
        "distinct_1": distinct_n(texts, 1),
        "distinct_2": distinct_n(texts, 2),
        "distinct_3": distinct_n(texts, 3),
        "mtld": corpus_mtld(texts),
        "mean_words": (sum(len(fold_tokens(t)) for t in texts) / len(texts)) if texts else 0.0,
    }
    if embeddings is not None and len(embeddings):
        report["vendi_score"] = vendi_score(embeddings)
        report["mean_pairwise_cosine_distance"] = mean_pairwise_cosine_distance(embeddings)
        if reference is not None and len(reference) > 5:
            report["coverage"] = coverage(embeddings, reference)
    return report

