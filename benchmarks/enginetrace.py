"""Where a request waits: an opt-in trace for ``orchestration.py --trace`` (benchmarks only).

The engine's hot path carries no trace code: ``install()`` wraps a few methods of the classes
for the length of one run and ``uninstall()`` puts them back. Each LLM item runs in a task of
its own (the batch runner gathers them), so marks are kept per task:

    start  the item's task begins (BatchRunner._compute_async)
    ready  it asks the concurrency gate for a slot (AdaptiveConcurrency._acquire)
    gate   it holds a slot
    send   the backend's ``complete`` is entered (after the rate limit and the store flush)
    wire   the request's bytes were written to the socket (aiohttp trace: chunk sent)
    head   the response's status line and headers were parsed (aiohttp trace: request end)
    answer ``complete`` returned (body read and parsed)
    free   the slot was released
    end    the item's task returned (result built, ``put_item`` done)
    commit the group commit that holds the item's row finished

A sampler task wakes every ``SAMPLE_S`` to record the gate's holders and waiters, the calls
inside ``complete`` and the event loop's lag (how late the sampler itself woke).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from typing import Any

SAMPLE_S = 0.005
#: (name, from mark, to mark) of the intervals reported, in a request's order.
INTERVALS = (
    ("prepare", "start", "ready"),  # render, cache keys and lookup, the ordering sleep(0)
    ("gate_wait", "ready", "gate"),
    ("pre_send", "gate", "send"),  # rate limit (off), halt check, store flush
    ("to_wire", "send", "wire"),  # body, aiohttp request set-up, its write task's turn
    ("server", "wire", "head"),  # 50 ms + the loop's lag in noticing the answer
    ("read", "head", "answer"),  # body read, JSON parse
    ("after_answer", "answer", "free"),
    ("slot_held", "gate", "free"),
    ("to_end", "free", "end"),
    ("to_commit", "end", "commit"),
)

_now = time.perf_counter


class Trace:
    """Marks per request and samples of the gate, for one run."""

    def __init__(self) -> None:
        self.records: dict[Any, dict[str, float]] = {}  # by task (ids get reused)
        #: (holders, waiters, at backend, loop lag, woken waiters not yet running)
        self.samples: list[tuple[int, int, int, float, int]] = []
        self._gates: set[Any] = set()
        self._at_backend = 0
        self._uncommitted: list[dict[str, float]] = []
        self._undo: list[Callable[[], None]] = []

    def _rec(self) -> dict[str, float] | None:
        task = asyncio.current_task()
        return None if task is None else self.records.get(task)

    def begin(self) -> dict[str, float]:
        """A new request in the current task (its ``start`` mark)."""
        rec = self.records[asyncio.current_task()] = {"start": _now()}
        return rec

    def _mark(self, name: str) -> None:
        rec = self._rec()
        if rec is not None and name not in rec:
            rec[name] = _now()

    def _patch(self, owner: Any, name: str, make: Callable[[Any], Any]) -> None:
        original = owner.__dict__[name]
        setattr(owner, name, make(original))
        self._undo.append(lambda: setattr(owner, name, original))

    def install(self) -> None:
        import aiohttp

        from synthloom.core.batch import BatchRunner
        from synthloom.core.store import RunStore
        from synthloom.llm.backends.openai_compat import OpenAIBackend
        from synthloom.llm.limits import AdaptiveConcurrency

        trace = self

        def compute(original: Any) -> Any:
            async def wrapped(runner: Any, *args: Any, **kwargs: Any) -> Any:
                rec = trace.begin()
                try:
                    return await original(runner, *args, **kwargs)
                finally:
                    rec["end"] = _now()
            return wrapped

        def acquire(original: Any) -> Any:
            async def wrapped(gate: Any) -> None:
                trace._gates.add(gate)
                trace._mark("ready")
                await original(gate)
                trace._mark("gate")
            return wrapped

        def release(original: Any) -> Any:
            def wrapped(gate: Any) -> None:
                trace._mark("free")
                original(gate)
            return wrapped

        def complete(original: Any) -> Any:
            async def wrapped(backend: Any, *args: Any, **kwargs: Any) -> Any:
                trace._mark("send")
                trace._at_backend += 1
                try:
                    return await original(backend, *args, **kwargs)
                finally:
                    trace._at_backend -= 1
                    trace._mark("answer")
            return wrapped

        def put_item(original: Any) -> Any:
            def wrapped(store: Any, *args: Any, **kwargs: Any) -> None:
                rec = trace._rec()
                if rec is not None:
                    trace._uncommitted.append(rec)
                original(store, *args, **kwargs)
            return wrapped

        def flush_locked(original: Any) -> Any:
            def wrapped(store: Any) -> None:
                pending, trace._uncommitted = trace._uncommitted, []
                original(store)
                done = _now()
                for rec in pending:
                    rec["commit"] = done
            return wrapped

        async def on_start(_s: Any, ctx: Any, _p: Any) -> None:
            ctx.rec = trace._rec()

        async def on_connection(_s: Any, ctx: Any, _p: Any) -> None:
            # A bare client has no gate: the connection is its slot (``send`` = has one).
            if ctx.rec is not None:
                ctx.rec.setdefault("send", _now())

        async def on_sent(_s: Any, ctx: Any, _p: Any) -> None:
            if ctx.rec is not None and "wire" not in ctx.rec:
                ctx.rec["wire"] = _now()

        async def on_end(_s: Any, ctx: Any, _p: Any) -> None:
            if ctx.rec is not None:
                ctx.rec.setdefault("head", _now())

        config = aiohttp.TraceConfig()
        config.on_request_start.append(on_start)
        config.on_request_chunk_sent.append(on_sent)
        config.on_connection_reuseconn.append(on_connection)
        config.on_connection_create_end.append(on_connection)
        config.on_request_end.append(on_end)

        def session_init(original: Any) -> Any:
            def wrapped(session: Any, *args: Any, **kwargs: Any) -> None:
                kwargs["trace_configs"] = [*(kwargs.get("trace_configs") or []), config]
                original(session, *args, **kwargs)
            return wrapped

        self._patch(BatchRunner, "_compute_async", compute)
        self._patch(AdaptiveConcurrency, "_acquire", acquire)
        self._patch(AdaptiveConcurrency, "_release", release)
        self._patch(OpenAIBackend, "complete", complete)
        self._patch(RunStore, "put_item", put_item)
        self._patch(RunStore, "_flush_locked", flush_locked)
        self._patch(aiohttp.ClientSession, "__init__", session_init)

    def uninstall(self) -> None:
        while self._undo:
            self._undo.pop()()

    async def sample(self) -> None:
        """Run beside the engine (cancel it afterwards)."""
        while True:
            before = _now()
            await asyncio.sleep(SAMPLE_S)
            lag = _now() - before - SAMPLE_S
            holders = sum(g.in_flight for g in self._gates)
            waiters = sum(len(g._waiters) for g in self._gates)
            handed = sum(g._handed for g in self._gates)  # woken waiters not running yet
            self.samples.append((holders, waiters, self._at_backend, lag, handed))

    def report(self, concurrency: int) -> dict[str, Any]:
        recs = [r for r in self.records.values() if "answer" in r]
        out: dict[str, Any] = {"traced_requests": len(recs)}
        for name, a, b in INTERVALS:
            values = sorted(1000 * (r[b] - r[a]) for r in recs if a in r and b in r)
            if values:
                out[f"{name}_ms"] = {"mean": round(statistics.fmean(values), 2),
                                     "p50": round(values[len(values) // 2], 2),
                                     "p90": round(values[int(len(values) * 0.9)], 2)}
        if self.samples:
            lags = sorted(1000 * s[3] for s in self.samples)
            out["loop_lag_ms"] = {"p50": round(lags[len(lags) // 2], 2),
                                  "p90": round(lags[int(len(lags) * 0.9)], 2),
                                  "mean": round(statistics.fmean(lags), 2)}
        busy = [s for s in self.samples if s[0] or s[1]]
        if busy:
            out["gate_holders_mean"] = round(statistics.fmean(s[0] for s in busy), 1)
            out["gate_waiters_mean"] = round(statistics.fmean(s[1] for s in busy), 1)
            out["at_backend_mean"] = round(statistics.fmean(s[2] for s in busy), 1)
            out["woken_not_running_mean"] = round(statistics.fmean(s[4] for s in busy), 1)
            # A slot nobody holds, nobody was handed and nobody waits for: the gate starved.
            out["samples_gate_starved"] = round(
                sum(s[0] + s[4] < concurrency and not s[1] for s in busy) / len(busy), 3)
        return out


async def traced(run: Callable[[], Any], trace: Trace) -> Any:
    """``await run()`` with ``trace`` installed and its sampler running."""
    trace.install()
    sampler = asyncio.create_task(trace.sample())
    try:
        return await run()
    finally:
        sampler.cancel()
        trace.uninstall()
