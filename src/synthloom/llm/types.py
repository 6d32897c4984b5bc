"""Request and response types of the one LLM interface."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from synthloom.core.fingerprint import stable_hash


@dataclass(slots=True)
class SamplingParams:
    temperature: float = 0.7
    top_p: float = 1.0
    max_tokens: int = 512
    stop: list[str] | None = None
    seed: int | None = None
    #: OpenAI-style presence penalty (Self-Instruct's bootstrap uses 2); 0: none.
    presence_penalty: float = 0.0

    def to_json(self) -> dict[str, Any]:
        # By hand, not dataclasses.asdict (a deep copy, ~10x slower): this is in every
        # request's cache key. Same keys in the same order, so the keys do not change; a
        # penalty joins only when set, so every request without one keeps its key.
        out = {"temperature": self.temperature, "top_p": self.top_p,
               "max_tokens": self.max_tokens,
               "stop": list(self.stop) if self.stop is not None else None, "seed": self.seed}
        if self.presence_penalty:
            out["presence_penalty"] = self.presence_penalty
        return out


@dataclass(slots=True)
class LLMRequest:
    """Chat ``messages`` or a raw ``prompt`` (exactly one), sampling params, optional schema.

    ``n`` samples are drawn as separate calls with seeds ``seed + i``, each cached on its own,
    so raising ``n`` later reuses the samples already drawn.
    """

    #: OpenAI chat messages: ``{"role", "content"}``, plus assistant ``tool_calls`` and
    #: ``{"role": "tool", "tool_call_id", "content"}`` results (``llm/tools.py`` builds them).
    messages: list[dict[str, Any]] | None = None
    prompt: str | None = None
    params: SamplingParams = field(default_factory=SamplingParams)
    json_schema: dict[str, Any] | None = None
    n: int = 1
    # Free-form tags for logs (step name, record id); not part of the cache key.
    tags: dict[str, Any] = field(default_factory=dict)
    #: OpenAI function schemas (``{"type": "function", "function": {name, description,
    #: parameters}}``): the answer may be ``tool_calls`` instead of text (chat only).
    tools: list[dict[str, Any]] | None = None
    #: "auto" (None), "none", "required" or ``{"type": "function", "function": {"name": N}}``.
    tool_choice: str | dict[str, Any] | None = None
    #: False: at most one call per answer (OpenAI's ``parallel_tool_calls``); None: the
    #: server's default (several allowed).
    parallel_tool_calls: bool | None = None
    #: Token logprobs with this many alternatives per token (0: the chosen token's only).
    logprobs: int | None = None
    #: Raw prompts only: logprobs of the prompt's own tokens too (Toolformer's losses).
    echo: bool = False

    def __post_init__(self) -> None:
        if (self.messages is None) == (self.prompt is None):
            raise ValueError("LLMRequest needs exactly one of messages or prompt")
        if self.n < 1:
            raise ValueError("LLMRequest.n must be >= 1")
        if self.tools and self.messages is None:
            raise ValueError("LLMRequest.tools needs chat messages, not a raw prompt")
        if self.tools and self.json_schema is not None:
            raise ValueError("LLMRequest takes tools or a json_schema, not both")

    def content_key(self) -> dict[str, Any]:
        """What determines the output (for cache keys): everything but tags and n.
        Tool and logprob fields only when set, so the keys of plain requests stay as before."""
        key: dict[str, Any] = {
            "messages": self.messages,
            "prompt": self.prompt,
            "params": self.params.to_json(),
            "json_schema": self.json_schema,
        }
        if self.tools:
            key["tools"] = self.tools
            key["tool_choice"] = self.tool_choice
            if self.parallel_tool_calls is not None:
                key["parallel_tool_calls"] = self.parallel_tool_calls
        if self.logprobs is not None:
            key["logprobs"] = self.logprobs
            key["echo"] = self.echo
        return key

    def cache_key(self, model_id: str, sample_index: int) -> str:
        return stable_hash("llm", model_id, self.content_key(), sample_index)


@dataclass(slots=True)
class ToolCall:
    """One call the model asked for: ``arguments`` parsed from JSON (the raw string when it
    is not JSON; validation then names it)."""

    id: str
    name: str
    arguments: Any

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "arguments": self.arguments}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ToolCall:
        return cls(id=str(data["id"]), name=str(data["name"]), arguments=data.get("arguments"))


#: One generated (or echoed) token: ``{"token", "logprob", "top": {token: logprob}}``.
TokenLogprob = dict[str, Any]


def normalize_logprobs(raw: Any) -> list[dict[str, Any]] | None:
    """Token logprobs in one shape (``{"token", "logprob", "top"}``) from a chat answer
    (``logprobs.content``) or a completion (``tokens``/``token_logprobs``/``top_logprobs``)."""
    if not isinstance(raw, dict):
        return None
    if isinstance(raw.get("content"), list):
        return [{"token": t.get("token"), "logprob": t.get("logprob"),
                 "top": {a.get("token"): a.get("logprob") for a in t.get("top_logprobs") or []}}
                for t in raw["content"]]
    tokens = raw.get("tokens")
    if not isinstance(tokens, list):
        return None
    values = raw.get("token_logprobs") or [None] * len(tokens)
    tops = raw.get("top_logprobs") or [None] * len(tokens)
    return [{"token": tok, "logprob": lp, "top": dict(top or {})}
            for tok, lp, top in zip(tokens, values, tops, strict=False)]


@dataclass(slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
        )

    def to_json(self) -> dict[str, int]:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens}


@dataclass(slots=True)
class RawCompletion:
    """What a backend returns for one call, before the shared post-processing."""

    text: str
    finish_reason: str | None = None
    usage: Usage = field(default_factory=Usage)
    model: str | None = None
    #: Set by the client when it shrank max_tokens to fit the context window
    #: (``{"max_tokens": asked, "sent": n, "prompt_tokens": counted, "context_length": L}``).
    fit: dict[str, Any] | None = None
    #: Tool calls the server made natively (OpenAI ``message.tool_calls``).
    tool_calls: list[ToolCall] | None = None
    logprobs: list[TokenLogprob] | None = None


@dataclass(slots=True)
class LLMResponse:
    """One sample: answer text, reasoning kept apart, parsed JSON (when a schema was given)."""

    text: str
    reasoning: str | None = None
    parsed: Any = None
    usage: Usage = field(default_factory=Usage)
    finish_reason: str | None = None
    latency_s: float = 0.0
    model: str | None = None
    sample_index: int = 0
    cached: bool = False
    # How many backend calls this sample took (retries and repair rounds included).
    calls: int = 1
    # Wall-clock time the sample finished (epoch seconds): throughput over time in reports.
    finished_at: float = 0.0
    #: max_tokens shrunk to fit the context window (``RawCompletion.fit``), else None.
    fit: dict[str, Any] | None = None
    #: The calls asked for (validated against the request's tools), else None.
    tool_calls: list[ToolCall] | None = None
    logprobs: list[TokenLogprob] | None = None

    def to_json(self) -> dict[str, Any]:
        data = {
            "text": self.text,
            "reasoning": self.reasoning,
            "parsed": self.parsed,
            "usage": self.usage.to_json(),
            "finish_reason": self.finish_reason,
            "latency_s": self.latency_s,
            "model": self.model,
            "sample_index": self.sample_index,
            "calls": self.calls,
            "finished_at": self.finished_at,
        }
        if self.fit is not None:  # rare: kept out of the usual cache row
            data["fit"] = self.fit
        # Only when present: a plain answer's cache row stays as it was.
        if self.tool_calls is not None:
            data["tool_calls"] = [c.to_json() for c in self.tool_calls]
        if self.logprobs is not None:
            data["logprobs"] = self.logprobs
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any], *, cached: bool = False) -> LLMResponse:
        data = dict(data)
        data["usage"] = Usage(**data.get("usage", {}))
        if data.get("tool_calls") is not None:
            data["tool_calls"] = [ToolCall.from_json(c) for c in data["tool_calls"]]
        return cls(**data, cached=cached)


#: What a reward model reads: the prompt as text, or the conversation before the response.
ScorePrompt = str | list[dict[str, str]]


def score_cache_key(model_id: str, prompt: ScorePrompt, response: str) -> str:
    """Cache key of one (prompt, response) score: the model and exactly what it reads."""
    return stable_hash("score", model_id, prompt, response)


@dataclass(slots=True)
class RawScore:
    """What a scoring backend returns for one (prompt, response) pair."""

    score: float
    usage: Usage = field(default_factory=Usage)


@dataclass(slots=True)
class ScoreResult:
    """One reward-model score, with what it cost (``usage.prompt_tokens``: tokens read)."""

    score: float
    usage: Usage = field(default_factory=Usage)
    model: str | None = None
    latency_s: float = 0.0
    cached: bool = False
    calls: int = 1
    finished_at: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {"score": self.score, "usage": self.usage.to_json(), "model": self.model,
                "latency_s": self.latency_s, "calls": self.calls,
                "finished_at": self.finished_at}

    @classmethod
    def from_json(cls, data: dict[str, Any], *, cached: bool = False) -> ScoreResult:
        data = dict(data)
        data["usage"] = Usage(**data.get("usage", {}))
        return cls(**data, cached=cached)


# --- errors raised by backends, classified once for the retry layer -------------------------


class LLMError(Exception):
    """Base of backend errors."""


class TransientLLMError(LLMError):
    """Worth retrying: 429, 5xx, timeouts, connection resets, truncated bodies."""

    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None,
                 cause: str | None = None):
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after
        #: What went wrong in a word, for the summary's counts ("timeout", "invalid_body",
        #: "ReadError"...); the HTTP status when there is one and no better word.
        self.cause = cause

    @property
    def is_overload(self) -> bool:
        """429/503: the server asks us to slow down (adaptive concurrency reacts)."""
        return self.status in (429, 503)


class PermanentLLMError(LLMError):
    """Not worth retrying for this request (400, 404, 422, context too long)."""

    def __init__(self, message: str, *, status: int | None = None):
        super().__init__(message)
        self.status = status


class ContextWindowExceeded(PermanentLLMError):
    """The prompt leaves too little of the model's context window for an answer: never sent
    (a server would refuse it with a 400), never retried; the item fails with the numbers."""


class StructuredOutputError(LLMError):
    """The model's output did not validate against the schema after repair and retries."""
