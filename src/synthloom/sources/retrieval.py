"""Retrieval as a map step that attaches a supporting document: local BM25 by default, or any
search backend (a web/search API) behind a small adapter interface.

The corpus is another node of the recipe, named in the step's ``context:``; the BM25 index is
built once per corpus, in a worker thread (never on the event loop), saved under the run folder
(``RUN/index/bm25-HASH/``, the hash of the corpus record ids) and memory-mapped from there, so
the processes of a run (Ray actors) share one index and a rerun loads it instead of building.
Queries that arrive together (one executor batch) are scored in one worker-thread call. The
paper searched the web with the extracted keywords and kept the search engine's first result
(the authors' repo, Ignoramus0817/SynthQuestions, has only a stub for that search); the recipe
queries with the keywords too (``query_columns: [keywords]``), falling back to the instruction
for a seed without keywords (``fallback_columns``). Local BM25 over the user's own corpus is the
default, and ``search: python:MODULE:FACTORY`` plugs in a search API the user has: ``FACTORY(
**search_options)`` returns an object with ``search(query, k) -> list[SearchHit]``
(:class:`SearchBackend`). A hit below ``min_score`` is no supporting document: the item is
dropped with that reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import itertools
import os
import re
import shutil
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from synthloom.core.context import ItemContext
from synthloom.core.errors import RecipeError, SynthloomError
from synthloom.core.fingerprint import stable_hash
from synthloom.core.records import META, ItemResult, Output
from synthloom.core.registry import register_step
from synthloom.core.steps import MapStep, StepConfig
from synthloom.llm.kinds import grammar_limited
from synthloom.prompting.textutil import truncate_to_tokens


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
    #: Columns queried instead when ``query_columns`` are all empty (e.g. a seed with no
    #: extracted keywords falls back to its instruction).
    fallback_columns: list[str] = []
    #: Corpus column holding the document text.
    text_column: str = "text"
    #: Corpus column with a title, shown beside the document (optional).
    title_column: str | None = "title"
    #: The attached document is kept whole up to this many tokens and cut only when longer
    #: (backend tokenizer when there is one); default: the paper repo's 4,096, 800 on
    #: llamacpp (grammar-size limits).
    max_doc_tokens: int | None = None
    #: ... and also cut to this many characters (default: no character cut).
    max_doc_chars: int | None = None
    #: A best hit scoring at or below this is no supporting document: the item is dropped.
    min_score: float = 0.0
    #: BM25 stopword list (bm25s's: a language code such as ``en``).
    stopwords: str = "en"


def _import_bm25s() -> Any:
    try:
        import bm25s
    except ImportError:
        raise SynthloomError('retrieval needs bm25s: pip install "bm25s>=0.2"') from None
    return bm25s


class Bm25Index:
    """A bm25s index over ``texts`` (built here), or one loaded from disk (``load``)."""

    def __init__(self, texts: list[str], stopwords: str, *, retriever: Any = None,
                 size: int | None = None) -> None:
        self._bm25s = _import_bm25s()
        self.stopwords = stopwords
        if retriever is not None:
            self.retriever, self.size = retriever, int(size or 0)
            return
        self.size = len(texts)
        self.retriever = self._bm25s.BM25()
        try:
            stop = frozenset(self._bm25s.tokenization._infer_stopwords(stopwords))
        except AttributeError:  # another bm25s layout: its own (list-of-lists) build
            tokens = self._bm25s.tokenize(texts, stopwords=stopwords, show_progress=False)
            self.retriever.index(tokens, show_progress=False)
            return
        _build_lucene(self.retriever, texts, stop)

    def save(self, folder: Path) -> None:
        self.retriever.save(str(folder), show_progress=False)

    @classmethod
    def load(cls, folder: Path, stopwords: str) -> Bm25Index:
        """Memory-mapped: the score arrays stay in the page cache, shared by processes."""
        bm25s = _import_bm25s()
        retriever = bm25s.BM25.load(str(folder), mmap=True, show_progress=False)
        return cls([], stopwords, retriever=retriever, size=int(retriever.scores["num_docs"]))

    def top(self, query: str, k: int = 1) -> list[tuple[int, float]]:
        return self.top_many([query], k)[0]

    def top_many(self, queries: list[str], k: int = 1) -> list[list[tuple[int, float]]]:
        """Best ``k`` (document index, score) per query; [] for a query of stop words only."""
        out: list[list[tuple[int, float]]] = [[] for _ in queries]
        k = min(k, self.size)
        if not queries or k < 1:
            return out
        tokens = self._bm25s.tokenize(queries, stopwords=self.stopwords, return_ids=False,
                                      show_progress=False)
        asked = [i for i, t in enumerate(tokens) if t]
        if not asked:
            return out
        indices, scores = self.retriever.retrieve([tokens[i] for i in asked], k=k,
                                                  show_progress=False)
        for row, i in enumerate(asked):
            out[i] = [(int(d), float(v)) for d, v in zip(indices[row], scores[row], strict=True)]
        return out


_TOKEN = re.compile(r"(?u)\b\w\w+\b")  # bm25s.tokenize's pattern (lower-cased text)
_CHUNK = 4096


def _build_lucene(retriever: Any, texts: list[str], stop: frozenset[str]) -> None:
    """What ``retriever.index(bm25s.tokenize(texts))`` computes for bm25s's default (Lucene
    BM25, k1=1.5, b=0.75, float32 scores), with the same tokens, vocabulary and float
    operations, in compact arrays: bm25s holds every token id in Python lists (8 bytes per
    token) and builds from COO triplets; here a chunk of documents at a time becomes unique
    (token, count) pairs, so the peak is the score matrix plus one chunk."""
    from scipy.sparse import csr_matrix

    n = len(texts)
    vocab: dict[str, int] = {}
    add = vocab.setdefault
    lengths = np.zeros(n, dtype=np.int64)
    per_doc = np.zeros(n, dtype=np.int64)
    tokens: list[np.ndarray] = []
    counts: list[np.ndarray] = []
    for start in range(0, n, _CHUNK):
        docs = [[add(t, len(vocab)) for t in _TOKEN.findall(text.lower()) if t not in stop]
                for text in texts[start : start + _CHUNK]]
        sizes = np.fromiter(map(len, docs), dtype=np.int64, count=len(docs))
        lengths[start : start + len(docs)] = sizes
        flat = np.fromiter(itertools.chain.from_iterable(docs), dtype=np.int64,
                           count=int(sizes.sum()))
        width = max(len(vocab), 1)
        pairs, tf = np.unique(np.repeat(np.arange(len(docs)), sizes) * width + flat,
                              return_counts=True)  # sorted by document, then token
        tokens.append((pairs % width).astype(np.int32))
        counts.append(tf.astype(np.float32))
        per_doc[start : start + len(docs)] = np.bincount(pairs // width, minlength=len(docs))
    token = np.concatenate(tokens) if tokens else np.zeros(0, dtype=np.int32)
    tf = np.concatenate(counts) if counts else np.zeros(0, dtype=np.float32)
    del tokens, counts
    df = np.bincount(token, minlength=len(vocab))
    idf = np.log(1 + (n - df + 0.5) / (df + 0.5)).astype(np.float32)  # Lucene idf
    k1, b = retriever.k1, retriever.b
    avg = lengths.mean() if n else np.float64(0.0)
    indptr = np.concatenate(([0], np.cumsum(per_doc)))
    scores = np.empty(len(token), dtype=np.float32)
    for start in range(0, n, _CHUNK):  # float64 as bm25s's numpy expressions, per chunk
        lo, hi = indptr[start], indptr[min(start + _CHUNK, n)]
        l_d = np.repeat(lengths[start : start + _CHUNK], per_doc[start : start + _CHUNK])
        tfc = tf[lo:hi] / (k1 * ((1 - b) + b * l_d / avg) + tf[lo:hi])
        scores[lo:hi] = idf[token[lo:hi]] * tfc
    del tf
    matrix = csr_matrix((scores, token, indptr), shape=(n, len(vocab))).tocsc()
    del scores, token
    retriever.scores = {"data": matrix.data, "indices": matrix.indices.astype(np.int32),
                        "indptr": matrix.indptr.astype(np.int64), "num_docs": n}
    retriever.vocab_dict = {**vocab, "": len(vocab)}  # bm25s's empty token, last
    retriever.unique_token_ids_set = set(retriever.vocab_dict.values())
    retriever.nonoccurrence_array = None


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock between processes (POSIX); without fcntl, none (a race only
    builds the same index twice)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def load_or_build_index(texts: list[str], key: str, stopwords: str, folder: Path | None,
                        ) -> Bm25Index:
    """The index saved in ``folder/bm25-KEY`` (memory-mapped), built and saved first when
    missing; one process builds while the others wait for it. Without a writable folder,
    an in-memory index."""
    if folder is None:
        return Bm25Index(texts, stopwords)
    target = folder / f"bm25-{key}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with _file_lock(folder / f"bm25-{key}.lock"):
            if not (target / "params.index.json").is_file():
                index = Bm25Index(texts, stopwords)
                tmp = folder / f".bm25-{key}-{uuid.uuid4().hex[:8]}"
                index.save(tmp)
                shutil.rmtree(target, ignore_errors=True)
                os.replace(tmp, target)
                del index  # the built arrays go; the saved ones are mapped below
        return Bm25Index.load(target, stopwords)
    except OSError:  # read-only run folder: keep it in memory
        return Bm25Index(texts, stopwords)


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
        self._search: SearchBackend | None = None
        self._fresh()

    def _fresh(self) -> None:
        """Process-local state: locks, the loaded index, queries waiting for a batch."""
        self._lock = threading.Lock()
        self._search_lock = threading.Lock()
        self._index: Bm25Index | None = None
        self._indexed: tuple[int, int] | None = None
        self._pending: list[tuple[str, list[dict[str, Any]], Path, asyncio.Future[Any]]] = []
        self._flushes: set[asyncio.Task[None]] = set()

    def __getstate__(self) -> dict[str, Any]:
        # Pickled into Ray actors / worker processes: locks cannot be pickled, and the index
        # (or its memory map) is reloaded from the run folder where it is needed.
        state = self.__dict__.copy()
        for name in ("_lock", "_search_lock", "_index", "_indexed", "_pending", "_flushes",
                     "_search"):
            state.pop(name, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._search = None  # setup() loads the adapter again
        self._fresh()

    def reads(self) -> list[str]:
        cfg = self.config
        return list(dict.fromkeys([*cfg.query_columns, *cfg.fallback_columns]))

    def query(self, record: dict[str, Any]) -> str:
        """``query_columns`` joined; when they are all empty, ``fallback_columns`` joined."""
        for columns in (self.config.query_columns, self.config.fallback_columns):
            parts = []
            for column in columns:
                value = record.get(column)
                if isinstance(value, list):
                    value = " ".join(str(v) for v in value if v is not None)
                parts.append(str(value or "").strip())
            text = " ".join(p for p in parts if p)
            if text:
                return text
        return ""

    def _index_for(self, documents: list[dict[str, Any]], run_dir: Path | None) -> Bm25Index:
        with self._lock:
            seen = (id(documents), len(documents))
            if self._index is None or self._indexed != seen:
                cfg = self.config
                key = stable_hash("bm25", cfg.text_column, cfg.stopwords,
                                  [d.get(META, {}).get("id") for d in documents], length=24)
                texts = [str(d.get(cfg.text_column) or "") for d in documents]
                folder = None if run_dir is None else Path(run_dir) / "index"
                self._index = load_or_build_index(texts, key, cfg.stopwords, folder)
                self._indexed = seen
            return self._index

    def setup(self, ctx: Any) -> None:
        super().setup(ctx)
        if self.config.search != "bm25":
            self._search = load_search_backend(self.config.search, self.config.search_options)

    def search_many(self, queries: list[str], documents: list[dict[str, Any]],
                    run_dir: Path | None = None) -> list[list[SearchHit]]:
        """Best BM25 hit of each query over ``documents`` (blocking: call it off the loop)."""
        cfg = self.config
        out = []
        for found in self._index_for(documents, run_dir).top_many(queries, k=1):
            hits = []
            for index, score in found:
                doc = documents[index]
                title = doc.get(cfg.title_column) if cfg.title_column else None
                hits.append(SearchHit(str(doc.get(cfg.text_column) or ""), score,
                                      doc[META]["id"], title))
            out.append(hits)
        return out

    def _adapter_search(self, query: str) -> list[SearchHit]:
        assert self._search is not None
        with self._search_lock:  # adapters need not be thread-safe: one call at a time
            return self._search.search(query, 1)

    async def _hits(self, query: str, ctx: ItemContext) -> list[SearchHit] | str:
        """Best hits first, or the reason there are none to search."""
        if self._search is not None:
            return await asyncio.to_thread(self._adapter_search, query)
        documents = ctx.context.get(self.config.corpus or "") or []
        if not documents:
            return f"corpus {self.config.corpus!r} has no documents"
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[SearchHit]] = loop.create_future()
        self._pending.append((query, documents, ctx.run.run_dir, future))
        if len(self._pending) == 1:
            # After the other items of this turn (an executor batch) have queued theirs.
            loop.call_soon(self._start_flush)
        return await future

    def _start_flush(self) -> None:
        batch, self._pending = self._pending, []
        task = asyncio.ensure_future(self._flush(batch))
        self._flushes.add(task)
        task.add_done_callback(self._flushes.discard)

    async def _flush(self, batch: list[tuple[str, list[dict[str, Any]], Path,
                                             asyncio.Future[Any]]]) -> None:
        groups: dict[int, list[int]] = {}
        for i, (_, documents, _, _) in enumerate(batch):
            groups.setdefault(id(documents), []).append(i)
        for members in groups.values():
            _, documents, run_dir, _ = batch[members[0]]
            try:
                found = await asyncio.to_thread(
                    self.search_many, [batch[i][0] for i in members], documents, run_dir)
            except Exception as exc:  # noqa: BLE001 - each waiting item gets the error
                for i in members:
                    if not batch[i][3].done():
                        batch[i][3].set_exception(exc)
                continue
            for i, hits in zip(members, found, strict=True):
                if not batch[i][3].done():
                    batch[i][3].set_result(hits)

    async def process(self, record: dict[str, Any], ctx: ItemContext) -> Output | ItemResult:
        hits = await self._hits(self.query(record), ctx)
        if isinstance(hits, str):
            return ItemResult.drop(hits)
        if not hits or hits[0].score <= self.config.min_score:
            return ItemResult.drop(
                f"no supporting document (best {self.config.search} score "
                f"{hits[0].score if hits else 0:.3f} <= min_score {self.config.min_score})")
        hit = hits[0]
        grammar = grammar_limited(ctx)
        tokens = self.config.max_doc_tokens or (800 if grammar else 4096)
        chars = self.config.max_doc_chars
        text = hit.text[:chars] if chars else hit.text
        # No token spans 32 characters: a cheap bound before the tokenizer sees a huge page.
        text = text[: tokens * 32]
        count = ctx.run.llm.count_tokens if ctx.run.llm is not None else None
        text = truncate_to_tokens(text, tokens, count)
        columns = {"document": text, "document_id": hit.doc_id, "document_title": hit.title,
                   "retrieval_score": round(hit.score, 4)}
        if hit.url:
            columns["document_url"] = hit.url
        return Output(columns=columns, meta={"retrieved": hit.doc_id})
