"""Token counts and context windows: how many tokens a text is for *this* model, and how many
the model can hold.

A counter is chosen once per client (``select_counter``), in this order:

1. ``tokenizer: PATH`` in the model's settings: a Hugging Face tokenizer from a local folder
   (``hf:PATH``; transformers is in the ``reward`` extra). Stated by the user, and free of HTTP.
2. The backend's own tokenizer: the in-process model (``model:llamacpp``, ``model:vllm``) or
   the server's tokenize endpoint found by ``OpenAIBackend.check()``
   (``server:/tokenize`` on vLLM and llama.cpp's C++ server, ``server:/extras/tokenize`` on
   llama-cpp-python's server).
3. ``estimate(chars/4, fit as chars/3)``: counts are ``len // 4`` (what chunk sizes have
   always used), and every fit to the context window multiplies them by ``ESTIMATE_MARGIN``
   (4/3, i.e. one token per 3 characters). English runs at about 4 characters a token, so
   the fit over-counts on purpose: packing by it leaves room, not a 400.

Counts are cached by a hash of the text (an LRU), so the same demo or prompt header packed for
many documents is counted once, and a server is asked once per distinct text.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from synthloom.core.errors import BackendError

#: Assumed when neither the model's settings nor its server state a context window.
DEFAULT_CONTEXT_LENGTH = 8192
#: Chat template tokens around each message (role tags, separators) and once per prompt
#: (BOS, the assistant header, a default system prompt some templates add): counted on top
#: of the message contents, since most servers tokenize text, not conversations.
CHAT_TOKENS_PER_MESSAGE = 8
CHAT_TOKENS_FIXED = 32
#: The fewest answer tokens worth sending when max_tokens must shrink to fit the window:
#: ``min(max_tokens, max(MIN_ANSWER_TOKENS, max_tokens // 4))``.
MIN_ANSWER_TOKENS = 64
#: Counts kept per client.
CACHE_SIZE = 65_536
#: Server tokenize calls in flight at once from ``count_many``.
PARALLEL_COUNTS = 8

ESTIMATE = "estimate(chars/4, fit as chars/3)"
#: Fits multiply estimated counts by this (chars/4 -> chars/3): the stated safety margin.
ESTIMATE_MARGIN = 4 / 3


def estimate(text: str) -> int:
    """The estimate counts are kept in (``Backend.count_tokens``' default)."""
    return max(1, len(text) // 4)


def bound(counted: int, margin: float) -> int:
    """An upper bound of the true tokens of ``counted`` counted tokens."""
    return math.ceil(counted * margin)


def prompt_overhead(messages: int | None) -> int:
    """Tokens a chat template adds to ``messages`` messages (None: a raw prompt, just BOS)."""
    if messages is None:
        return 4
    return CHAT_TOKENS_FIXED + CHAT_TOKENS_PER_MESSAGE * messages


def answer_floor(max_tokens: int) -> int:
    """The fewest answer tokens a request may be shrunk to."""
    return min(max_tokens, max(MIN_ANSWER_TOKENS, max_tokens // 4))


class TokenCounter:
    """One way of counting, with an LRU of counts by text hash. ``name`` goes to summary.json
    (``llm.token_counter``)."""

    def __init__(self, name: str, count: Callable[[str], int],
                 count_async: Callable[[str], Awaitable[int]] | None = None,
                 cache_size: int = CACHE_SIZE, margin: float = 1.0) -> None:
        self.name = name
        #: True tokens <= counted * margin (1: the model's own tokenizer).
        self.margin = margin
        self._count = count
        self._count_async = count_async
        self._cache: OrderedDict[bytes, int] = OrderedDict()
        self._size = cache_size
        self._lock = threading.Lock()
        #: Texts actually tokenized (cache misses): what the LRU saves is visible in tests.
        self.misses = 0

    @staticmethod
    def _key(text: str) -> bytes:
        return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()

    def _get(self, key: bytes) -> int | None:
        with self._lock:
            value = self._cache.get(key)
            if value is not None:
                self._cache.move_to_end(key)
            return value

    def _put(self, key: bytes, value: int) -> None:
        with self._lock:
            self._cache[key] = value
            self._cache.move_to_end(key)
            while len(self._cache) > self._size:
                self._cache.popitem(last=False)

    def count(self, text: str) -> int:
        if not text:
            return 0
        key = self._key(text)
        value = self._get(key)
        if value is None:
            self.misses += 1
            value = self._count(text)
            self._put(key, value)
        return value

    async def count_many(self, texts: Sequence[str]) -> list[int]:
        """Counts of ``texts``; cache misses go to the server concurrently (none of vLLM,
        llama.cpp or llama-cpp-python takes several texts in one tokenize call)."""
        keys = [self._key(t) if t else b"" for t in texts]
        missing = {k: t for k, t in zip(keys, texts, strict=True)
                   if t and self._get(k) is None}
        if missing:
            self.misses += len(missing)
            if self._count_async is None:
                for key, text in missing.items():
                    self._put(key, self._count(text))
            else:
                gate = asyncio.Semaphore(PARALLEL_COUNTS)
                count_async = self._count_async

                async def one(key: bytes, text: str) -> None:
                    async with gate:
                        self._put(key, await count_async(text))

                await asyncio.gather(*(one(k, t) for k, t in missing.items()))
        out = []
        for key, text in zip(keys, texts, strict=True):
            value = self._get(key) if text else 0
            out.append(self._count(text) if value is None else value)  # evicted meanwhile
        return out


def hf_counter(path: str) -> TokenCounter:
    """A Hugging Face tokenizer from a local folder (loaded on first use, never downloaded)."""
    holder: dict[str, Any] = {}

    def load() -> Any:
        if "tok" not in holder:
            try:
                from transformers import AutoTokenizer
            except ImportError as exc:
                raise BackendError(
                    f"tokenizer: {path} needs the transformers package "
                    "(pip install 'synthloom[reward]'), or leave tokenizer unset to use the "
                    "server's tokenizer or an estimate") from exc
            try:
                holder["tok"] = AutoTokenizer.from_pretrained(path, local_files_only=True)
            except (OSError, ValueError) as exc:
                raise BackendError(f"cannot load the tokenizer at {path}: {exc}") from exc
        return holder["tok"]

    def count(text: str) -> int:
        return len(load().encode(text, add_special_tokens=False))

    return TokenCounter(f"hf:{path}", count)


def select_counter(backend: Any, tokenizer: str | None = None) -> TokenCounter:
    """The counter for a client of ``backend`` (order: module docstring)."""
    if tokenizer:
        return hf_counter(tokenizer)
    name = backend.tokenizer_name()
    if name:
        return TokenCounter(name, backend.count_tokens,
                            getattr(backend, "count_tokens_async", None))
    from synthloom.llm.backends.base import Backend

    if type(backend).count_tokens is not Backend.count_tokens:
        # A backend class with its own count_tokens (a test double, a plug-in backend).
        return TokenCounter(f"backend:{backend.kind}", backend.count_tokens)
    return TokenCounter(ESTIMATE, backend.count_tokens, margin=ESTIMATE_MARGIN)


def context_window(backend: Any, setting: int | None) -> tuple[int, str]:
    """The context window and where it came from: the smaller of the setting and what the
    backend reports (a setting may narrow the server's window, not widen it), else the
    default."""
    reported = backend.context_length
    if setting and reported:
        return (setting, "setting") if setting <= reported else (reported, "server")
    if setting:
        return setting, "setting"
    if reported:
        return reported, backend.context_length_source
    return DEFAULT_CONTEXT_LENGTH, "default"
