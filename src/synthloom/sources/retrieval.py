"""Retrieval as a map step that attaches a supporting document: local BM25 by default, or any
search backend (a web/search API) behind a small adapter interface.

The corpus is another node of the recipe, named in the step's ``context:``; the BM25 index is
built once per run from its records. The paper retrieved a web-search top-1 (its repo searches
the keywords and keeps the best BM25-scored page); local BM25 over the user's own corpus is the
default, and ``search: python:MODULE:FACTORY`` plugs in a search API the user has: ``FACTORY(
**search_options)`` returns an object with ``search(query, k) -> list[SearchHit]``
(:class:`SearchBackend`). A hit below ``min_score`` is no supporting document: the item is
dropped with that reason.
"""

from __future__ import annotations

import importlib
import threading
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from synthloom.core.context import ItemContext
from synthloom.core.errors import RecipeError, SynthloomError
from synthloom.core.records import META, ItemResult, Output
from synthloom.core.registry import register_step
from synthloom.core.steps import MapStep, StepConfig
from synthloom.llm.kinds import grammar_limited
from synthloom.methods.textutil import truncate_to_tokens


@dataclass(frozen=True)
class SearchHit:
    """One search result: the text, its score (higher is better) and where it came from."""

    text: str
    score: float
    doc_id: str
    title: str | None = None
    url: str | None = None


@runtime_checkable
class SearchBackend(Protocol):
    """What ``search: python:MODULE:FACTORY`` must return: best hits first."""

    def search(self, query: str, k: int) -> list[SearchHit]: ...


def load_search_backend(spec: str, options: dict[str, Any]) -> SearchBackend:
    """``python:MODULE:FACTORY`` -> ``FACTORY(**options)``, checked to have ``search``."""
    kind, _, target = spec.partition(":")
    module_name, _, attr = target.rpartition(":")
    if kind != "python" or not module_name or not attr:
        raise RecipeError(f"search {spec!r}: use 'bm25' or 'python:MODULE:FACTORY'")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise RecipeError(f"search {spec!r}: cannot load {module_name}:{attr}: {exc}") from exc
    backend = factory(**options)
    if not isinstance(backend, SearchBackend):
        raise RecipeError(f"search {spec!r}: {attr}() returned {type(backend).__name__}, "
                          "which has no search(query, k) method")
    return backend


class RetrieveConfig(StepConfig):
    #: Node (in ``context:``) whose records are the documents to search (``bm25``).
    corpus: str | None = None
    #: ``bm25`` (local, over ``corpus``) or ``python:MODULE:FACTORY`` (a search-API adapter).
    search: str = "bm25"
    #: Keyword arguments of the adapter's factory (API endpoint, key env var name, ...).
    search_options: dict[str, Any] = {}
    #: Columns of the input record joined into the query (lists are joined with spaces).
    query_columns: list[str] = ["instruction"]
    #: Corpus column holding the document text.
    text_column: str = "text"
    #: Corpus column with a title, shown beside the document (optional).
    title_column: str | None = "title"
    #: The attached document is cut to this many tokens (backend tokenizer when there is
    #: one); default: 800 on llamacpp (grammar-size limits), no token cut elsewhere.
    max_doc_tokens: int | None = None
    #: ... and to this many characters; default: the paper's 4,096 except on llamacpp.
    max_doc_chars: int | None = None
    #: A best hit scoring at or below this is no supporting document: the item is dropped.
    min_score: float = 0.0
    stopwords: str = "en"


class Bm25Index:
    def __init__(self, texts: list[str], stopwords: str) -> None:
        try:
            import bm25s
        except ImportError:
            raise SynthloomError('retrieval needs bm25s: pip install "bm25s>=0.2"') from None
        self._bm25s = bm25s
        self.stopwords = stopwords
        self.size = len(texts)
        self.retriever = bm25s.BM25()
        tokens = bm25s.tokenize(texts, stopwords=stopwords, show_progress=False)
        self.retriever.index(tokens, show_progress=False)

    def top(self, query: str, k: int = 1) -> list[tuple[int, float]]:
        tokens = self._bm25s.tokenize([query], stopwords=self.stopwords, show_progress=False)
        if not tokens.vocab:
            return []
        k = min(k, self.size)
        indices, scores = self.retriever.retrieve(tokens, k=k, show_progress=False)
        return [(int(i), float(s)) for i, s in zip(indices[0], scores[0], strict=True)]


@register_step
class RetrieveBm25(MapStep):
    """Attaches the top BM25 document: ``document``, ``document_id``, ``document_title``,
    ``retrieval_score``; ``_meta.retrieved`` names the document's record id."""

    type_name = "retrieve_bm25"
    Config = RetrieveConfig
    config: RetrieveConfig

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cfg = self.config
        if cfg.search == "bm25" and (cfg.corpus is None or cfg.corpus not in cfg.context):
            raise RecipeError(
                f"step {self.name}: corpus {cfg.corpus!r} must be set and must also be listed "
                "in context: (search: bm25)")
        self._lock = threading.Lock()
        self._index: Bm25Index | None = None
        self._indexed: int | None = None
        self._search: SearchBackend | None = None

    def reads(self) -> list[str]:
        return list(self.config.query_columns)

    def _index_for(self, documents: list[dict[str, Any]]) -> Bm25Index:
        with self._lock:
            if self._index is None or self._indexed != id(documents):
                texts = [str(d.get(self.config.text_column) or "") for d in documents]
                self._index = Bm25Index(texts, self.config.stopwords)
                self._indexed = id(documents)
            return self._index

    def setup(self, ctx: Any) -> None:
        super().setup(ctx)
        if self.config.search != "bm25":
            self._search = load_search_backend(self.config.search, self.config.search_options)

    def _hits(self, query: str, ctx: ItemContext) -> list[SearchHit] | str:
        """Best hits first, or the reason there are none to search."""
        if self._search is not None:
            return self._search.search(query, 1)
        documents = ctx.context.get(self.config.corpus or "") or []
        if not documents:
            return f"corpus {self.config.corpus!r} has no documents"
        hits = []
        for index, score in self._index_for(documents).top(query, k=1):
            doc = documents[index]
            title = doc.get(self.config.title_column) if self.config.title_column else None
            hits.append(SearchHit(str(doc.get(self.config.text_column) or ""), score,
                                  doc[META]["id"], title))
        return hits

    def process(self, record: dict[str, Any], ctx: ItemContext) -> Output | ItemResult:
        parts = []
        for column in self.config.query_columns:
            value = record.get(column)
            parts.append(" ".join(map(str, value)) if isinstance(value, list) else str(value or ""))
        hits = self._hits(" ".join(parts), ctx)
        if isinstance(hits, str):
            return ItemResult.drop(hits)
        if not hits or hits[0].score <= self.config.min_score:
            return ItemResult.drop(
                f"no supporting document (best {self.config.search} score "
                f"{hits[0].score if hits else 0:.3f} <= min_score {self.config.min_score})")
        hit = hits[0]
        grammar = grammar_limited(ctx)
        tokens = self.config.max_doc_tokens or (800 if grammar else None)
        chars = self.config.max_doc_chars or (None if grammar else 4096)
        text = hit.text[:chars] if chars else hit.text
        if tokens:
            count = ctx.run.llm.count_tokens if ctx.run.llm is not None else None
            text = truncate_to_tokens(text, tokens, count)
        columns = {"document": text, "document_id": hit.doc_id, "document_title": hit.title,
                   "retrieval_score": round(hit.score, 4)}
        if hit.url:
            columns["document_url"] = hit.url
        return Output(columns=columns, meta={"retrieved": hit.doc_id})
