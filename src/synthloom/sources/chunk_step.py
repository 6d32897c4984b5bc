"""The ``chunk`` expand step: one document record in, one record per chunk out.

Each chunk record replaces the document's text by the chunk's and adds ``chunk_id,
chunk_index, n_chunks, char_start, char_end, pages, headings, n_tokens`` (``doc_id`` is kept).
``_meta.source`` of the chunk — and so of every record derived from it — becomes a mapping that
names the document (record id, ``doc_id``, path, title) and the chunk (id, index, span, pages).
"""

from __future__ import annotations

from typing import Any, Literal

from synthloom.core.context import ItemContext, RunContext
from synthloom.core.fingerprint import text_hash
from synthloom.core.records import META, ItemResult, Output, columns_of
from synthloom.core.registry import register_step
from synthloom.core.steps import ExpandStep, StepConfig
from synthloom.sources.chunking import Chunk, TokenCounter, chunk_text, estimate_tokens
from synthloom.sources.pdf_reader import pages_for_span

#: Document-level columns that do not describe a chunk.
DOC_ONLY = ("page_spans", "n_pages")


class ChunkConfig(StepConfig):
    #: The column holding the document text (replaced by the chunk's text).
    column: str = "text"
    #: Most tokens per chunk.
    max_tokens: int = 512
    #: Tokens shared by consecutive chunks.
    overlap_tokens: int = 64
    #: A heading starts a new chunk only once the current one has this many tokens; a last
    #: chunk below it is merged into the previous one where the result fits.
    min_tokens: int = 32
    #: At most this many chunks per document, spread evenly over it (None or 0: all).
    max_chunks: int | None = None
    #: ``auto``: the run's model tokenizer when it has one; ``estimate``: ~4 chars per token.
    tokenizer: Literal["auto", "estimate"] = "auto"


@register_step
class ChunkDocuments(ExpandStep):
    type_name = "chunk"
    version = "1"
    Config = ChunkConfig
    config: ChunkConfig

    def extra_fingerprint(self, ctx: RunContext) -> Any:
        # Chunk boundaries depend on the tokenizer: a different model re-chunks.
        return {"tokenizer": self._tokenizer_id(ctx)}

    def _tokenizer_id(self, ctx: RunContext) -> str:
        if self.config.tokenizer == "auto" and ctx.llm is not None:
            return ctx.llm.model_id
        return "estimate"

    def _counter(self, ctx: ItemContext) -> TokenCounter:
        llm = ctx.run.llm
        if self.config.tokenizer == "auto" and llm is not None:
            return llm.count_tokens
        return estimate_tokens

    def process(self, record: dict[str, Any], ctx: ItemContext) -> ItemResult | list[Output]:
        cfg = self.config
        text = record.get(cfg.column)
        if not isinstance(text, str):
            raise KeyError(f"record has no text column {cfg.column!r}")
        chunks = chunk_text(text, max_tokens=cfg.max_tokens, overlap_tokens=cfg.overlap_tokens,
                            min_tokens=cfg.min_tokens, count=self._counter(ctx))
        if not chunks:
            return ItemResult.drop(f"column {cfg.column!r} has no text to chunk")
        total = len(chunks)
        chunks = select_spread(chunks, cfg.max_chunks)
        return [self._output(record, text, chunk, total) for chunk in chunks]

    def _output(self, record: dict[str, Any], text: str, chunk: Chunk, total: int) -> Output:
        cols = {k: v for k, v in columns_of(record).items() if k not in DOC_ONLY}
        doc_id = cols.get("doc_id") or text_hash(text)
        page_spans = record.get("page_spans")
        pages = pages_for_span(page_spans, chunk.char_start, chunk.char_end) if page_spans \
            else []
        span = {
            "chunk_id": text_hash(f"{doc_id}:{chunk.char_start}:{chunk.char_end}"),
            "chunk_index": chunk.index,
            "char_start": chunk.char_start,
            "char_end": chunk.char_end,
            "pages": pages,
        }
        cols.update(doc_id=doc_id, **span, n_chunks=total, headings=chunk.headings,
                    n_tokens=chunk.n_tokens)
        cols[self.config.column] = text[chunk.char_start:chunk.char_end]
        return Output(columns=cols, replace=True,
                      meta={"source": {**document_source(record, doc_id), **span}})


def document_source(record: dict[str, Any], doc_id: str) -> dict[str, Any]:
    """What names the document: its source record id, ``doc_id``, path, title, format."""
    meta = record.get(META, {})
    parent_source = meta.get("source")
    source_id = parent_source.get("id") if isinstance(parent_source, dict) else parent_source
    out = {"id": source_id, "doc_id": doc_id, "path": record.get("path") or meta.get("path"),
           "title": record.get("title"), "format": record.get("format")}
    if meta.get("where"):
        out["where"] = meta["where"]  # a row of a tabular file
    return out


def select_spread(chunks: list[Chunk], limit: int | None) -> list[Chunk]:
    """At most ``limit`` chunks, evenly spread from the first to the last (keeps order)."""
    if not limit or len(chunks) <= limit:
        return chunks  # None or 0: every chunk
    if limit == 1:
        return chunks[:1]
    step = (len(chunks) - 1) / (limit - 1)
    return [chunks[round(i * step)] for i in range(limit)]
