"""The LLM client: the one place where limits, retries, structure and caching wrap a backend.

Per sample: response cache → budget check → rate limit → adaptive concurrency gate → backend
call (timeout; retries with backoff + jitter on transient errors, honouring Retry-After) →
context window fit (prompt + max_tokens must fit the model's window: max_tokens shrunk to what
fits, down to a floor, else ``ContextWindowExceeded`` without a call) → reasoning split → an
empty chat answer asked again (``empty_retries``; an empty answer is
never cached nor served from the cache; still empty: counted in ``failed_requests`` and given
to the step, which decides what it means) → schema validation, JSON repair, and re-asking
with the validation errors → cache write.
Steps see only ``generate(request) -> [LLMResponse] * n``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections import Counter
from typing import Any, Protocol

from synthloom.core.errors import SynthloomError
from synthloom.core.fingerprint import stable_hash
from synthloom.llm.backends.base import Backend
from synthloom.llm.limits import AdaptiveConcurrency, RateLimiter, RetryPolicy, TokenBudget
from synthloom.llm.structured import (
    parse_structured,
    repair_messages,
    repair_prompt,
    schema_instructions,
    split_reasoning,
)
from synthloom.llm.tokens import (
    TokenCounter,
    answer_floor,
    bound,
    context_window,
    prompt_overhead,
    select_counter,
)
from synthloom.llm.toolcalls import (
    MAX_CALLS,
    as_text_messages,
    call_errors,
    parse_tool_answer,
    repair_calls_messages,
    tools_prompt,
    union_schema,
    with_tools_prompt,
)
from synthloom.llm.types import (
    ContextWindowExceeded,
    LLMRequest,
    LLMResponse,
    RawCompletion,
    ScorePrompt,
    ScoreResult,
    StructuredOutputError,
    TransientLLMError,
    Usage,
    score_cache_key,
)

#: The cause name of empty answers in ``retry_causes`` and ``failure_causes``.
EMPTY = "empty_completion"


class ResponseCache(Protocol):
    def get_llm(self, key: str) -> dict[str, Any] | None: ...

    def put_llm(self, key: str, value: dict[str, Any]) -> None: ...

    def flush(self) -> None:
        """Make every ``put_llm`` so far durable."""
        ...


class LLMClient:
    def __init__(
        self,
        backend: Backend,
        *,
        concurrency: int | None = None,
        rpm: float | None = None,
        tpm: float | None = None,
        max_attempts: int = 6,
        request_timeout_s: float = 600.0,
        budget_tokens: int | None = None,
        structured_retries: int = 2,
        max_repair_tokens: int = 4096,
        empty_retries: int = 2,
        adaptive: bool = True,
        cache: ResponseCache | None = None,
        retry: RetryPolicy | None = None,
        context_length: int | None = None,
        tokenizer: str | None = None,
    ) -> None:
        self.backend = backend
        #: The ``context_length`` setting (models: / --model-for); the backend may state one.
        self.context_setting = context_length
        #: The ``tokenizer`` setting: a local Hugging Face tokenizer folder.
        self.tokenizer_path = tokenizer
        self._counter: TokenCounter | None = None
        self.concurrency = concurrency or backend.default_concurrency
        self.gate = AdaptiveConcurrency(self.concurrency) if adaptive else None
        self._fixed_gate = None if adaptive else asyncio.Semaphore(self.concurrency)
        self.rate = RateLimiter(rpm=rpm, tpm=tpm)
        self.retry = retry or RetryPolicy(max_attempts=max_attempts)
        self.budget = TokenBudget(budget_tokens)
        self.request_timeout_s = request_timeout_s
        self.structured_retries = structured_retries
        #: More tries of the same request when an answer comes back empty.
        self.empty_retries = empty_retries
        self.max_repair_tokens = max_repair_tokens
        self.cache = cache
        self._counts: Counter[str] = Counter()
        self._causes: Counter[str] = Counter()
        self._failures: Counter[str] = Counter()
        #: What ``take_counts`` last handed out (a Ray actor's client reports deltas).
        self._taken: dict[str, Any] | None = None
        #: Folded in by ``add_counts`` from this model's clients in other processes (Ray
        #: actors), besides the counters above: so ``stats`` describes the whole run.
        self._others: dict[str, Any] = {"budget_tokens_spent": 0, "concurrency_decreases": 0,
                                        "concurrency_limit": {}, "concurrency_lowest": None}
        #: Set by ``halt`` (the run was interrupted): no new backend call starts.
        self._halted = False

    def halt(self) -> None:
        """Start no new backend call from now on (the run is interrupted or has failed):
        callers waiting for a slot would otherwise send requests after Ctrl-C."""
        self._halted = True

    def resume(self) -> None:
        self._halted = False

    def _check_halted(self) -> None:
        if self._halted:
            # Cancelled, not failed: the waiting task ends quietly, and nothing is cached.
            raise asyncio.CancelledError("the run was interrupted; no new LLM request")

    @property
    def model_id(self) -> str:
        return self.backend.model_id

    @property
    def backend_kind(self) -> str:
        """The backend's kind (``llamacpp``, ``openai``, ...): steps that must respect one
        backend's limits (llama.cpp grammar sizes) read it."""
        return self.backend.kind

    @property
    def token_counter(self) -> TokenCounter:
        """Chosen on first use, after ``backend.check()`` found the server's tokenizer."""
        if self._counter is None:
            self._counter = select_counter(self.backend, self.tokenizer_path)
        return self._counter

    def count_tokens(self, text: str) -> int:
        return self.token_counter.count(text)

    async def count_tokens_many(self, texts: list[str]) -> list[int]:
        """Counts of ``texts`` (cached; a server's tokenizer is asked concurrently)."""
        return await self.token_counter.count_many(texts)

    @property
    def context_length(self) -> int:
        """The model's context window: the smaller of the setting and what the backend
        states, else ``tokens.DEFAULT_CONTEXT_LENGTH`` (``context_length_source`` says which)."""
        return context_window(self.backend, self.context_setting)[0]

    @property
    def context_length_source(self) -> str:
        return context_window(self.backend, self.context_setting)[1]

    def prompt_tokens(self, messages: list[dict[str, str]] | None = None,
                      prompt: str | None = None) -> int:
        """An upper bound of a prompt's tokens as the model will see it: contents counted
        (times the counter's margin), plus the chat template's overhead."""
        margin = self.token_counter.margin
        if messages is None:
            return bound(self.count_tokens(prompt or ""), margin) + prompt_overhead(None)
        counted = sum(self.count_tokens(str(m.get("content") or "")) for m in messages)
        return bound(counted, margin) + prompt_overhead(len(messages))

    async def _fit(self, request: LLMRequest) -> tuple[LLMRequest, dict[str, Any] | None]:
        """``request`` with max_tokens shrunk so that prompt + max_tokens fits the context
        window (and a note saying so), or ``ContextWindowExceeded`` when less than
        ``answer_floor`` tokens would be left for the answer."""
        window = self.context_length
        wanted = request.params.max_tokens
        texts, overhead = _prompt_texts(request)
        if _fits_by_size(texts, overhead, wanted, window):
            return request, None  # a token covers at least a byte: fits, no count needed
        counted = sum(await self.count_tokens_many(texts))
        prompt = bound(counted, self.token_counter.margin) + overhead
        if prompt + wanted <= window:
            return request, None
        room, floor = window - prompt, answer_floor(wanted)
        if room < floor:
            self._failures["context_window"] += 1
            raise ContextWindowExceeded(
                f"prompt of {prompt:,} tokens ({self.token_counter.name}, template overhead "
                f"included) + max_tokens {wanted:,} exceed the context window of {window:,} "
                f"tokens ({self.context_length_source}): {max(room, 0):,} left for the answer, "
                f"at least {floor:,} needed; shorten the input or raise context_length")
        self._counts["context_fits"] += 1
        params = dataclasses.replace(request.params, max_tokens=room)
        return dataclasses.replace(request, params=params), {
            "max_tokens": wanted, "sent": room, "prompt_tokens": prompt,
            "context_length": window}

    @property
    def supports_generate(self) -> bool:
        return self.backend.supports_generate

    @property
    def supports_score(self) -> bool:
        """A reward model: ``score`` works (and ``generate`` does not)."""
        return self.backend.supports_score

    def stats(self) -> dict[str, Any]:
        limit, lowest, decreases = self._own_gauges()
        others = self._others
        return {
            "backend": self.backend.kind,
            "model": self.model_id,
            "calls": self._counts["calls"],
            "cache_hits": self._counts["cache_hits"],
            # Tokens of every backend call this client made (new work; cache hits are free).
            "prompt_tokens": self._counts["prompt_tokens"],
            "completion_tokens": self._counts["completion_tokens"],
            "retries": self._counts["retries"],
            "retry_causes": dict(self._causes),
            "failed_requests": sum(self._failures.values()),
            "failure_causes": dict(self._failures),
            "structured_repairs": self._counts["structured_repairs"],
            "structured_failures": self._counts["structured_failures"],
            "structured_token_raises": self._counts["structured_token_raises"],
            # With other processes' clients folded in: the lowest limit any of them holds.
            "concurrency_limit": min([limit, *others["concurrency_limit"].values()]),
            "concurrency_lowest": lowest if others["concurrency_lowest"] is None
            else min(lowest, others["concurrency_lowest"]),
            "concurrency_decreases": decreases + others["concurrency_decreases"],
            "budget_tokens_spent": self.budget.spent + others["budget_tokens_spent"],
            "context_length": self.context_length,
            "context_length_source": self.context_length_source,
            # Chosen at the first count (None: nothing was counted, no server was asked).
            "token_counter": self._counter.name if self._counter is not None else None,
            # Requests whose max_tokens was shrunk to fit the window.
            "context_fits": self._counts["context_fits"],
        }

    def _own_gauges(self) -> tuple[int, int, int]:
        """This client's concurrency limit now, its lowest, and how often it was halved."""
        if self.gate is None:
            return self.concurrency, self.concurrency, 0
        return self.gate.limit, self.gate.lowest, self.gate.decreases

    def share_budget(self, tally: Any) -> None:
        """Charge this client's tokens to a tally shared with other processes, so the run's
        budget caps them together (the Ray executor: one tally for all its actors)."""
        self.budget.share(tally, self.model_id)

    def take_counts(self) -> dict[str, Any]:
        """What this client counted since the last call, for a driver to fold into its own
        client of the same model (``add_counts``): a Ray actor reports it after each batch."""
        limit, lowest, decreases = self._own_gauges()
        now = {"counts": Counter(self._counts), "retry_causes": Counter(self._causes),
               "failure_causes": Counter(self._failures),
               "budget_tokens_spent": self.budget.spent, "concurrency_decreases": decreases}
        before = self._taken or {"counts": Counter(), "retry_causes": Counter(),
                                 "failure_causes": Counter(), "budget_tokens_spent": 0,
                                 "concurrency_decreases": 0}
        self._taken = now
        delta: dict[str, Any] = {"model": self.model_id}
        for key in ("counts", "retry_causes", "failure_causes"):
            delta[key] = dict(now[key] - before[key])
        for key in ("budget_tokens_spent", "concurrency_decreases"):
            delta[key] = now[key] - before[key]
        delta.update(concurrency_limit=limit, concurrency_lowest=lowest)
        return delta

    def add_counts(self, delta: dict[str, Any], source: str = "") -> None:
        """Fold in a ``take_counts`` delta of this model's client in another process
        (``source`` names that process: its concurrency limit replaces its earlier one)."""
        self._counts.update(delta.get("counts", {}))
        self._causes.update(delta.get("retry_causes", {}))
        self._failures.update(delta.get("failure_causes", {}))
        others = self._others
        for key in ("budget_tokens_spent", "concurrency_decreases"):
            others[key] += delta.get(key, 0)
        if "concurrency_limit" in delta:
            others["concurrency_limit"][source] = delta["concurrency_limit"]
        if "concurrency_lowest" in delta:
            lowest = others["concurrency_lowest"]
            others["concurrency_lowest"] = delta["concurrency_lowest"] if lowest is None \
                else min(lowest, delta["concurrency_lowest"])

    async def generate(self, request: LLMRequest) -> list[LLMResponse]:
        """``request.n`` samples (each cached by its own sample index), in order."""
        if not self.backend.supports_generate:
            await self.backend.complete(request, seed=None)  # raises its own clear error
        if request.logprobs is not None and not self.backend.supports_logprobs:
            raise SynthloomError(f"backend {self.backend.spec} returns no token logprobs; "
                                 "use llamacpp (logits_all=true) or an OpenAI-compatible server")
        if request.n == 1:
            return [await self._sample(request, 0)]
        return list(await asyncio.gather(*(self._sample(request, i) for i in range(request.n))))

    async def generate_many(self, requests: list[LLMRequest]) -> list[list[LLMResponse]]:
        return list(await asyncio.gather(*(self.generate(r) for r in requests)))

    async def score(self, pairs: list[tuple[ScorePrompt, str]]) -> list[ScoreResult]:
        """Reward-model scores of (prompt, response) pairs, in order. Each pair is one call
        with the cache, budget, rate limits, concurrency gate and retries of ``generate``;
        the backend batches the pairs in flight."""
        if not self.backend.supports_score:
            raise SynthloomError(f"backend {self.backend.spec} cannot score (prompt, response) "
                                 "pairs; name a reward model, e.g. reward:/path/to/model")
        return list(await asyncio.gather(*(self._score_one(p, r) for p, r in pairs)))

    async def aclose(self) -> None:
        await self.backend.aclose()

    async def _score_one(self, prompt: ScorePrompt, response: str) -> ScoreResult:
        key = score_cache_key(self.model_id, prompt, response)
        if self.cache is not None:
            hit = self.cache.get_llm(key)
            if hit is not None:
                self._counts["cache_hits"] += 1
                return ScoreResult.from_json(hit, cached=True)
        begun, attempts = time.perf_counter(), 0
        text = prompt if isinstance(prompt, str) else "".join(m.get("content", "") for m in prompt)
        estimate = (len(text) + len(response)) // 4

        async def attempt() -> Any:
            nonlocal attempts
            self.budget.check()
            attempts += 1
            self._counts["calls"] += 1
            async with self._slot():
                # Paced inside the slot, right before sending: a permit taken earlier and then
                # held while waiting for a slot would reach the server in a later burst.
                await self.rate.acquire(estimate)
                self._check_halted()
                if self.cache is not None:
                    self.cache.flush()  # as in _call: a crash repeats only the calls in flight
                async with asyncio.timeout(self._timer_s):
                    raw = await self.backend.score(prompt, response)
            if self.gate is not None:
                self.gate.on_success()
            self.budget.add(raw.usage.prompt_tokens)
            self._counts["prompt_tokens"] += raw.usage.prompt_tokens
            return raw

        def on_retry(exc: BaseException, number: int, wait: float) -> None:
            self._counts["retries"] += 1
            self._causes[_cause(exc)] += 1

        try:
            raw = await self.retry.call(attempt, on_retry=on_retry)
        except Exception as exc:
            if not isinstance(exc, SynthloomError):
                self._failures[_cause(exc)] += 1
            exc.usage, exc.calls = Usage(), attempts  # type: ignore[attr-defined]
            raise
        result = ScoreResult(score=raw.score, usage=raw.usage, model=self.model_id,
                             latency_s=time.perf_counter() - begun, calls=attempts,
                             finished_at=time.time())
        if self.cache is not None:
            self.cache.put_llm(key, result.to_json())
        return result

    # --- one sample ----------------------------------------------------------------------------

    async def _sample(self, request: LLMRequest, index: int) -> LLMResponse:
        key = request.cache_key(self.model_id, index)
        if self.cache is not None:
            hit = self.cache.get_llm(key)
            # An empty answer cached by an older version is no answer: ask again.
            if hit is not None and _has_answer(hit):
                self._counts["cache_hits"] += 1
                return LLMResponse.from_json(hit, cached=True)
        seed = None if request.params.seed is None else request.params.seed + index
        if request.tools and request.tool_choice != "none":
            response = await self._sample_tools(request, index, key, seed)
            return self._cached(key, response)
        schema = request.json_schema
        call_request = self._plain_for_backend(request)
        if schema is not None and not self.backend.supports_json_schema:
            call_request = _with_instructions(request, schema_instructions(schema))
        usage, calls, begun = Usage(), 0, time.perf_counter()
        for attempt in range(self.structured_retries + 1):
            try:
                raw, used, spent, (text, reasoning) = await self._answer(call_request, seed)
            except Exception as exc:
                exc.usage = usage + getattr(exc, "spent", Usage())  # type: ignore[attr-defined]
                exc.calls = calls + getattr(exc, "calls", 0)  # type: ignore[attr-defined]
                raise
            calls += used
            usage = usage + spent
            parsed: Any = None
            if schema is None:
                break
            parsed, errors = parse_structured(text, schema)
            if raw.finish_reason == "length":
                # JSON repair would close it, but the last value is cut off: not data.
                errors = [f"output cut off at max_tokens={call_request.params.max_tokens}",
                          *errors]
            if not errors:
                break
            if attempt == self.structured_retries:
                raise self._gave_up("output does not match the schema", attempt, errors, usage,
                                    calls)
            self._counts["structured_repairs"] += 1
            call_request = _repaired(call_request, raw.text, errors, schema)
            if raw.finish_reason == "length":
                # Cut off mid-JSON: asking again with the same cap would cut it off again.
                self._counts["structured_token_raises"] += 1
                call_request = _more_tokens(call_request, self.max_repair_tokens)
        response = LLMResponse(
            text=text, reasoning=reasoning, parsed=parsed, usage=usage,
            finish_reason=raw.finish_reason, latency_s=time.perf_counter() - begun,
            model=self.model_id, sample_index=index, calls=calls, finished_at=time.time(),
            fit=raw.fit, logprobs=raw.logprobs,
        )
        return self._cached(key, response)

    def _gave_up(self, what: str, attempt: int, errors: list[str], usage: Any,
                 calls: int) -> StructuredOutputError:
        """The error that ends the repair loop (structured output or tool calls), counted,
        carrying what the attempts spent so the step's accounting includes them."""
        self._counts["structured_failures"] += 1
        exc = StructuredOutputError(
            f"{what} after {attempt + 1} attempt(s): " + "; ".join(errors[:3]))
        exc.usage, exc.calls = usage, calls  # type: ignore[attr-defined]
        return exc

    def _cached(self, key: str, response: LLMResponse) -> LLMResponse:
        if self.cache is not None:
            data = response.to_json()
            if _has_answer(data):  # never an empty answer: a rerun must ask again
                self.cache.put_llm(key, data)
        return response

    def _plain_for_backend(self, request: LLMRequest) -> LLMRequest:
        """A request without tool use for a backend without native tools: tool turns in its
        messages (a judge reading a trajectory; ``tool_choice="none"``) become plain text."""
        if self.backend.supports_tools or request.messages is None or not (
                request.tools or any(m.get("tool_calls") or m.get("role") == "tool"
                                     for m in request.messages)):
            return request
        return dataclasses.replace(request, messages=as_text_messages(request.messages),
                                   tools=None, tool_choice=None, parallel_tool_calls=None)

    async def _sample_tools(self, request: LLMRequest, index: int, key: str,
                            seed: int | None) -> LLMResponse:
        """One sample of a request with tools: the server's native tool calls, or the
        constrained {tool_calls | content} answer (see ``llm/toolcalls.py``). Malformed calls
        (unknown tool, arguments failing the schema) are repaired and re-asked like
        structured output and counted with it."""
        tools, choice = request.tools or [], request.tool_choice
        native = self.backend.supports_tools
        max_calls = 1 if request.parallel_tool_calls is False else None
        union = union_schema(tools, choice, max_calls or MAX_CALLS)
        call_request = request
        if not native:
            messages = with_tools_prompt(as_text_messages(request.messages or []),
                                         tools_prompt(tools, choice))
            call_request = dataclasses.replace(request, messages=messages, tools=None,
                                               tool_choice=None, parallel_tool_calls=None,
                                               json_schema=union)

        def make_id(i: int) -> str:  # deterministic: a rerun names the calls alike
            return f"call_{stable_hash(key, i, length=16)}"

        usage, calls_made, begun = Usage(), 0, time.perf_counter()
        for attempt in range(self.structured_retries + 1):
            try:
                raw, used, spent, (text, reasoning) = await self._answer(call_request, seed)
            except Exception as exc:
                exc.usage = usage + getattr(exc, "spent", Usage())  # type: ignore[attr-defined]
                exc.calls = calls_made + getattr(exc, "calls", 0)  # type: ignore[attr-defined]
                raise
            calls_made += used
            usage = usage + spent
            if native:
                calls = raw.tool_calls or None
                content = text
                errors = call_errors(calls or [], tools, choice, max_calls)
            else:
                calls, content, errors = parse_tool_answer(text, tools, choice, make_id,
                                                           max_calls or MAX_CALLS)
                if raw.finish_reason == "length":
                    errors = [f"output cut off at max_tokens={call_request.params.max_tokens}",
                              *errors]
            if not errors:
                break
            if attempt == self.structured_retries:
                raise self._gave_up("malformed tool calls", attempt, errors, usage, calls_made)
            self._counts["structured_repairs"] += 1
            if native:
                call_request = dataclasses.replace(call_request, messages=repair_calls_messages(
                    call_request.messages or [], calls or [], text, errors))
            else:
                call_request = _repaired(call_request, raw.text, errors, union)
            if raw.finish_reason == "length":
                self._counts["structured_token_raises"] += 1
                call_request = _more_tokens(call_request, self.max_repair_tokens)
        return LLMResponse(
            text=content, reasoning=reasoning, usage=usage, finish_reason=raw.finish_reason,
            latency_s=time.perf_counter() - begun, model=self.model_id, sample_index=index,
            calls=calls_made, finished_at=time.time(), fit=raw.fit, tool_calls=calls,
            logprobs=raw.logprobs)

    async def _answer(self, request: LLMRequest, seed: int | None
                      ) -> tuple[RawCompletion, int, Usage, tuple[str, str | None]]:
        """``_call`` until the answer (reasoning split off) is not empty, at most
        ``empty_retries`` more times, with the same request and seed (a hosted API's empty
        reply is a glitch, not the model's answer). Returns the completion, the backend calls
        and usage of all tries, and (text, reasoning).

        Still empty: counted as a failed request and returned (uncached: a rerun asks again);
        the step decides (``generate`` fails the item, a grader grades "no answer"). Not asked
        again: a raw-prompt continuation (it may end at once: Magpie's empty query) and an
        answer cut off at ``max_tokens`` (a truncation, the step's to drop)."""
        calls, spent = 0, Usage()
        tries = 1 if request.prompt is not None else self.empty_retries + 1
        for attempt in range(tries):
            try:
                raw, used = await self._call(request, seed)
            except Exception as exc:
                exc.spent, exc.calls = spent, calls + getattr(exc, "calls", 0)  # type: ignore[attr-defined]
                raise
            calls, spent = calls + used, spent + raw.usage
            text, reasoning = split_reasoning(raw.text)
            if (text.strip() or raw.tool_calls or raw.finish_reason == "length"
                    or request.prompt is not None):
                break
            if attempt + 1 < tries:
                self._counts["retries"] += 1
                self._causes[EMPTY] += 1
            else:
                self._failures[EMPTY] += 1
        return raw, calls, spent, (text, reasoning)

    async def _call(self, request: LLMRequest, seed: int | None) -> tuple[RawCompletion, int]:
        """One completion with rate limits, the concurrency gate and retries. Returns the
        completion and the number of backend calls it took."""
        fit = None
        window = self.context_length
        if self.backend.supports_generate and not _fits_by_chars(request, window) \
                and not _fits_by_size(*_prompt_texts(request), request.params.max_tokens, window):
            # Only a prompt whose raw size does not already fit is counted (issue 27: the
            # common case costs a byte count, no tokenizer and no call to the server).
            request, fit = await self._fit(request)
        attempts = 0

        async def attempt() -> RawCompletion:
            nonlocal attempts
            self.budget.check()
            attempts += 1
            self._counts["calls"] += 1
            # One turn yielded first, as wait_for's task did: identical requests started
            # together all reach the backend even when it answers without suspending (a test
            # double), so call counts do not depend on a backend's latency. Before the slot,
            # not in it: on a busy loop a turn is milliseconds, and a slot held through it
            # is a slot not sending (issue 27: 64 slots held, ~39 calls at the server). Not
            # when the call will wait for a slot: that wait yields already.
            if self._slot_free():
                await asyncio.sleep(0)
            async with self._slot():
                # Paced inside the slot, right before sending: a permit taken earlier and then
                # held while waiting for a slot would reach the server in a later burst.
                if self.rate.enabled:  # no coroutine to make and await when unlimited
                    await self.rate.acquire(_estimate_tokens(request))
                self._check_halted()  # the slot may have been freed by the interrupt itself
                if self.cache is not None:
                    # A call starts only once every finished call is committed: a crash then
                    # repeats only calls that were in flight (the store commits in groups).
                    # Here, not before the slot: calls finish while this one waits for it.
                    self.cache.flush()
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for runs the call in a
                # task of its own, two more event-loop turns per request (issue 27). None
                # when the backend's own deadlines end the call sooner (a timer less).
                async with asyncio.timeout(self._timer_s):
                    raw = await self.backend.complete(request, seed=seed)
            if self.gate is not None:
                self.gate.on_success()
            self.budget.add(raw.usage.prompt_tokens + raw.usage.completion_tokens)
            self._counts["prompt_tokens"] += raw.usage.prompt_tokens
            self._counts["completion_tokens"] += raw.usage.completion_tokens
            return raw

        def on_retry(exc: BaseException, number: int, wait: float) -> None:
            self._counts["retries"] += 1
            self._causes[_cause(exc)] += 1
            if isinstance(exc, TransientLLMError) and exc.is_overload and self.gate is not None:
                self.gate.on_overload()

        try:
            raw = await self.retry.call(attempt, on_retry=on_retry)
            if fit is not None:
                raw.fit = fit
            return raw, attempts
        except Exception as exc:
            # Every backend call made is charged to the item, also when the last one failed
            # for good (a permanent error is not retried, but it was a call).
            if not isinstance(exc, SynthloomError):
                self._failures[_cause(exc)] += 1
            exc.calls = attempts  # type: ignore[attr-defined]
            raise

    def _slot(self) -> Any:
        return self.gate.slot() if self.gate is not None else self._fixed_gate

    def _slot_free(self) -> bool:
        """A call asking now gets a slot without waiting."""
        if self.gate is not None:
            return self.gate.free
        return not self._fixed_gate.locked()  # type: ignore[union-attr]

    @property
    def _timer_s(self) -> float | None:
        """The client's own deadline per backend call; None (no timer) when the backend's
        deadlines already end every call within ``request_timeout_s`` (issue 27: aiohttp's
        timer and this one were two timers per request)."""
        bound = self.backend.max_call_s
        return None if bound is not None and bound <= self.request_timeout_s \
            else self.request_timeout_s


def _cause(exc: BaseException) -> str:
    if isinstance(exc, TransientLLMError) and exc.cause is not None:
        return exc.cause
    if isinstance(exc, TransientLLMError) and exc.status is not None:
        return str(exc.status)
    if isinstance(exc, TimeoutError):
        return "timeout"
    return type(exc).__name__


def _has_answer(response: dict[str, Any]) -> bool:
    """A response worth caching: some answer text (or a parsed object)."""
    return (bool(str(response.get("text") or "").strip()) or response.get("parsed") is not None
            or bool(response.get("tool_calls")))


def _prompt_texts(request: LLMRequest) -> tuple[list[str], int]:
    """The texts of a request's prompt and its chat template's overhead in tokens."""
    if request.messages is None:
        return [request.prompt or ""], prompt_overhead(None)
    texts = [str(m.get("content") or "") for m in request.messages]
    # Tool schemas and calls are read by the model too (rare: measured only when present).
    texts += [json.dumps(m["tool_calls"]) for m in request.messages if m.get("tool_calls")]
    if request.tools:
        texts.append(json.dumps(request.tools))
    return texts, prompt_overhead(len(request.messages))


def _fits_by_size(texts: list[str], overhead: int, wanted: int, window: int) -> bool:
    """Prompt + answer fit by raw size alone: a token covers at least one UTF-8 byte."""
    room = window - overhead - wanted
    return room >= 0 and sum(len(t.encode("utf-8", "surrogatepass")) for t in texts) <= room


def _fits_by_chars(request: LLMRequest, window: int) -> bool:
    """Fits by character count alone, four UTF-8 bytes at most per character: no list of
    texts, no encoding (issue 27: that was ~2% of a short call's CPU). Tool schemas and calls
    are left to ``_fits_by_size``."""
    if request.tools:
        return False
    if request.messages is None:
        chars, overhead = len(request.prompt or ""), prompt_overhead(None)
    else:
        chars = 0
        for m in request.messages:
            if m.get("tool_calls"):
                return False
            content = m.get("content")
            if content:
                chars += len(content) if isinstance(content, str) else len(str(content))
        overhead = prompt_overhead(len(request.messages))
    room = window - overhead - request.params.max_tokens
    return room >= 0 and 4 * chars <= room


def _estimate_tokens(request: LLMRequest) -> int:
    # Cheap estimate for TPM limiting: the tokenizer would cost more than it saves here.
    chars = len(request.prompt or "") + sum(len(m.get("content") or "")
                                            for m in request.messages or [])
    return chars // 4 + request.params.max_tokens


def _with_instructions(request: LLMRequest, instructions: str) -> LLMRequest:
    if request.prompt is not None:
        return dataclasses.replace(request, prompt=f"{request.prompt}\n\n{instructions}")
    messages = [dict(m) for m in request.messages or []]
    messages[-1]["content"] = f"{messages[-1]['content']}\n\n{instructions}"
    return dataclasses.replace(request, messages=messages)


def _more_tokens(request: LLMRequest, cap: int) -> LLMRequest:
    params = dataclasses.replace(request.params,
                                 max_tokens=min(cap, max(request.params.max_tokens * 2, 64)))
    return dataclasses.replace(request, params=params)


def _repaired(request: LLMRequest, bad: str, errors: list[str], schema: dict) -> LLMRequest:
    if request.prompt is not None:
        return dataclasses.replace(request, prompt=repair_prompt(request.prompt, bad, errors, schema))
    return dataclasses.replace(
        request, messages=repair_messages(request.messages or [], bad, errors, schema))
