"""Decontamination: drop records sharing a word n-gram (default 13, as in GPT-3's and
Llama's reports) with a user-supplied evaluation set.

The evaluation sets are hashed once, in ``setup``: every n-gram of normalised word tokens
(NFKC, case-folded, ``\\w+``) becomes a 64-bit hash in one sorted numpy array; a record is
checked with one ``searchsorted``. The drop reason names the benchmark, the row and the
overlapping span of the record's own text (the longest run of consecutive matching n-grams).
Benchmark rows shorter than ``ngram`` words cannot match (too short to be evidence).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from synthloom.core.context import ItemContext, RunContext
from synthloom.core.errors import RecipeError
from synthloom.core.registry import register_step
from synthloom.core.steps import FilterStep, StepConfig
from synthloom.quality import datafiles
from synthloom.quality.text import WordHasher, ngram_hashes, text_of, word_spans


class BenchmarkSpec(BaseModel):
    """An evaluation set on disk. A bare string in YAML is the ``path``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str
    #: Column(s) whose text is protected (several: each is indexed).
    column: str | list[str] = "question"
    #: For a Hugging Face DatasetDict folder: the split (default: all splits).
    split: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        return {"path": value} if isinstance(value, str) else value


class DecontamConfig(StepConfig):
    #: Record column(s) checked (several: each is checked).
    column: str | list[str] = "text"
    #: name -> evaluation set, e.g. {gsm8k: {path: gsm8k_test.jsonl, column: question}}.
    benchmarks: dict[str, BenchmarkSpec]
    #: Words per n-gram.
    ngram: int = Field(default=13, ge=3)
    #: Shown span is cut to this many characters.
    max_span_chars: int = 300


@dataclass
class _Index:
    hashes: np.ndarray  # sorted uint64
    bench: np.ndarray  # benchmark number per hash
    where: list[str]  # row label per hash (parallel, via ``rows``)
    rows: np.ndarray  # index into ``where``
    names: list[str]


def build_index(benchmarks: dict[str, BenchmarkSpec], ngram: int, base: Path | None,
                ) -> tuple[_Index, dict[str, int]]:
    """The sorted n-gram hash index, and the number of rows indexed per benchmark."""
    hasher = WordHasher()
    chunks, benches, rows = [], [], []
    where: list[str] = []
    counts: dict[str, int] = {}
    names = list(benchmarks)
    for number, name in enumerate(names):
        spec = benchmarks[name]
        columns = [spec.column] if isinstance(spec.column, str) else spec.column
        path = datafiles.resolve(spec.path, base)
        counts[name] = 0
        for label, row in datafiles.read_rows(path, spec.split):
            found = [c for c in columns if isinstance(row.get(c), str)]
            if not found:
                continue
            counts[name] += 1
            for column in found:
                tokens, _ = word_spans(row[column])
                if len(tokens) < ngram:
                    continue
                grams = ngram_hashes(hasher.hash_words(tokens), ngram)
                chunks.append(grams)
                benches.append(np.full(len(grams), number, dtype=np.int32))
                rows.append(np.full(len(grams), len(where), dtype=np.int64))
                where.append(label)
        if counts[name] == 0:
            raise RecipeError(f"benchmark {name!r}: no row of {path} has column(s) {columns}")
    if chunks:
        hashes = np.concatenate(chunks)
        order = np.argsort(hashes, kind="stable")
        index = _Index(hashes[order], np.concatenate(benches)[order], where,
                       np.concatenate(rows)[order], names)
    else:
        index = _Index(np.empty(0, np.uint64), np.empty(0, np.int32), where,
                       np.empty(0, np.int64), names)
    return index, counts


@register_step
class Decontaminate(FilterStep):
    """Drops records that share an ``ngram``-word sequence with an evaluation set."""

    type_name = "decontaminate"
    Config = DecontamConfig
    config: DecontamConfig

    def setup(self, ctx: RunContext) -> None:
        try:
            paths = {n: datafiles.resolve(b.path, ctx.recipe_dir)
                     for n, b in self.config.benchmarks.items()}
            self._hashes = {n: datafiles.content_hash(p) for n, p in paths.items()}
            self._index, self.rows_indexed = build_index(
                self.config.benchmarks, self.config.ngram, ctx.recipe_dir)
        except RecipeError as exc:
            raise RecipeError(f"step {self.name}: {exc}") from None
        self._hasher = WordHasher()

    def extra_fingerprint(self, ctx: RunContext) -> Any:
        return {"benchmarks": self._hashes}

    def reads(self) -> list[str]:
        column = self.config.column
        return [column] if isinstance(column, str) else list(column)

    def process(self, record: dict[str, Any], ctx: ItemContext) -> str | None:
        for column in self.reads():
            text = text_of(record, column)
            reason = self.check(text)
            if reason:
                return f"{column}: {reason}"
        return None

    def check(self, text: str) -> str | None:
        """The contamination reason for one text, or None when it is clean."""
        n, index = self.config.ngram, self._index
        tokens, spans = word_spans(text)
        if len(tokens) < n or not len(index.hashes):
            return None
        grams = ngram_hashes(self._hasher.hash_words(tokens), n)
        pos = np.minimum(np.searchsorted(index.hashes, grams), len(index.hashes) - 1)
        hit = index.hashes[pos] == grams
        if not hit.any():
            return None
        first = int(np.argmax(hit))
        last = first
        while last + 1 < len(hit) and hit[last + 1]:
            last += 1
        bench = index.names[int(index.bench[pos[first]])]
        row = index.where[int(index.rows[pos[first]])]
        start, end = spans[first][0], spans[last + n - 1][1]
        span = " ".join(text[start:end].split())
        if len(span) > self.config.max_span_chars:
            span = span[: self.config.max_span_chars] + "…"
        words = last + n - first
        total = int(hit.sum())
        return (f"contaminated: {words}-word overlap with benchmark {bench!r} ({row}; "
                f"{total} matching {n}-grams): \"{span}\"")
