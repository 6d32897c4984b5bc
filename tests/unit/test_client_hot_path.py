"""The LLM client's per-request path (issue 27): what it does and does not do per request.

No timings here (those live in benchmarks/orchestration.py): these pin the behaviour that the
speed-ups must keep, and the per-request work they removed.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp import web

from synthloom.llm.backends.http import AiohttpTransport, HttpBodyTooLarge
from synthloom.llm.client import LLMClient
from synthloom.llm.types import LLMRequest, RawCompletion, SamplingParams
from tests.support.scripted_backend import ScriptedTestBackend


class Counting(ScriptedTestBackend):
    """Records the task each call runs in, and every token count asked of it."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.tasks: list[asyncio.Task | None] = []
        self.counted: list[str] = []

    async def complete(self, request: LLMRequest, *, seed: int | None) -> RawCompletion:
        self.tasks.append(asyncio.current_task())
        return await super().complete(request, seed=seed)

    def count_tokens(self, text: str) -> int:
        self.counted.append(text)
        return super().count_tokens(text)

    @property
    def context_length(self) -> int | None:
        return 4096


class Store:
    """A response cache that logs puts, flushes and backend calls in order."""

    def __init__(self, log: list[str]) -> None:
        self.rows: dict[str, dict[str, Any]] = {}
        self.log = log
        self.pending = 0

    def get_llm(self, key: str) -> dict[str, Any] | None:
        return self.rows.get(key)

    def put_llm(self, key: str, value: dict[str, Any]) -> None:
        self.rows[key] = value
        self.pending += 1
        self.log.append("put")

    def flush(self) -> None:
        if self.pending:
            self.log.append(f"flush {self.pending}")
        self.pending = 0


def ask(text: str, max_tokens: int = 16) -> LLMRequest:
    return LLMRequest(messages=[{"role": "user", "content": text}],
                      params=SamplingParams(max_tokens=max_tokens))


def test_a_prompt_that_fits_by_size_is_never_tokenized() -> None:
    backend = Counting()
    client = LLMClient(backend, concurrency=4)

    async def go() -> None:
        await client.generate_many([ask(f"q {i}") for i in range(20)])

    asyncio.run(go())
    assert backend.calls == 20
    assert backend.counted == []  # no tokenizer, no tokenize request per prompt
    assert client.stats()["token_counter"] is None
    assert client.stats()["context_fits"] == 0


def test_a_prompt_too_large_by_size_is_still_counted_and_fitted() -> None:
    backend = Counting()
    client = LLMClient(backend, concurrency=4)
    # ~3,000 bytes + 2,000 max_tokens > 4,096: counted; the estimate (~750 tokens) fits.
    asyncio.run(client.generate(ask("word " * 600, max_tokens=2000)))
    assert backend.counted
    assert backend.calls == 1


def test_the_character_bound_never_says_fits_where_the_byte_count_does_not() -> None:
    """``_fits_by_chars`` (no encoding) is a shortcut of ``_fits_by_size``: it may say "count
    the bytes" where they fit, never "fits" where they do not, whatever the script."""
    from synthloom.llm.client import _fits_by_chars, _fits_by_size, _prompt_texts

    for char in ("a", "\u00e9", "\u4e2d", "\U0001f600", "\ud800"):
        for n in range(0, 1200, 7):
            request = ask(char * n, max_tokens=100)
            exact = _fits_by_size(*_prompt_texts(request), 100, 2048)
            if _fits_by_chars(request, 2048):
                assert exact, (char, n)
    assert _fits_by_chars(ask("short"), 4096)
    assert not _fits_by_chars(ask("x" * 1000, max_tokens=3100), 4096)  # left to the bytes


def test_the_backend_call_runs_in_the_callers_task() -> None:
    """The request timeout wraps the call in place (no task of its own per request)."""
    backend = Counting()
    client = LLMClient(backend, concurrency=2)
    seen: list[asyncio.Task | None] = []

    async def one(i: int) -> None:
        seen.append(asyncio.current_task())
        await client.generate(ask(f"q {i}"))

    async def go() -> None:
        await asyncio.gather(*(one(i) for i in range(4)))

    asyncio.run(go())
    assert sorted(map(id, backend.tasks)) == sorted(map(id, seen))


def test_the_request_timeout_still_times_out_and_is_retried() -> None:
    class Slow(Counting):
        async def complete(self, request: LLMRequest, *, seed: int | None) -> RawCompletion:
            if self.calls == 0:
                self.calls += 1
                await asyncio.sleep(10)
            return await super().complete(request, seed=seed)

    backend = Slow()
    client = LLMClient(backend, concurrency=1, request_timeout_s=0.05)
    client.retry.initial_wait = 0.0
    [response] = asyncio.run(client.generate(ask("hi")))
    assert response.text.startswith("echo")
    assert client.stats()["retry_causes"] == {"timeout": 1}


def test_one_timer_per_call_where_the_backend_bounds_its_calls() -> None:
    """The client's timer is left out where the backend's own deadlines end every call
    sooner (aiohttp's total timeout, issue 27), and kept where they do not."""
    from synthloom.llm.backends.openai_compat import MAX_REQUESTS_PER_CALL, OpenAIBackend

    aiohttp_backend = OpenAIBackend("http://127.0.0.1:1/v1", "m", transport="aiohttp")
    assert aiohttp_backend.max_call_s == 120.0 * MAX_REQUESTS_PER_CALL
    assert LLMClient(aiohttp_backend)._timer_s is None  # 480 s <= the default 600 s
    assert LLMClient(aiohttp_backend, request_timeout_s=60)._timer_s == 60
    httpx_backend = OpenAIBackend("http://127.0.0.1:1/v1", "m", transport="httpx")
    assert httpx_backend.max_call_s is None  # httpx times each operation, not the call
    assert LLMClient(httpx_backend)._timer_s == 600.0
    assert LLMClient(Counting(), request_timeout_s=5)._timer_s == 5  # no bound of its own


def test_a_call_that_waits_for_a_slot_yields_no_extra_turn() -> None:
    """The ordering yield runs only when a slot is free at once (a wait for one yields)."""
    backend = Counting(latency_s=0.01)
    client = LLMClient(backend, concurrency=2)
    yields = 0
    real_sleep = asyncio.sleep

    async def counting_sleep(delay: float, *args: Any) -> Any:
        nonlocal yields
        yields += delay == 0
        return await real_sleep(delay, *args)

    async def go() -> int:
        first = [asyncio.create_task(client.generate(ask(f"q {i}"))) for i in range(2)]
        while client.gate.in_flight < 2:  # both slots taken, calls at the backend
            await real_sleep(0)
        before = yields
        await client.generate_many([ask(f"later {i}") for i in range(8)])
        await asyncio.gather(*first)
        return before

    asyncio.sleep = counting_sleep  # type: ignore[assignment]
    try:
        before = asyncio.run(go())
    finally:
        asyncio.sleep = real_sleep  # type: ignore[assignment]
    assert backend.calls == 10
    assert before == 2  # the first two found a slot free: one yield each
    assert yields == 2  # the eight later ones waited for a slot: no yield of their own


def test_every_finished_call_is_flushed_before_the_next_call_starts() -> None:
    log: list[str] = []

    class Logged(Counting):
        async def complete(self, request: LLMRequest, *, seed: int | None) -> RawCompletion:
            log.append("call")
            return await super().complete(request, seed=seed)

    client = LLMClient(Logged(latency_s=0.001), concurrency=2, cache=Store(log))
    asyncio.run(client.generate_many([ask(f"q {i}") for i in range(8)]))
    puts = 0
    for entry in log:
        if entry == "put":
            puts += 1
        elif entry.startswith("flush"):
            puts -= int(entry.split()[1])
        else:
            assert puts == 0, log  # a call never starts with a finished call unflushed


@pytest.mark.parametrize("chunked", [False, True])
def test_aiohttp_transport_reads_bodies_whole_and_keeps_the_cap(chunked: bool) -> None:
    big = b"x" * 5000

    async def small(request: web.Request) -> web.StreamResponse:
        if not chunked:
            return web.Response(body=b'{"ok": 1}', content_type="application/json")
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        await response.write(b'{"ok": ')
        await response.write(b"1}")
        await response.write_eof()
        return response

    async def large(request: web.Request) -> web.StreamResponse:
        if not chunked:
            return web.Response(body=big)
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for _ in range(5):
            await response.write(big[:1000])
        await response.write_eof()
        return response

    async def go() -> None:
        app = web.Application()
        app.router.add_post("/small", small)
        app.router.add_get("/large", large)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        transport = AiohttpTransport({}, 10.0, max_body=4096)
        try:
            response = await transport.request("POST", f"http://127.0.0.1:{port}/small", {"a": 1})
            assert response.status == 200 and response.json() == {"ok": 1}
            with pytest.raises(HttpBodyTooLarge):
                await transport.request("GET", f"http://127.0.0.1:{port}/large")
        finally:
            await transport.aclose()
            await runner.cleanup()

    asyncio.run(go())
