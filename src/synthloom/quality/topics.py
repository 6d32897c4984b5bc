"""Topic clustering and selection over embeddings, as global steps.

- ``cluster_topics``: embeds ``column``, clusters (k-means or agglomerative, scikit-learn;
  or BERTopic's pipeline, UMAP then HDBSCAN, with the ``topics`` extra), adds ``topic`` (int;
  0 = largest topic) and ``topic_label`` (top c-TF-IDF words). Above ``sample_size`` rows the
  clustering and labels are fitted on a seeded sample (chosen by record id hash) and every
  record is assigned to its nearest topic centroid in batches (in actors on Ray), so no more
  than the sample's vectors are ever in memory.
- ``select_per_topic``: keeps ``target`` records, round-robin over topics, best score first
  in each topic (equal scores in a seeded random order); every other record is dropped with
  its topic, rank and score in the reason.
- ``semantic_communities``: embedding community detection (cosine >= threshold, as
  sentence-transformers' ``community_detection``, on a nearest-neighbour graph): one record
  kept per community, outliers kept; the others are dropped naming the kept record and their
  cosine to it.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import warnings
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from synthloom.core.context import RunContext
from synthloom.core.errors import SynthloomError
from synthloom.core.records import META, ItemResult, Output, rid
from synthloom.core.registry import register_step
from synthloom.core.scaleout import map_batches
from synthloom.core.steps import GlobalStep, StepConfig
from synthloom.llm.embeddings import EmbedderConfig, resolve_embedder
from synthloom.quality.diversity import c_tf_idf_labels
from synthloom.quality.spread import CachedRows, CacheReader, spread_communities
from synthloom.quality.text import text_of
from synthloom.quality.threads import limited, run_limited
from synthloom.quality.vectors import communities


def _keep() -> ItemResult:
    return ItemResult(outputs=[Output(columns={})])


async def _embed_column(records: list[dict[str, Any]], column: str | list[str],
                        embedder: EmbedderConfig, ctx: RunContext,
                        ) -> tuple[list[int], list[str], np.ndarray, list[ItemResult | None]]:
    """(positions of records with text, their texts, vectors, per-record failures)."""
    results: list[ItemResult | None] = [None] * len(records)
    positions, texts = [], []
    for i, record in enumerate(records):
        try:
            texts.append(text_of(record, column))
            positions.append(i)
        except KeyError as exc:
            results[i] = ItemResult.failure(exc)
    if not texts:
        return positions, texts, np.zeros((0, 0), dtype=np.float32), results
    return positions, texts, await _embed_texts(texts, embedder, ctx), results


async def _embed_texts(texts: list[str], embedder: EmbedderConfig, ctx: RunContext) -> np.ndarray:
    model = resolve_embedder(embedder, ctx.run_dir)
    try:
        return await model.embed(texts)
    finally:
        await model.aclose()


#: Above this many rows k-means runs on mini-batches (``MiniBatchKMeans``, 3 inits).
MINIBATCH_ABOVE = 5_000
#: Records per batch when assigning records to the centroids fitted on a sample.
ASSIGN_BATCH = 4_096


def id_hash(seed: int, record_id: str) -> int:
    """A record's place in the fit sample: depends on its id and the seed only, never on the
    order records arrive in (a resumed or Ray run samples the same rows)."""
    digest = hashlib.blake2b(f"{seed}\0{record_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def renumber(raw: np.ndarray) -> np.ndarray:
    """Topic codes renumbered so topic 0 is the largest (ties: first seen)."""
    values, first, inverse, sizes = np.unique(np.asarray(raw), return_index=True,
                                              return_inverse=True, return_counts=True)
    order = np.lexsort((first, -sizes))  # largest first, ties: first seen
    codes = np.empty(len(values), dtype=np.int64)
    codes[order] = np.arange(len(values))
    return codes[inverse.ravel()]


def nearest(vectors: np.ndarray, centroids: np.ndarray, metric: str) -> np.ndarray:
    """Index of each row's nearest centroid: euclidean (k-means' ``predict``) or cosine."""
    vectors = np.asarray(vectors, dtype=np.float32)
    if metric == "cosine":
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return np.argmax((vectors / np.where(norms == 0, 1, norms)) @ centroids.T, axis=1)
    # |x - c|^2 = |x|^2 - 2 x.c + |c|^2; |x|^2 is the same for every centroid of a row.
    scores = vectors @ centroids.T * -2.0 + (centroids ** 2).sum(axis=1)
    return np.argmin(scores, axis=1)


class _Assign(CacheReader):
    """Nearest centroid for a batch of texts, embedded through the run's embedding cache
    (filled before the barrier on Ray). Picklable: it runs in actors (``CacheReader``)."""

    def __init__(self, centroids: np.ndarray, metric: str, embedder: EmbedderConfig,
                 run_dir: str) -> None:
        super().__init__(embedder, run_dir)
        self.centroids, self.metric = centroids, metric

    def __call__(self, texts: list[str]) -> np.ndarray:
        return nearest(self.vectors(texts), self.centroids, self.metric).astype(np.int32)


def auto_topics(n: int) -> int:
    """Default topic count: about sqrt(n/2), at least 2 (and never above n). No upper cap:
    a million instructions get ~700 topics, as topic-diverse selection at scale needs."""
    return max(1, min(n, max(2, round(math.sqrt(n / 2)))))



def round_robin_order(idx: np.ndarray, topic: np.ndarray, scores: np.ndarray,
                      unscored: np.ndarray, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(positions into ``idx`` in selection order, each position's rank within its topic):
    every topic's best first, then every topic's second, ...; scored before unscored, ties in
    a seeded random order. Two sorts, O(n log n). ``topic`` holds dense topic codes;
    ``scores``/``unscored`` are per record."""
    ties = np.random.default_rng(seed).permutation(n)[idx]
    key = (ties, -scores[idx], unscored[idx])
    order = np.lexsort((*key, topic))  # by topic, then rank key
    sizes = np.bincount(topic)
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    depth = np.empty(len(idx), dtype=np.int64)
    depth[order] = np.arange(len(idx)) - starts[topic[order]]
    return np.lexsort((*key, depth)), depth

class ClusterConfig(StepConfig):
    #: Column embedded (a list: the columns joined by newlines).
    column: str | list[str] = "text"
    #: The embedding model: a spec string, or a mapping (spec, model, batch_size, cache, ...).
    embedder: EmbedderConfig = EmbedderConfig()
    #: Number of topics (default: about sqrt(n/2), at least 2; kmeans/agglomerative only).
    n_topics: int | None = Field(default=None, ge=1)
    #: ``hdbscan`` (scikit-learn >= 1.3) runs HDBSCAN on the raw vectors and finds the number
    #: of topics itself; its outliers (-1) become one more topic, numbered like the others.
    #: ``bertopic``: BERTopic's pipeline -- UMAP (5 dimensions, cosine, 15 neighbours) then
    #: HDBSCAN, each outlier reassigned to the topic whose centroid is nearest in the
    #: embedding space (BERTopic's ``reduce_outliers(strategy="embeddings")``); needs the
    #: ``topics`` extra (umap-learn); deterministic with ``seed``.
    algorithm: Literal["kmeans", "agglomerative", "hdbscan", "bertopic"] = "kmeans"
    #: Smallest HDBSCAN topic (hdbscan, bertopic; default: max(5, n/200)).
    min_topic_size: int | None = Field(default=None, ge=2)
    #: Words in each topic label.
    label_words: int = Field(default=4, ge=1)
    #: Column written with the record's topic number.
    topic_column: str = "topic"
    #: Column written with the topic's label (its top c-TF-IDF words).
    label_column: str = "topic_label"
    #: Seed of the clustering, the UMAP projection and the sample.
    seed: int = 0
    #: Above this many rows the clustering (and the c-TF-IDF labels) is fitted on a sample of
    #: this size, chosen by a seeded hash of the record ids, and every record is assigned to
    #: its nearest topic centroid (euclidean for kmeans, cosine to the members' mean unit
    #: vector otherwise), in batches (in actors on Ray). Memory: sample x dims float32 (400 MB
    #: at 50k with 2,048 dims). At or below it: every row is clustered, as before.
    sample_size: int = Field(default=50_000, ge=2)
    threads: int | None = Field(
        default=None, ge=1,
        description="OpenMP/BLAS threads (and usearch's) for the numeric work; default: half "
                    "the CPUs this process may use, at least 1 (idle pools busy-wait and "
                    "starve the rest of the run). Not in the fingerprint.")

    wiring: ClassVar[frozenset[str]] = StepConfig.wiring | {"threads"}


@register_step
class ClusterTopics(GlobalStep):
    """Adds a topic id and a keyword label to every record."""

    type_name = "cluster_topics"
    Config = ClusterConfig
    config: ClusterConfig

    def reads(self) -> list[str]:
        column = self.config.column
        return [column] if isinstance(column, str) else list(column)

    async def prepare(self, records: list[dict[str, Any]], ctx: RunContext) -> None:
        """Embed one batch into the run's embedding cache (Ray: in actors, before the barrier;
        core/scaleout.py ``PreparesInParallel``): ``process_all`` then reads the vectors."""
        if self.config.embedder.cache:  # without the cache the barrier embeds again
            await _embed_column(records, self.config.column, self.config.embedder, ctx)

    async def process_all(self, records: list[dict[str, Any]], ctx: RunContext,
                          ) -> list[ItemResult]:
        cfg = self.config
        if len(records) > cfg.sample_size:
            return await self.sampled(records, ctx)
        positions, texts, vectors, results = await _embed_column(
            records, cfg.column, cfg.embedder, ctx)
        if texts:
            topics = await asyncio.to_thread(run_limited, cfg.threads, self.cluster, vectors)
            labels = await asyncio.to_thread(run_limited, cfg.threads, c_tf_idf_labels, texts,
                                             topics.tolist(), cfg.label_words)
            for pos, topic in zip(positions, topics.tolist(), strict=True):
                label = ", ".join(labels.get(topic, [])) or f"topic {topic}"
                results[pos] = ItemResult(outputs=[Output(
                    columns={cfg.topic_column: int(topic), cfg.label_column: label})])
        return results  # type: ignore[return-value]

    async def sampled(self, records: Sequence[dict[str, Any]], ctx: RunContext,
                      sample: np.ndarray | None = None) -> list[ItemResult]:
        """Fit on a sample, assign every record to its nearest centroid. ``sample``: the
        positions to fit on (default: the ``sample_size`` records with text whose id hash is
        smallest, in hash order). Reads ``records`` three times, holding one batch at a time
        beside the sample; the topics of a record depend on its id, its text and the sample
        only, not on the order of ``records``."""
        cfg = self.config
        n = len(records)
        results: list[ItemResult | None] = [None] * n
        keys = np.zeros(n, dtype=np.uint64)
        has_text = np.zeros(n, dtype=bool)
        for i, record in enumerate(records):
            try:
                text_of(record, cfg.column)
                has_text[i] = True
            except KeyError as exc:
                results[i] = ItemResult.failure(exc)
            keys[i] = id_hash(cfg.seed, rid(record))
        with_text = np.flatnonzero(has_text)
        if not len(with_text):
            return results  # type: ignore[return-value]
        if sample is None:
            size = min(cfg.sample_size, len(with_text))
            chosen = with_text[np.argpartition(keys[with_text], size - 1)[:size]]
            sample = chosen[np.argsort(keys[chosen], kind="stable")]
        del keys
        sample_texts = [text_of(records[int(i)], cfg.column) for i in sample]
        vectors = await _embed_texts(sample_texts, cfg.embedder, ctx)
        k = min(len(sample), cfg.n_topics or auto_topics(len(with_text)))
        centroids, metric = await asyncio.to_thread(run_limited, cfg.threads, self.fit,
                                                    vectors, k)
        del vectors
        assign = _Assign(centroids, metric, cfg.embedder, str(ctx.run_dir))
        raw = np.full(n, -1, dtype=np.int32)
        raw[with_text] = await asyncio.to_thread(
            run_limited, cfg.threads, self._assign_all, assign, records, with_text)
        topics = renumber(raw[with_text])
        topic_of = np.full(n, -1, dtype=np.int64)
        topic_of[with_text] = topics
        labels = await asyncio.to_thread(run_limited, cfg.threads, c_tf_idf_labels,
                                         sample_texts, topic_of[sample].tolist(),
                                         cfg.label_words)
        for pos in with_text.tolist():
            topic = int(topic_of[pos])
            label = ", ".join(labels.get(topic, [])) or f"topic {topic}"
            results[pos] = ItemResult(outputs=[Output(
                columns={cfg.topic_column: topic, cfg.label_column: label})])
        return results  # type: ignore[return-value]

    def _assign_all(self, assign: _Assign, records: Sequence[dict[str, Any]],
                    positions: np.ndarray) -> np.ndarray:
        column = self.config.column
        chunks = [positions[i:i + ASSIGN_BATCH] for i in range(0, len(positions), ASSIGN_BATCH)]

        def texts() -> Iterator[list[str]]:  # read lazily: one batch in hand per worker
            for chunk in chunks:
                yield [text_of(records[int(i)], column) for i in chunk]

        try:
            out = [np.asarray(labels) for labels in map_batches(assign, texts())]
        finally:
            assign.close()  # in this thread: its event loop, if it ran here, is this one's
        return np.concatenate(out) if out else np.zeros(0, dtype=np.int32)

    def fit(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, str]:
        """(topic centroids, the metric to assign by) fitted on ``vectors`` (the sample)."""
        if self.config.algorithm == "kmeans" and k > 1:
            from sklearn.cluster import KMeans, MiniBatchKMeans
            model = (MiniBatchKMeans(n_clusters=k, n_init=3, batch_size=max(4096, 3 * k),
                                     random_state=self.config.seed)
                     if len(vectors) > MINIBATCH_ABOVE else
                     KMeans(n_clusters=k, n_init=10, random_state=self.config.seed))
            model.fit(vectors)
            return np.asarray(model.cluster_centers_, dtype=np.float32), "euclidean"
        raw = self.raw_topics(vectors, k)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        unit = vectors / np.where(norms == 0, 1, norms)
        # HDBSCAN's outliers (-1) are not a place: new records join the nearest real topic.
        topics = [t for t in np.unique(raw).tolist() if t >= 0] or [-1]
        centroids = np.stack([unit[raw == t].mean(axis=0) for t in topics])
        centroids /= np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)
        return centroids.astype(np.float32), "cosine"

    def cluster(self, vectors: np.ndarray) -> np.ndarray:
        """Topic per row, renumbered so topic 0 is the largest (ties: first seen)."""
        n = len(vectors)
        return renumber(self.raw_topics(vectors, min(n, self.config.n_topics or auto_topics(n))))

    def raw_topics(self, vectors: np.ndarray, k: int) -> np.ndarray:
        """The algorithm's own labels for ``vectors`` (``k`` topics where it takes a count)."""
        try:
            from sklearn.cluster import AgglomerativeClustering, KMeans, MiniBatchKMeans
        except ImportError:
            raise SynthloomError('cluster_topics needs scikit-learn (a synthloom dependency): '
                                 'pip install "scikit-learn>=1.4"') from None
        n = len(vectors)
        if k <= 1:
            return np.zeros(n, dtype=np.int64)
        if self.config.algorithm == "bertopic":
            raw = self._bertopic(np.asarray(vectors, dtype=np.float32))
        elif self.config.algorithm == "hdbscan":
            try:
                from sklearn.cluster import HDBSCAN
            except ImportError:
                raise SynthloomError('algorithm hdbscan needs scikit-learn >= 1.3: '
                                     'pip install "scikit-learn>=1.3"') from None
            size = self.config.min_topic_size or max(5, n // 200)
            raw = HDBSCAN(min_cluster_size=min(size, n), metric="euclidean").fit_predict(
                np.asarray(vectors, dtype=np.float64))
        elif self.config.algorithm == "kmeans" and n > MINIBATCH_ABOVE:
            # Full k-means with 10 restarts grew as n^1.5 (98 s at 80k): mini-batches, 3 inits.
            raw = MiniBatchKMeans(n_clusters=k, n_init=3, batch_size=max(4096, 3 * k),
                                  random_state=self.config.seed).fit_predict(vectors)
        elif self.config.algorithm == "kmeans":
            raw = KMeans(n_clusters=k, n_init=10, random_state=self.config.seed).fit_predict(vectors)
        else:
            raw = AgglomerativeClustering(n_clusters=k, metric="cosine",
                                          linkage="average").fit_predict(vectors)
        return np.asarray(raw)

    def _bertopic(self, vectors: np.ndarray) -> np.ndarray:
        """UMAP -> HDBSCAN -> outliers to the nearest topic centroid (cosine, embeddings)."""
        try:
            import umap
        except ImportError:
            raise SynthloomError('algorithm bertopic needs umap-learn (the topics extra): '
                                 'pip install "synthloom[topics]"') from None
        from sklearn.cluster import HDBSCAN

        n = len(vectors)
        if n < 4:  # too few rows to embed in a neighbourhood graph: one topic
            return np.zeros(n, dtype=np.int64)
        # BERTopic's defaults: 15 neighbours, 5 components, min_dist 0, cosine.
        reducer = umap.UMAP(n_neighbors=min(15, n - 1), n_components=min(5, n - 2),
                            min_dist=0.0, metric="cosine", random_state=self.config.seed,
                            init="spectral" if n > 20 else "random")
        with warnings.catch_warnings():  # "n_jobs overridden by setting random_state"
            warnings.filterwarnings("ignore", message="n_jobs value", category=UserWarning)
            reduced = reducer.fit_transform(vectors)
        size = self.config.min_topic_size or max(5, n // 200)
        raw = HDBSCAN(min_cluster_size=min(size, n), metric="euclidean",
                      cluster_selection_method="eom", copy=True).fit_predict(
            np.asarray(reduced, dtype=np.float64))
        return reassign_outliers(vectors, raw)


def reassign_outliers(vectors: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Each outlier (-1) moved to the topic whose centroid (mean of its members' unit vectors)
    has the highest cosine to it, as BERTopic's ``reduce_outliers(strategy="embeddings")``;
    all outliers: one topic (0)."""
    labels = np.asarray(labels)
    outliers = labels < 0
    if outliers.all():
        return np.zeros(len(labels), dtype=np.int64)
    if not outliers.any():
        return labels
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = vectors / np.where(norms == 0, 1, norms)
    topics = np.unique(labels[~outliers])
    centroids = np.stack([unit[labels == t].mean(axis=0) for t in topics])
    centroids /= np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)
    labels = labels.copy()
    labels[outliers] = topics[np.argmax(unit[outliers] @ centroids.T, axis=1)]
    return labels


class SelectConfig(StepConfig):
    #: Numeric column to rank by within each topic; a dotted path reads inside a mapping
    #: column (``scores.total`` from judge_rubric).
    score_column: str
    #: How many records to keep in all.
    target: int = Field(ge=0)
    #: Column with the record's topic (``cluster_topics``' output).
    topic_column: str = "topic"
    #: False: lower scores are better (e.g. a perplexity).
    higher_is_better: bool = True
    #: Equal scores are ordered by a random permutation drawn with this seed (not by input
    #: order, which would favour whatever came first in the corpus).
    seed: int = 0


@register_step
class SelectPerTopic(GlobalStep):
    """Keeps ``target`` records: round after round, each topic gives its next-best record
    (within a round, better records first), so small topics are not crowded out."""

    type_name = "select_per_topic"
    version = "2"  # O(n log n); ties broken by a seeded permutation, not input order
    Config = SelectConfig
    config: SelectConfig

    def reads(self) -> list[str]:
        # A dotted score path ("scores.total") reads its whole top-level column.
        return [self.config.topic_column, self.config.score_column.split(".")[0]]

    def _raw_score(self, record: dict[str, Any]) -> Any:
        value: Any = record
        for part in self.config.score_column.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        return value

    def _score(self, record: dict[str, Any]) -> float | None:
        value = self._raw_score(record)
        if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
            return None
        return float(value) if self.config.higher_is_better else -float(value)

    async def process_all(self, records: list[dict[str, Any]], ctx: RunContext,
                          ) -> list[ItemResult]:
        return await asyncio.to_thread(self.select, records)

    def select(self, records: list[dict[str, Any]]) -> list[ItemResult]:
        """One result per record. Round robin as two sorts: rank each record in its topic
        by (unscored last, best score, seeded tie order), then keep the first ``target``
        by (rank, the same key) - the rounds in order, each round best first."""
        cfg = self.config
        n = len(records)
        results: list[ItemResult | None] = [None] * n
        codes: dict[Any, int] = {}
        topics: list[Any] = []
        # Per record three numbers, never the record (read again, one at a time, for the drop
        # reasons): arrays, not Python lists (~9x smaller at 1M records).
        code_of = np.full(n, -1, dtype=np.int64)
        scores = np.zeros(n, dtype=np.float64)
        unscored = np.zeros(n, dtype=bool)
        for i, record in enumerate(records):
            if cfg.topic_column not in record:
                results[i] = ItemResult.failure(
                    KeyError(f"record has no column {cfg.topic_column!r} (run cluster_topics "
                             "first)"))
                continue
            topic = record[cfg.topic_column]
            code = codes.get(topic)
            if code is None:
                code = codes[topic] = len(topics)
                topics.append(topic)
            code_of[i] = code
            score = self._score(record)
            if score is None:
                unscored[i] = True
            else:
                scores[i] = score
        idx = np.flatnonzero(code_of >= 0)
        if not len(idx):
            return results  # type: ignore[return-value]
        topic = code_of[idx]
        del code_of
        order, depth = round_robin_order(idx, topic, scores, unscored, n, cfg.seed)
        chosen = order[: cfg.target]
        sizes = np.bincount(topic, minlength=len(topics))
        selected = np.zeros(len(idx), dtype=bool)
        selected[chosen] = True
        # A topic's selected records are its best ones (a prefix of its ranking).
        kept = np.bincount(topic[selected], minlength=len(topics))
        for j, i in enumerate(idx.tolist()):
            if selected[j]:
                results[i] = _keep()
                continue
            c = int(topic[j])
            raw = self._raw_score(records[i])
            score = "no score" if unscored[i] else f"score {raw}"
            results[i] = ItemResult.drop(
                f"not selected: topic {topics[c]} has {kept[c]} higher-ranked selected "
                f"record(s) ({score}, rank {depth[j] + 1} of {sizes[c]} in its topic; target "
                f"{cfg.target} reached)")
        return results  # type: ignore[return-value]


class CommunityConfig(StepConfig):
    #: Column embedded (a list: the columns joined by newlines).
    column: str | list[str] = "text"
    #: The embedding model: a spec string, or a mapping (spec, model, batch_size, cache, ...).
    embedder: EmbedderConfig = EmbedderConfig()
    #: Cosine similarity to a community's centre for membership.
    threshold: float = Field(default=0.85, gt=0.0, le=1.0)
    #: Smallest community (smaller groups are outliers, all kept).
    min_size: int = Field(default=2, ge=2)
    #: Which member stays: the community's centre, or the first in input order.
    keep: Literal["centre", "first"] = "centre"
    #: Nearest neighbours kept per record (memory n x neighbors). A record whose every
    #: neighbour is above the threshold sits in a dense region, searched exactly.
    neighbors: int = Field(default=32, ge=1)
    #: auto: exact search up to 5,000 distinct vectors, k-means cells above (each row compared
    #: exactly with the rows of its 6 nearest cells of ~500; linear in n, quality/cells.py);
    #: or force one: exact (all pairs), cells, usearch (HNSW).
    ann: Literal["auto", "exact", "cells", "usearch"] = "auto"
    #: Above this many records (with ``ann`` auto or cells and the embedding cache on) the
    #: vectors are never all in memory: per-row work runs in batches (in actors on Ray), each
    #: reading its vectors from the embedding cache, and the driver keeps the neighbour table
    #: (quality/spread.py). The same communities as at or below it. Not in the fingerprint.
    #: 200,000: it trades CPU for memory (100k rows: 214 vs 474 MB peak, 33.7 vs 11.4 CPU s,
    #: each vector read ~9 times), so it starts where the vectors grow large (1.6 GB at 2,048
    #: dims); lower it on Ray to spread the search over actors sooner.
    spread_above: int = Field(default=200_000, ge=2)
    threads: int | None = Field(
        default=None, ge=1,
        description="OpenMP/BLAS threads (and usearch's) for the numeric work; default: half "
                    "the CPUs this process may use, at least 1 (idle pools busy-wait and "
                    "starve the rest of the run). Not in the fingerprint.")

    wiring: ClassVar[frozenset[str]] = StepConfig.wiring | {"threads", "spread_above"}


@register_step
class SemanticCommunities(GlobalStep):
    """One record per embedding community; outliers kept."""

    type_name = "semantic_communities"
    Config = CommunityConfig
    config: CommunityConfig

    def reads(self) -> list[str]:
        column = self.config.column
        return [*([column] if isinstance(column, str) else column), META]

    async def prepare(self, records: list[dict[str, Any]], ctx: RunContext) -> None:
        """Embed one batch into the run's embedding cache (as ``ClusterTopics.prepare``)."""
        if self.config.embedder.cache:  # without the cache the barrier embeds again
            await _embed_column(records, self.config.column, self.config.embedder, ctx)

    async def process_all(self, records: list[dict[str, Any]], ctx: RunContext,
                          ) -> list[ItemResult]:
        cfg = self.config
        if (len(records) > cfg.spread_above and cfg.ann in ("auto", "cells")
                and cfg.embedder.cache):
            return await asyncio.to_thread(run_limited, cfg.threads, self.spread, records, ctx)
        positions, _texts, vectors, results = await _embed_column(
            records, cfg.column, cfg.embedder, ctx)
        for pos in positions:
            results[pos] = _keep()
        if len(positions) < 2:
            return results  # type: ignore[return-value]
        groups = await asyncio.to_thread(self._communities, vectors)
        for group in groups:
            kept = group[0] if cfg.keep == "centre" else min(group)
            kept_id = rid(records[positions[kept]])
            for member in group:
                if member == kept:
                    continue
                cosine = float(vectors[member] @ vectors[kept])
                results[positions[member]] = ItemResult.drop(
                    f"semantic community of {kept_id} ({len(group)} members, cosine≈"
                    f"{cosine:.3f} to it; threshold {cfg.threshold})")
        return results  # type: ignore[return-value]

    def spread(self, records: Sequence[dict[str, Any]], ctx: RunContext) -> list[ItemResult]:
        """``process_all`` above ``spread_above``: vectors read from the embedding cache where
        they are used (quality/spread.py); the same results. Holds the positions of the
        records with text (8 bytes each) and the neighbour table, never the vectors."""
        cfg = self.config
        results: list[ItemResult | None] = [None] * len(records)
        has_text = np.zeros(len(records), dtype=bool)
        for i, record in enumerate(records):
            try:
                text_of(record, cfg.column)
                has_text[i] = True
                results[i] = _keep()
            except KeyError as exc:
                results[i] = ItemResult.failure(exc)
        positions = np.flatnonzero(has_text)
        del has_text
        rows = CachedRows(lambda r: [text_of(records[int(positions[i])], cfg.column)
                                     for i in r], len(positions), cfg.embedder, str(ctx.run_dir))
        try:
            groups = spread_communities(rows, cfg.threshold, cfg.min_size, cfg.neighbors,
                                        cfg.ann)  # type: ignore[arg-type]
            drops = [(group, member, group[0] if cfg.keep == "centre" else min(group))
                     for group in groups for member in group]
            drops = [d for d in drops if d[1] != d[2]]
            for start in range(0, len(drops), 4_096):  # the cosines in the reasons, in chunks
                chunk = drops[start : start + 4_096]
                members = rows[np.array([m for _, m, _ in chunk])]
                kept = rows[np.array([k for _, _, k in chunk])]
                for (group, member, kept_at), a, b in zip(chunk, members, kept, strict=True):
                    kept_id = rid(records[int(positions[kept_at])])
                    results[int(positions[member])] = ItemResult.drop(
                        f"semantic community of {kept_id} ({len(group)} members, cosine≈"
                        f"{float(a @ b):.3f} to it; threshold {cfg.threshold})")
        finally:
            rows.close()
        return results  # type: ignore[return-value]

    def _communities(self, vectors: np.ndarray) -> list[list[int]]:
        cfg = self.config
        with limited(cfg.threads) as threads:
            return communities(vectors, cfg.threshold, cfg.min_size, cfg.neighbors, cfg.ann,
                               threads=threads)
