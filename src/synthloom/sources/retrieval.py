"""Local retrieval over a corpus: BM25 (bm25s) as a map step that attaches a supporting document.

The corpus is another node of the recipe, named in the step's ``context:``; the index is built
once per run from its records. The paper retrieved web search top-1; this is the local
equivalent over the user's own corpus.
"""

from __future__ import annotations

import threading
from typing import Any

from synthloom.core.context import ItemContext
from synthloom.core.errors import RecipeError, SynthloomError
from synthloom.core.records import META, ItemResult, Output
from synthloom.core.registry import register_step
from synthloom.core.steps import MapStep, StepConfig
from synthloom.methods.textutil import truncate_to_tokens


class RetrieveConfig(StepConfig):
    #: Node (in ``context:``) whose records are the documents to search.
    corpus: str
    #: Columns of the input record joined into the query (lists are joined with spaces).
    query_columns: list[str] = ["instruction"]
    #: Corpus column holding the document text.
    text_column: str = "text"
    #: Corpus column with a title, shown beside the document (optional).
    title_column: str | None = "title"
    #: The attached document is cut to this many tokens (backend tokenizer when there is one).
    max_doc_tokens: int = 1200
    #: Below this BM25 score the item is dropped: no supporting document.
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
        if self.config.corpus not in self.config.context:
            raise RecipeError(
                f"step {self.name}: corpus {self.config.corpus!r} must also be listed in context:")
        self._lock = threading.Lock()
        self._index: Bm25Index | None = None
        self._indexed: int | None = None

    def reads(self) -> list[str]:
        return list(self.config.query_columns)

    def _index_for(self, documents: list[dict[str, Any]]) -> Bm25Index:
        with self._lock:
            if self._index is None or self._indexed != id(documents):
                texts = [str(d.get(self.config.text_column) or "") for d in documents]
                self._index = Bm25Index(texts, self.config.stopwords)
                self._indexed = id(documents)
            return self._index

    def process(self, record: dict[str, Any], ctx: ItemContext) -> Output | ItemResult:
        documents = ctx.context.get(self.config.corpus) or []
        if not documents:
            return ItemResult.drop(f"corpus {self.config.corpus!r} has no documents")
        parts = []
        for column in self.config.query_columns:
            value = record.get(column)
            parts.append(" ".join(map(str, value)) if isinstance(value, list) else str(value or ""))
        hits = self._index_for(documents).top(" ".join(parts), k=1)
        if not hits or hits[0][1] <= self.config.min_score:
            return ItemResult.drop(
                f"no supporting document (best BM25 score {hits[0][1] if hits else 0:.3f} "
                f"<= min_score {self.config.min_score})")
        index, score = hits[0]
        doc = documents[index]
        count = ctx.run.llm.count_tokens if ctx.run.llm is not None else None
        text = truncate_to_tokens(str(doc.get(self.config.text_column) or ""),
                                  self.config.max_doc_tokens, count)
        doc_id = doc[META]["id"]
        title = doc.get(self.config.title_column) if self.config.title_column else None
        return Output(
            columns={"document": text, "document_id": doc_id, "document_title": title,
                     "retrieval_score": round(score, 4)},
            meta={"retrieved": doc_id},
        )
