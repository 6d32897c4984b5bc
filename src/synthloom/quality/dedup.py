"""Deduplication as global steps: ``dedup_exact`` (normalised text hash), ``dedup_minhash``
(MinHash LSH, Jaccard on word n-grams) and ``dedup_semantic`` (embeddings, cosine).

Records are judged in input order: the first of a group is kept, each later member is dropped
with a reason naming the kept record's id and the similarity. ``against`` names files of
records accepted earlier (e.g. a previous run's ``data.jsonl``): they seed the index, are
never output, and a new record matching one is dropped with that record's id (its
``_meta.id``, or ``file:line`` for rows without provenance).
"""

from __future__ import annotations

import asyncio
from abc import abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from synthloom.core.context import RunContext
from synthloom.core.errors import RecipeError
from synthloom.core.fingerprint import text_hash
from synthloom.core.records import META, ItemResult, Output, rid
from synthloom.core.registry import register_step
from synthloom.core.steps import GlobalStep, StepConfig
from synthloom.llm.embeddings import EmbedderConfig, resolve_embedder
from synthloom.quality import datafiles
from synthloom.quality.minhash import MinHasher, find_near_duplicates
from synthloom.quality.text import fold_text, text_of
from synthloom.quality.vectors import duplicates

Match = tuple[int, float] | None


class DedupConfig(StepConfig):
    #: Column compared (a list: the columns joined by newlines).
    column: str | list[str] = "text"
    #: Files of records accepted earlier (JSONL/JSON/Parquet/CSV/HF folder): index only.
    against: str | list[str] | None = None
    #: Column of the ``against`` rows (default: ``column``).
    against_column: str | list[str] | None = None


@dataclass
class _Seed:
    label: str
    text: str


class _Dedup(GlobalStep):
    """Shared plumbing: text extraction, ``against`` seeds, keep/drop results."""

    config: DedupConfig
    _paths: list[Path]
    _hashes: list[str]

    def setup(self, ctx: RunContext) -> None:
        against = self.config.against
        names = [against] if isinstance(against, str) else list(against or [])
        try:
            self._paths = [datafiles.resolve(p, ctx.recipe_dir) for p in names]
        except RecipeError as exc:
            raise RecipeError(f"step {self.name}: against: {exc}") from None
        self._hashes = [datafiles.content_hash(p) for p in self._paths]

    def extra_fingerprint(self, ctx: RunContext) -> Any:
        return {"against": self._hashes}

    def reads(self) -> list[str]:
        # _meta too: reasons name other records' ids, so a changed id must miss the cache.
        column = self.config.column
        return [*([column] if isinstance(column, str) else column), META]

    def _seeds(self) -> list[_Seed]:
        column = self.config.against_column or self.config.column
        seeds: list[_Seed] = []
        for path in getattr(self, "_paths", []):
            rows = 0
            for where, row in datafiles.read_rows(path):
                rows += 1
                try:
                    text = text_of(row, column)
                except KeyError:
                    continue
                meta = row.get(META)
                label = meta["id"] if isinstance(meta, dict) and meta.get("id") else where
                seeds.append(_Seed(f"{label} (from {path.name})", text))
            if rows and not seeds:
                raise RecipeError(f"step {self.name}: no row of {path} has column {column!r}")
        return seeds

    async def process_all(self, records: list[dict[str, Any]], ctx: RunContext,
                          ) -> list[ItemResult]:
        results: list[ItemResult | None] = [None] * len(records)
        texts: list[str] = []
        positions: list[int] = []
        ids: list[str] = []  # in the one pass: a spooled input is parsed on each access
        for i, record in enumerate(records):
            try:
                texts.append(text_of(record, self.config.column))
                positions.append(i)
                ids.append(rid(record))
            except KeyError as exc:
                results[i] = ItemResult.failure(exc)
        seeds = self._seeds()
        labels = [s.label for s in seeds] + ids
        matches = await self.find([s.text for s in seeds], texts, ctx)
        for pos, match in zip(positions, matches, strict=True):
            if match is None:
                results[pos] = ItemResult(outputs=[Output(columns={})])
            else:
                results[pos] = ItemResult.drop(self.reason(labels[match[0]], match[1]))
        return results  # type: ignore[return-value]

    @abstractmethod
    async def find(self, seeds: list[str], texts: list[str], ctx: RunContext) -> list[Match]:
        """One entry per text: (index into seeds + texts of the kept match, similarity)."""

    @abstractmethod
    def reason(self, label: str, similarity: float) -> str:
        """The drop reason naming the kept record and the similarity."""


@register_step
class ExactDedup(_Dedup):
    """Drops records whose normalised text (NFKC, case-folded, punctuation and extra spaces
    removed) equals an earlier one's."""

    type_name = "dedup_exact"

    class Config(DedupConfig):
        #: False: compare the raw text byte for byte.
        normalize: bool = True

    config: Config

    async def find(self, seeds: list[str], texts: list[str], ctx: RunContext) -> list[Match]:
        first: dict[str, int] = {}
        out: list[Match] = []
        for i, text in enumerate([*seeds, *texts]):
            key = text_hash(fold_text(text) if self.config.normalize else text, 32)
            if key in first:
                if i >= len(seeds):
                    out.append((first[key], 1.0))
                continue
            first[key] = i
            if i >= len(seeds):
                out.append(None)
        return out

    def reason(self, label: str, similarity: float) -> str:
        how = "normalised text" if self.config.normalize else "text"
        return f"exact duplicate of {label} (same {how}, similarity=1.00)"


@register_step
class MinHashDedup(_Dedup):
    """Near-duplicates by MinHash LSH: estimated Jaccard of word n-gram sets >= threshold."""

    type_name = "dedup_minhash"

    class Config(DedupConfig):
        #: Words per shingle.
        ngram: int = Field(default=5, ge=1)
        #: Hash permutations per MinHash signature (more: a closer Jaccard estimate, slower).
        num_perm: int = Field(default=128, ge=8)
        #: Estimated Jaccard at or above which a record is a near-duplicate.
        threshold: float = Field(default=0.7, gt=0.0, le=1.0)
        #: LSH banding (0: chosen from threshold and num_perm, like datasketch).
        bands: int = 0
        #: Rows per LSH band (0: chosen with ``bands``).
        rows: int = 0
        #: Seed of the MinHash permutations.
        seed: int = 1

    config: Config

    async def find(self, seeds: list[str], texts: list[str], ctx: RunContext) -> list[Match]:
        return await asyncio.to_thread(self._find, [*seeds, *texts], len(seeds))

    def _find(self, texts: list[str], seeded: int) -> list[Match]:
        cfg = self.config
        hasher = MinHasher(num_perm=cfg.num_perm, ngram=cfg.ngram, seed=cfg.seed)
        sigs = hasher.signatures(texts)
        valid = hasher.shingle_counts > 0
        return find_near_duplicates(sigs, valid, cfg.threshold, seeded, cfg.bands, cfg.rows)

    def reason(self, label: str, similarity: float) -> str:
        return f"near-duplicate of {label} (jaccard≈{similarity:.2f}, {self.config.ngram}-gram MinHash)"


@register_step
class SemanticDedup(_Dedup):
    """Semantic duplicates: cosine similarity of embeddings >= threshold (first kept)."""

    type_name = "dedup_semantic"

    class Config(DedupConfig):
        #: False: pass everything through without loading a model (a recipe switch).
        enabled: bool = True
        #: The embedding model: a spec string, or a mapping (spec, model, batch_size, cache, ...).
        embedder: EmbedderConfig = EmbedderConfig()
        #: Cosine similarity at or above which a record is a duplicate of an earlier one.
        threshold: float = Field(default=0.9, gt=0.0, le=1.0)
        #: Neighbours examined per record (more: fewer misses in dense duplicate clusters).
        neighbors: int = Field(default=16, ge=1)
        #: auto: exact search up to 5,000 records, k-means cells above (each record compared
        #: exactly with the records of its 6 nearest cells of ~500; linear in n, deterministic,
        #: quality/cells.py); or force one: exact (all pairs), cells, usearch (HNSW).
        ann: Literal["auto", "exact", "cells", "usearch"] = "auto"

    config: Config

    async def process_all(self, records: list[dict[str, Any]], ctx: RunContext,
                          ) -> list[ItemResult]:
        if not self.config.enabled:
            return [ItemResult(outputs=[Output(columns={})]) for _ in records]
        return await super().process_all(records, ctx)

    async def find(self, seeds: list[str], texts: list[str], ctx: RunContext) -> list[Match]:
        everything = [*seeds, *texts]
        if not texts:
            return []
        embedder = resolve_embedder(self.config.embedder, ctx.run_dir)
        try:
            vectors = await embedder.embed(everything)
        finally:
            await embedder.aclose()
        return await asyncio.to_thread(self._greedy, vectors, len(seeds))

    def _greedy(self, vectors: np.ndarray, seeded: int) -> list[Match]:
        cfg = self.config
        return duplicates(vectors, cfg.threshold, cfg.neighbors, cfg.ann, seeded)

    def reason(self, label: str, similarity: float) -> str:
        return f"semantic duplicate of {label} (cosine≈{similarity:.3f})"
