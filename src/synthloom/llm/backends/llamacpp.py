"""In-process llama.cpp (``llama-cpp-python``): the embedded default and any local GGUF file."""

from __future__ import annotations

import asyncio
import hashlib
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from synthloom.core.errors import BackendError
from synthloom.core.fingerprint import canonical_json
from synthloom.llm.backends.base import Backend
from synthloom.llm.embedded import INSTALL_HINT, embedded_model_path
from synthloom.llm.types import (
    LLMRequest,
    PermanentLLMError,
    RawCompletion,
    TransientLLMError,
    Usage,
    normalize_logprobs,
)

_HASH_CHUNK = 1 << 20  # 1 MiB from each end: cheap, yet changes whenever the weights do
_MAX_GRAMMARS = 64


#: Integer ranges up to this wide become enums in the grammar (see ``grammar_schema``).
_ENUM_RANGE_MAX = 100


def grammar_schema(schema: Any) -> Any:
    """``schema`` as llama-cpp-python's grammar converter should see it.

    The converter ignores ``minimum``/``maximum``, so a 1-10 judge score could come out as
    1000000000000000 (seen with the embedded model) and fail validation on every retry. A small
    bounded integer range is also given as an ``enum``, which the grammar does enforce; the
    client still validates against the original schema."""
    if isinstance(schema, list):
        return [grammar_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: grammar_schema(value) for key, value in schema.items()}
    low, high = out.get("minimum"), out.get("maximum")
    if (out.get("type") == "integer" and "enum" not in out and isinstance(low, int)
            and isinstance(high, int) and 0 <= high - low <= _ENUM_RANGE_MAX):
        out["enum"] = list(range(low, high + 1))
    return out


def _import_llama_cpp() -> Any:
    try:
        import llama_cpp
    except ImportError as exc:
        raise BackendError(
            f"the llamacpp backend needs the package llama-cpp-python; run: {INSTALL_HINT}"
        ) from exc
    return llama_cpp


def gguf_fingerprint(path: Path) -> str:
    """12 hex chars over (size, first MiB, last MiB): stable and fast even for 70B files."""
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            head = fh.read(_HASH_CHUNK)
            fh.seek(max(0, size - _HASH_CHUNK))
            tail = fh.read(_HASH_CHUNK)
    except OSError as exc:
        raise BackendError(f"cannot read GGUF model file {path}: {exc.strerror or exc}") from exc
    digest = hashlib.blake2b(digest_size=16)
    digest.update(str(size).encode())
    digest.update(head)
    digest.update(tail)
    return digest.hexdigest()[:12]


class LlamaCppBackend(Backend):
    """llama.cpp in this process. Every model call runs in one dedicated worker thread, because
    a ``Llama`` object is not thread-safe; the event loop only awaits that thread."""

    kind = "llamacpp"
    supports_json_schema = True
    supports_raw_prompt = True
    default_concurrency = 1

    def __init__(
        self,
        model_path: str | Path | None = None,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        logits_all: bool = False,
    ) -> None:
        self._explicit_path = Path(model_path).expanduser() if model_path is not None else None
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        # Logprobs need every position's logits kept (n_ctx x vocab floats: ~400 MB for
        # SmolLM2 at 2048), so only a backend asked for them pays it.
        self.logits_all = logits_all
        self.supports_logprobs = logits_all
        self._path: Path | None = None
        self._model_id: str | None = None
        self._llm: Any = None
        self._load_lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        # Compiled grammars keyed by canonical schema JSON (compiling is pure Python, not free).
        self._grammars: dict[str, Any] = {}

    def __repr__(self) -> str:
        where = self._explicit_path if self._explicit_path is not None else "embedded"
        return f"LlamaCppBackend(model_path={str(where)!r}, n_ctx={self.n_ctx})"

    # --- model file and loading -------------------------------------------------------------

    @property
    def model_path(self) -> Path:
        if self._path is None:
            path = self._explicit_path if self._explicit_path is not None else embedded_model_path()
            if not path.is_file():
                raise BackendError(f"GGUF model file not found: {path}")
            self._path = path
        return self._path

    @property
    def model_id(self) -> str:
        if self._model_id is None:
            path = self.model_path
            self._model_id = f"llamacpp:{path.name}:{gguf_fingerprint(path)}"
        return self._model_id

    def _load(self) -> Any:
        """Load the model once; safe from any thread (count_tokens may run outside the worker)."""
        if self._llm is not None:
            return self._llm
        with self._load_lock:
            if self._llm is None:
                llama_cpp = _import_llama_cpp()
                from synthloom.llm.backends.llamacpp_cpu import apply_extra_buffer_setting

                apply_extra_buffer_setting()  # AMX weight buffers crash batched decode
                path = self.model_path
                kwargs: dict[str, Any] = {"n_ctx": self.n_ctx, "verbose": False,
                                          "logits_all": self.logits_all}
                if self.n_threads is not None:
                    kwargs["n_threads"] = self.n_threads
                try:
                    self._llm = llama_cpp.Llama(model_path=str(path), **kwargs)
                except (ValueError, RuntimeError, OSError) as exc:
                    raise BackendError(f"cannot load GGUF model {path}: {exc}") from exc
        return self._llm

    def _worker(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llamacpp")
        return self._executor

    async def _in_worker(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._worker(), fn, *args)

    async def check(self) -> None:
        _ = self.model_id  # hashes the file: a missing or unreadable path fails here
        await self._in_worker(self._load)

    async def aclose(self) -> None:
        if self._executor is None:
            return
        await self._in_worker(self._close_sync)
        self._executor.shutdown(wait=True)
        self._executor = None

    def _close_sync(self) -> None:
        llm, self._llm = self._llm, None
        if llm is not None:
            llm.close()

    # --- calls ------------------------------------------------------------------------------

    def count_tokens(self, text: str) -> int:
        # Tokenizing only reads the vocabulary, so it need not queue behind a generation.
        return len(self._load().tokenize(text.encode("utf-8"), add_bos=False))

    def tokenizer_name(self) -> str | None:
        return "model:llamacpp"

    @property
    def context_length(self) -> int | None:
        return self.n_ctx

    context_length_source = "n_ctx"

    def chat_template(self) -> str | None:
        """The model's own Jinja chat template (GGUF ``tokenizer.chat_template``), or None."""
        return self._load().metadata.get("tokenizer.chat_template") or None

    async def complete(self, request: LLMRequest, *, seed: int | None) -> RawCompletion:
        return await self._in_worker(self._complete_sync, request, seed)

    def _echo_sync(self, llm: Any, request: LLMRequest) -> RawCompletion:
        """A prompt's own logprobs and one greedy token, from one eval and a numpy
        log-softmax: llama-cpp-python's echo path sorts the whole vocabulary in Python for
        every prompt token (minutes for a 400-token prompt on a loaded CPU)."""
        import numpy as np

        prompt = str(request.prompt)
        tokens = llm.tokenize(prompt.encode("utf-8"), special=True)
        if len(tokens) >= self.n_ctx:
            raise PermanentLLMError(f"prompt too long for the model's context of {self.n_ctx} "
                                    f"tokens ({len(tokens)}); shorten the input or raise n_ctx")
        llm.eval(tokens)
        rows = np.asarray(llm.scores[: len(tokens)], dtype=np.float64)
        top = rows.max(axis=1, keepdims=True)
        logp = rows - (top + np.log(np.exp(rows - top).sum(axis=1, keepdims=True)))
        k = int(request.logprobs or 0)
        # Token texts by incremental decoding: a character split over tokens (UTF-8 bytes)
        # belongs to the token that completes it, so the texts join to the prompt.
        pieces, done, text = [], b"", ""
        for tok in [*tokens, int(np.argmax(logp[-1]))]:
            done += llm.detokenize([tok])
            now = done.decode("utf-8", errors="ignore")
            pieces.append(now[len(text):])
            text = now
        out = []
        for i, piece in enumerate(pieces):
            row = logp[i - 1] if i else None  # row i-1 predicts token i
            alts = {} if row is None or k <= 0 else {
                llm.detokenize([int(j)]).decode("utf-8", errors="ignore"): float(row[j])
                for j in np.argpartition(-row, k)[:k]}
            tok = tokens[i] if i < len(tokens) else int(np.argmax(logp[-1]))
            out.append({"token": piece, "logprob": None if row is None else float(row[tok]),
                        "top": alts})
        return RawCompletion(text=prompt + pieces[-1], finish_reason="length",
                             usage=Usage(prompt_tokens=len(tokens), completion_tokens=1),
                             model=self.model_id, logprobs=out)

    def _grammar(self, schema: dict[str, Any]) -> Any:
        key = canonical_json(schema)
        grammar = self._grammars.get(key)
        if grammar is None:
            llama_cpp = _import_llama_cpp()
            try:
                grammar = llama_cpp.LlamaGrammar.from_json_schema(
                    canonical_json(grammar_schema(schema)), verbose=False)
            except Exception:
                # Same fallback as llama.cpp's chat path: any JSON; the client validates after.
                grammar = llama_cpp.LlamaGrammar.from_string(
                    llama_cpp.llama_grammar.JSON_GBNF, verbose=False
                )
            if len(self._grammars) >= _MAX_GRAMMARS:
                self._grammars.clear()
            self._grammars[key] = grammar
        return grammar

    def _complete_sync(self, request: LLMRequest, seed: int | None) -> RawCompletion:
        llm = self._load()
        # Forget the KV cache: reusing a cached prompt prefix evaluates only the suffix, which
        # shifts the logits slightly, so the same seed would give a different sample.
        llm.reset()
        if (request.prompt is not None and request.echo and request.logprobs is not None
                and request.json_schema is None and request.params.max_tokens <= 1
                and request.params.temperature == 0.0):
            return self._echo_sync(llm, request)
        params = request.params
        kwargs: dict[str, Any] = {
            "temperature": params.temperature,
            "top_p": params.top_p,
            "max_tokens": params.max_tokens,
            "stop": list(params.stop or []),
            "seed": seed,
            "presence_penalty": params.presence_penalty,
        }
        try:
            if request.messages is not None:
                if request.json_schema is not None:
                    # The chat handler compiles this into a grammar (llama-cpp-python >= 0.2.x).
                    kwargs["response_format"] = {
                        "type": "json_object",
                        "schema": grammar_schema(request.json_schema),
                    }
                if request.logprobs is not None:
                    kwargs.update(logprobs=True, top_logprobs=request.logprobs)
                out = llm.create_chat_completion(messages=request.messages, **kwargs)
                choice = out["choices"][0]
                text = choice["message"].get("content") or ""
            else:
                if request.json_schema is not None:
                    kwargs["grammar"] = self._grammar(request.json_schema)
                if request.logprobs is not None:
                    kwargs.update(logprobs=request.logprobs, echo=request.echo)
                out = llm.create_completion(prompt=request.prompt, **kwargs)
                choice = out["choices"][0]
                text = choice.get("text") or ""
        except ValueError as exc:
            msg = str(exc)
            if "context window" in msg:
                raise PermanentLLMError(
                    f"prompt too long for the model's context of {self.n_ctx} tokens ({msg}); "
                    "shorten the input or raise n_ctx"
                ) from exc
            raise PermanentLLMError(f"llama.cpp rejected the request: {msg}") from exc
        except RuntimeError as exc:
            # llama_decode failures (e.g. no KV-cache slot) can clear on a later attempt.
            raise TransientLLMError(f"llama.cpp decode failed: {exc}") from exc
        usage = out.get("usage") or {}
        return RawCompletion(
            text=text,
            finish_reason=choice.get("finish_reason"),
            usage=Usage(
                prompt_tokens=int(usage.get("prompt_tokens") or 0),
                completion_tokens=int(usage.get("completion_tokens") or 0),
            ),
            model=self.model_id,
            logprobs=normalize_logprobs(choice.get("logprobs")),
        )
