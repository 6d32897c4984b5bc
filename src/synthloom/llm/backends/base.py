"""The backend protocol: one call, one sample. Everything else lives once, in the client."""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from typing import TypeVar

from synthloom.core.errors import BackendError
from synthloom.llm.types import LLMRequest, RawCompletion, RawScore, ScorePrompt

T = TypeVar("T")


async def next_batch(queue: asyncio.Queue[T], max_batch: int, gather_s: float) -> list[T]:
    """The next batch for a backend that batches inside (vLLM, reward models): the first item
    waited for, then whatever else arrives within ``gather_s``, up to ``max_batch``."""
    loop = asyncio.get_running_loop()
    batch = [await queue.get()]
    deadline = loop.time() + gather_s
    while len(batch) < max_batch:
        timeout = deadline - loop.time()
        if timeout <= 0:
            break
        try:
            batch.append(await asyncio.wait_for(queue.get(), timeout))
        except TimeoutError:
            break
    return batch


class Backend(ABC):
    """A model endpoint. Implementations raise TransientLLMError / PermanentLLMError."""

    #: Backend kind ("llamacpp", "openai", ...).
    kind: str = "base"
    #: The backend enforces a JSON schema itself (grammar / guided decoding).
    supports_json_schema: bool = False
    #: The backend accepts raw prompts (completion endpoint, no chat template).
    supports_raw_prompt: bool = False
    #: A sensible default for in-flight requests.
    default_concurrency: int = 8
    #: The backend generates text (``complete``); a reward model does not.
    supports_generate: bool = True
    #: The backend scores (prompt, response) pairs (``score``): a reward model.
    supports_score: bool = False
    #: The backend takes ``tools`` and returns ``tool_calls`` itself (OpenAI-compatible
    #: servers); otherwise the client asks for a schema-constrained {tool_calls | content}.
    supports_tools: bool = False
    #: The backend returns token logprobs when a request asks (``LLMRequest.logprobs``).
    supports_logprobs: bool = False

    @property
    def max_call_s(self) -> float | None:
        """The longest one ``complete`` or ``score`` call can take, bounded by the backend's
        own deadlines (None: unbounded). The client sets a timer of its own only when this
        is None or longer than its ``request_timeout_s``."""
        return None

    @property
    def spec(self) -> str:
        """How the user named this backend, for error messages (``reward:/models/rm``)."""
        return self.kind

    @property
    @abstractmethod
    def model_id(self) -> str:
        """Identifies the model in cache keys and provenance (name + file hash where local)."""

    @abstractmethod
    async def complete(self, request: LLMRequest, *, seed: int | None) -> RawCompletion:
        """One completion for ``request`` with the given seed (``request.n`` is ignored here)."""

    async def score(self, prompt: ScorePrompt, response: str) -> RawScore:
        """The reward of ``response`` to ``prompt`` (one pair; batching is the backend's)."""
        raise BackendError(f"backend {self.spec} cannot score (prompt, response) pairs; "
                           "name a reward model, e.g. reward:/path/to/reward-model")

    def count_tokens(self, text: str) -> int:
        """Token count with the backend's tokenizer where it has one; an estimate otherwise.
        The client counts through ``llm/tokens.select_counter`` (an LRU, and a safer
        estimate where ``tokenizer_name`` is None)."""
        return max(1, len(text) // 4)

    def tokenizer_name(self) -> str | None:
        """How ``count_tokens`` counts when it is the served model's own tokenizer
        (``model:llamacpp``, ``server:/tokenize``); None when it only estimates."""
        return None

    @property
    def context_length(self) -> int | None:
        """The model's context window (prompt + answer) in tokens, where the backend knows it
        (an in-process model's n_ctx, a server's ``max_model_len``); None otherwise."""
        return None

    #: Where ``context_length`` came from, for summary.json (``server``, ``n_ctx``, ...).
    context_length_source: str = "server"

    async def check(self) -> None:  # noqa: B027 - optional hook
        """Fail fast with a BackendError naming what is wrong (unreachable URL, missing file)."""

    @property
    def resolved_model(self) -> str | None:
        """The model name ``check()`` chose when none was given (an OpenAI-compatible server's
        first listed model), so copies of this backend built elsewhere (Ray workers) can be
        given it; None where the backend resolves nothing."""
        return None

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release connections / model memory."""
