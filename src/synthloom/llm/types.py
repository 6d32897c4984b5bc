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

    def to_json(self) -> dict[str, Any]:
        # By hand, not dataclasses.asdict (a deep copy, ~10x slower): this is in every
        # request's cache key. Same keys in the same order, so the keys do not change.
        return {"temperature": self.temperature, "top_p": self.top_p,
                "max_tokens": self.max_tokens,
                "stop": list(self.stop) if self.stop is not None else None, "seed": self.seed}


@dataclass(slots=True)
class LLMRequest:
    """Chat ``messages`` or a raw ``prompt`` (exactly one), sampling params, optional schema.

    ``n`` samples are drawn as separate calls with seeds ``seed + i``, each cached on its own,
    so raising ``n`` later reuses the samples already drawn.
    """

    messages: list[dict[str, str]] | None = None
    prompt: str | None = None
    params: SamplingParams = field(default_factory=SamplingParams)
    json_schema: dict[str, Any] | None = None
    n: int = 1
    # Free-form tags for logs (step name, record id); not part of the cache key.
    tags: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if (self.messages is None) == (self.prompt is None):
            raise ValueError("LLMRequest needs exactly one of messages or prompt")
        if self.n < 1:
            raise ValueError("LLMRequest.n must be >= 1")

    def content_key(self) -> dict[str, Any]:
        """What determines the output (for cache keys): everything but tags and n."""
        return {
            "messages": self.messages,
            "prompt": self.prompt,
            "params": self.params.to_json(),
            "json_schema": self.json_schema,
        }

    def cache_key(self, model_id: str, sample_index: int) -> str:
        return stable_hash("llm", model_id, self.content_key(), sample_index)


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
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any], *, cached: bool = False) -> LLMResponse:
        data = dict(data)
        data["usage"] = Usage(**data.get("usage", {}))
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
