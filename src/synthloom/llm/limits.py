"""Client-side pacing: rate limits, adaptive concurrency, retries and the token budget."""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
)

from synthloom.core.errors import BudgetExhausted
from synthloom.llm.types import TransientLLMError

T = TypeVar("T")

# The only failures worth another attempt; everything else surfaces at once.
RETRYABLE: tuple[type[BaseException], ...] = (TransientLLMError, TimeoutError)


class _Window:
    """Sliding-window log: the weights admitted in the last ``period`` seconds sum to at most
    ``quota``. A weight larger than the quota is charged as the whole quota (it waits for an
    empty window instead of forever)."""

    def __init__(self, period: float, quota: float) -> None:
        self.period = period
        self.quota = quota
        self._log: deque[tuple[float, float]] = deque()
        self._used = 0.0

    def wait_s(self, now: float, weight: float) -> float:
        """Seconds until ``weight`` fits (0 when it fits now)."""
        # (1 us of slack: a sleep of exactly the computed wait must find the entry expired)
        while self._log and self._log[0][0] <= now - self.period + 1e-6:
            self._used -= self._log.popleft()[1]
        excess = self._used + min(weight, self.quota) - self.quota
        if excess <= 1e-9:
            return 0.0
        for admitted_at, charged in self._log:  # oldest first: wait until enough expire
            excess -= charged
            if excess <= 1e-9:
                return admitted_at + self.period - now
        return self.period  # pragma: no cover - the charge never exceeds the quota

    def add(self, now: float, weight: float) -> None:
        charged = min(weight, self.quota)
        if charged > 0:
            self._log.append((now, charged))
            self._used += charged


class _Pace:
    """Leaky bucket (draining at ``rate`` per second, ``burst`` deep) for an even pace. A
    request is let in once it fits, or once the bucket is empty if it is larger than the whole
    burst; it is charged in full, so the long-run rate is exactly ``rate`` (no waste when
    requests are large against the burst)."""

    def __init__(self, rate: float, burst: float, cap: float) -> None:
        self.rate, self.burst, self.cap = rate, burst, cap
        self._level = 0.0
        self._at: float | None = None

    def _drain(self, now: float) -> None:
        if self._at is not None:
            self._level = max(0.0, self._level - (now - self._at) * self.rate)
        self._at = now

    def wait_s(self, now: float, weight: float) -> float:
        self._drain(now)
        target = max(0.0, self.burst - min(weight, self.cap))  # the level it must drain to
        return max(0.0, (self._level - target) / self.rate)

    def add(self, now: float, weight: float) -> None:
        self._drain(now)
        self._level += min(weight, self.cap)


class RateLimiter:
    """Requests-per-minute and tokens-per-minute limits, held in every 60-second window.

    Each limit is a sliding 60 s window (never more than the limit in any 60 s: what a server
    counting per minute checks) and a leaky bucket at the limit's rate with a sixth of it as
    burst, so a run starts with 10 s worth instead of a whole minute's and then keeps an even
    pace (at most a third of the limit in any 10 s). Waiters are served in arrival order.
    """

    BURST_S = 10.0  # the burst is this many seconds' worth of the limit

    def __init__(self, rpm: float | None = None, tpm: float | None = None, *,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        for name, value in (("rpm", rpm), ("tpm", tpm)):
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be > 0 (or None for no limit)")
        self.rpm = rpm
        self.tpm = tpm
        self._clock = clock
        self._sleep = sleep
        self._limits: dict[str, tuple[_Window, _Pace]] = {
            name: (_Window(60.0, limit),
                   _Pace(limit / 60.0, limit * self.BURST_S / 60.0, cap=limit))
            for name, limit in (("requests", rpm), ("tokens", tpm)) if limit is not None}
        # asyncio.Lock binds to the loop it first waits in, so it is rebuilt if the limiter is
        # reused from another event loop (e.g. a second asyncio.run).
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock: asyncio.Lock | None = None

    @property
    def enabled(self) -> bool:
        return self.rpm is not None or self.tpm is not None

    async def acquire(self, tokens: int) -> None:
        """Wait until one more request carrying ``tokens`` tokens fits within both limits."""
        if not self.enabled:
            return
        loop = asyncio.get_running_loop()
        if loop is not self._loop or self._lock is None:
            self._loop, self._lock = loop, asyncio.Lock()
        weights = {"requests": 1.0, "tokens": float(max(tokens, 0))}
        # One waiter at a time (FIFO): a request admitted later never overtakes an earlier one.
        async with self._lock:
            while True:
                now = self._clock()
                wait = max(part.wait_s(now, weights[name])
                           for name, parts in self._limits.items() for part in parts)
                if wait <= 1e-6:  # float dust: a sleep that short changes nothing
                    break
                await self._sleep(wait)
            for name, parts in self._limits.items():
                for part in parts:
                    part.add(now, weights[name])


class _Slot:
    """``AdaptiveConcurrency.slot()``: a plain async context manager, one per gate (it holds
    no state of its own). Not ``@asynccontextmanager``: its generator and wrapper objects
    cost a few microseconds per request (issue 27)."""

    __slots__ = ("_gate",)

    def __init__(self, gate: AdaptiveConcurrency) -> None:
        self._gate = gate

    async def __aenter__(self) -> None:
        await self._gate._acquire()

    async def __aexit__(self, *exc: object) -> None:
        self._gate._release()


class AdaptiveConcurrency:
    """AIMD gate: at most ``limit`` holders; halve on overload, +1 after ``limit`` successes."""

    def __init__(
        self,
        initial: int,
        minimum: int = 1,
        maximum: int | None = None,
        *,
        cooldown_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        maximum = initial if maximum is None else maximum
        if not 1 <= minimum <= initial <= maximum:
            raise ValueError(
                f"need 1 <= minimum <= initial <= maximum, got {minimum}, {initial}, {maximum}"
            )
        self.minimum = minimum
        self.maximum = maximum
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._limit = initial
        self._in_flight = 0
        #: Slots handed to woken waiters whose tasks have not run yet (theirs, not a newcomer's).
        self._handed = 0
        self._successes = 0
        #: The lowest limit reached and how often it was halved (summary.json shows both).
        self.lowest = initial
        self.decreases = 0
        self._last_decrease: float | None = None
        # FIFO of parked acquirers; a plain future list (not asyncio.Condition) so release needs
        # no lock and works from a finally block even while the task is being cancelled.
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._slot = _Slot(self)

    @property
    def limit(self) -> int:
        return self._limit

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def free(self) -> bool:
        """A newcomer would get a slot at once (no waiting)."""
        return self._in_flight + self._handed < self._limit and not self._waiters

    def slot(self) -> _Slot:
        """``async with gate.slot():`` holds one slot for the block."""
        return self._slot

    def _release(self) -> None:
        self._in_flight -= 1
        self._wake()

    async def _acquire(self) -> None:
        # First come, first served: a newcomer takes a free slot only when nobody waits and no
        # slot is promised to a woken waiter. Before, a task that arrived between a release and
        # the woken waiter's turn took the slot, and the waiter queued again at the back: some
        # calls waited several rounds (issue 27: gate wait p90 ~250 ms at c=64 for 50 ms
        # calls), and a batch waits for its slowest item.
        if self.free:
            self._in_flight += 1
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                # Handed a slot but cancelled before running: pass it on so none is lost.
                self._handed -= 1
                self._wake()
            elif fut in self._waiters:
                self._waiters.remove(fut)
            raise
        self._handed -= 1
        self._in_flight += 1

    def _wake(self) -> None:
        """Hand the free slots to the longest waiters (each is promised one: ``_handed``)."""
        free = self._limit - self._in_flight - self._handed
        while free > 0 and self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                self._handed += 1
                free -= 1

    def on_overload(self) -> bool:
        """The server said 429/503: halve the limit. Returns whether the limit changed.

        A whole wave of requests fails together, so decreases are spaced by ``cooldown_s``:
        one burst of 429s halves once instead of collapsing the limit to the minimum.
        """
        now = self._clock()
        if self._last_decrease is not None and now - self._last_decrease < self.cooldown_s:
            return False
        self._last_decrease = now
        self._successes = 0
        new = max(self.minimum, self._limit // 2)
        changed = new != self._limit
        self._limit = new
        self.lowest = min(self.lowest, new)
        self.decreases += changed
        return changed

    def on_success(self) -> bool:
        """One request succeeded; after ``limit`` of them, allow one more. Returns if it grew."""
        self._successes += 1
        if self._successes < self._limit:
            return False
        self._successes = 0
        if self._limit >= self.maximum:
            return False
        self._limit += 1
        self._wake()
        return True


class RetryPolicy:
    """Retries transient failures with exponential backoff, jitter and ``Retry-After``."""

    def __init__(
        self,
        max_attempts: int = 6,
        initial_wait: float = 0.5,
        max_wait: float = 30.0,
        jitter: float = 0.5,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        self.max_attempts = max_attempts
        self.initial_wait = initial_wait
        self.max_wait = max_wait
        self.jitter = jitter
        self._sleep = sleep
        self._rng = rng or random.Random()

    def wait_for(self, attempt_number: int, exc: BaseException | None) -> float:
        """Seconds to wait after failed attempt ``attempt_number`` (1-based) raised ``exc``."""
        base = min(self.max_wait, self.initial_wait * 2 ** (attempt_number - 1))
        # Jitter is a random fraction of the backoff added on top, so clients that failed
        # together (one 429 wave) come back spread out rather than in another wave.
        wait = base + self._rng.uniform(0.0, self.jitter * base)
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            # The server knows better than our backoff, but a silly Retry-After must not stall us.
            wait = max(wait, min(float(retry_after), self.max_wait * 2))
        return wait

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        return self.wait_for(state.attempt_number, exc)

    async def call(
        self,
        fn: Callable[[], Awaitable[T]],
        *,
        on_retry: Callable[[BaseException, int, float], None] | None = None,
    ) -> T:
        """Await ``fn()``; on a transient error wait and try again, up to ``max_attempts``.

        ``on_retry(exc, attempt_number, wait_seconds)`` runs before each sleep. After the last
        attempt the original exception is raised (not tenacity's RetryError).
        """

        def before_sleep(state: RetryCallState) -> None:
            if on_retry is None or state.outcome is None or state.next_action is None:
                return
            exc = state.outcome.exception()
            if exc is not None:
                on_retry(exc, state.attempt_number, state.next_action.sleep)

        # The first attempt runs outside tenacity: its per-call set-up (inspecting every
        # callback for coroutine-ness on every attempt) cost more CPU than the engine's whole
        # bookkeeping of a request. Only a retryable failure enters tenacity, which replays
        # it as attempt 1, so waits, callbacks and attempt numbers are as if it ran them all.
        try:
            return await fn()
        except RETRYABLE as exc:
            if self.max_attempts <= 1:
                raise
            first: BaseException | None = exc

        async def replay_then_call() -> T:
            nonlocal first
            if first is not None:
                exc, first = first, None
                raise exc
            return await fn()

        retrying = AsyncRetrying(
            sleep=self._sleep,
            stop=stop_after_attempt(self.max_attempts),
            wait=self._wait,
            retry=retry_if_exception_type(RETRYABLE),
            before_sleep=before_sleep,
            reraise=True,
        )
        return await retrying(replay_then_call)


class SharedTally(Protocol):
    """Tokens spent, counted in one place for several processes (the Ray executor's actors
    share one, so a run's budget caps them together instead of each actor)."""

    def add(self, n: int) -> None: ...

    def total(self) -> int: ...

    def child(self, key: str) -> SharedTally:
        """Another count on the same counter (a named model's own share, beside the run's)."""
        ...


class TokenBudget:
    """Caps the tokens a run may spend; callers count only new (non-cached) tokens.

    Because cached responses cost nothing, rerunning with a larger budget resumes the run.
    ``spent`` is what this budget charged; with a :class:`SharedTally` (see ``share``) the cap
    is checked against the tally's total, what every sharing process spent.
    """

    def __init__(self, max_tokens: int | None) -> None:
        if max_tokens is not None and max_tokens < 0:
            raise ValueError("max_tokens must be >= 0 (or None for no budget)")
        self.max_tokens = max_tokens
        self._spent = 0
        self._tally: SharedTally | None = None

    def share(self, tally: SharedTally, model: str | None = None) -> None:
        """Count against ``tally`` from now on (tokens already spent are charged to it).
        An unlimited budget has nothing to cap: it keeps counting locally. (``model``: the
        sharing client's model; a named model's budget keeps its own share under it.)"""
        if self.max_tokens is None or tally is self._tally:
            return
        if self._spent:
            tally.add(self._spent)
        self._tally = tally

    @property
    def spent(self) -> int:
        return self._spent

    @property
    def total_spent(self) -> int:
        """Tokens spent by every process sharing this budget (this one alone if none)."""
        return self._tally.total() if self._tally is not None else self._spent

    @property
    def remaining(self) -> int | None:
        if self.max_tokens is None:
            return None
        return max(0, self.max_tokens - self.total_spent)

    @property
    def exhausted(self) -> bool:
        return self.max_tokens is not None and self.total_spent >= self.max_tokens

    def add(self, n: int) -> None:
        if n < 0:
            raise ValueError("cannot add a negative number of tokens")
        self._spent += n
        if self._tally is not None and n:
            self._tally.add(n)

    def check(self) -> None:
        """Raise BudgetExhausted once the budget is spent (call before each new request)."""
        if self.max_tokens is None:
            return
        total = self.total_spent
        if total >= self.max_tokens:
            raise BudgetExhausted(
                f"token budget of {self.max_tokens} spent ({total} used); rerun the same "
                "command with a larger --budget-tokens to continue"
            )
