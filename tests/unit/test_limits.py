"""Rate limits, adaptive concurrency, retries and the token budget."""

from __future__ import annotations

import asyncio

import pytest

from synthloom.core.errors import BudgetExhausted
from synthloom.llm.limits import AdaptiveConcurrency, RateLimiter, RetryPolicy, TokenBudget
from synthloom.llm.types import PermanentLLMError, TransientLLMError

# --- RateLimiter ------------------------------------------------------------------------------


async def _count_within(limiter: RateLimiter, attempts: int, tokens: int, window: float) -> int:
    """How many of ``attempts`` concurrent acquires complete within ``window`` seconds."""
    done = 0

    async def one() -> None:
        nonlocal done
        await limiter.acquire(tokens)
        done += 1

    tasks = [asyncio.create_task(one()) for _ in range(attempts)]
    await asyncio.sleep(window)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return done


def test_rate_limiter_without_limits_is_a_noop() -> None:
    limiter = RateLimiter()
    assert asyncio.run(_count_within(limiter, 50, 10**9, 0.05)) == 50


def test_rpm_lets_ten_seconds_worth_through_then_blocks() -> None:
    # rpm=60: ten (10 s worth) go at once, the eleventh waits a second for the pace.
    assert asyncio.run(_count_within(RateLimiter(rpm=60), 20, 1, 0.3)) == 10


class VirtualTime:
    """A clock that only moves when the limiter sleeps: minutes of pacing in milliseconds."""

    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


def _windowed_max(times: list[float], weights: list[float], window: float) -> float:
    best = 0.0
    for i, start in enumerate(times):
        best = max(best, sum(w for t, w in zip(times[i:], weights[i:], strict=True) if t < start + window))
    return best


@pytest.mark.parametrize(("rpm", "tpm", "tokens"), [
    (120, None, [0]),
    (None, 6000, [150, 40, 900, 300]),  # large requests against the 1000-token burst
    (90, 9000, [700, 20]),
    (3, None, [0]),  # a sixth of the minute is half a request: one per 10 s, three per minute
])
def test_every_60_seconds_hold_the_limit_and_the_pace_is_even(
        rpm: float | None, tpm: float | None, tokens: list[int]) -> None:
    # The old leaky bucket let a whole minute's burst through and then dripped at the rate:
    # 2 x the limit within the first 60 s. A greedy caller here, over 5 virtual minutes: at
    # most the limit in any 60 s, a sixth as burst plus the rate (a third) in any 10 s, and
    # close to the limit's throughput (nothing lost to pacing).
    vt = VirtualTime()
    limiter = RateLimiter(rpm=rpm, tpm=tpm, clock=vt.clock, sleep=vt.sleep)
    times: list[float] = []
    weights: list[int] = []

    async def greedy() -> None:
        i = 0
        while vt.now < 300:
            await limiter.acquire(tokens[i % len(tokens)])
            times.append(vt.now)
            weights.append(tokens[i % len(tokens)])
            i += 1

    asyncio.run(greedy())
    ones = [1.0] * len(times)
    if rpm is not None:
        assert _windowed_max(times, ones, 60.0) <= rpm
        assert _windowed_max(times, ones, 10.0) <= max(1.0, rpm / 3)
        if tpm is None:
            assert len(times) >= 5 * rpm - rpm / 6 - 1
    if tpm is not None:
        charged = [min(w, tpm) for w in weights]
        assert _windowed_max(times, charged, 60.0) <= tpm
        assert _windowed_max(times, charged, 10.0) <= tpm / 3 + max(weights)
        if rpm is None:
            assert sum(weights) >= 5 * tpm - tpm / 6 - max(weights)


def test_tpm_blocks_when_tokens_do_not_fit() -> None:
    async def run() -> None:
        limiter = RateLimiter(tpm=100)
        await asyncio.wait_for(limiter.acquire(80), 0.2)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(limiter.acquire(80), 0.2)

    asyncio.run(run())


def test_tpm_clamps_a_request_larger_than_the_capacity() -> None:
    async def run() -> None:
        limiter = RateLimiter(tpm=100)
        await asyncio.wait_for(limiter.acquire(10_000), 0.2)  # charged as the full 100
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(limiter.acquire(5), 0.2)

    asyncio.run(run())


def test_rate_limiter_survives_a_new_event_loop() -> None:
    limiter = RateLimiter(rpm=1000, tpm=10_000)
    asyncio.run(limiter.acquire(10))
    asyncio.run(asyncio.wait_for(limiter.acquire(10), 0.5))


# --- AdaptiveConcurrency ----------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_overload_halves_but_not_below_minimum() -> None:
    clock = FakeClock()
    gate = AdaptiveConcurrency(16, minimum=3, clock=clock)
    assert gate.on_overload() is True
    assert gate.limit == 8
    clock.now += 2
    gate.on_overload()
    assert gate.limit == 4
    clock.now += 2
    gate.on_overload()
    assert gate.limit == 3
    clock.now += 2
    assert gate.on_overload() is False
    assert gate.limit == 3


def test_overload_respects_cooldown() -> None:
    clock = FakeClock()
    gate = AdaptiveConcurrency(16, clock=clock, cooldown_s=1.0)
    for _ in range(10):  # one wave of 429s
        gate.on_overload()
    assert gate.limit == 8
    clock.now += 0.5
    gate.on_overload()
    assert gate.limit == 8
    clock.now += 0.6
    gate.on_overload()
    assert gate.limit == 4


def test_success_grows_after_limit_successes_up_to_maximum() -> None:
    gate = AdaptiveConcurrency(4, maximum=6, clock=FakeClock())
    for _ in range(3):
        assert gate.on_success() is False
    assert gate.limit == 4
    assert gate.on_success() is True
    assert gate.limit == 5
    for _ in range(5):
        gate.on_success()
    assert gate.limit == 6
    for _ in range(50):
        gate.on_success()
    assert gate.limit == 6


def test_maximum_defaults_to_initial_and_bad_bounds_are_rejected() -> None:
    gate = AdaptiveConcurrency(2)
    for _ in range(10):
        gate.on_success()
    assert gate.limit == 2
    with pytest.raises(ValueError):
        AdaptiveConcurrency(2, minimum=3)
    with pytest.raises(ValueError):
        AdaptiveConcurrency(5, maximum=4)


def test_gate_never_exceeds_limit_concurrent_holders() -> None:
    async def run() -> tuple[int, int]:
        gate = AdaptiveConcurrency(3)
        current = peak = 0

        async def work() -> None:
            nonlocal current, peak
            async with gate.slot():
                current += 1
                peak = max(peak, current)
                assert gate.in_flight == current
                await asyncio.sleep(0.005)
                current -= 1

        await asyncio.gather(*(work() for _ in range(30)))
        return peak, gate.in_flight

    peak, in_flight = asyncio.run(run())
    assert peak == 3
    assert in_flight == 0


def test_gate_applies_a_lowered_limit_to_new_holders() -> None:
    async def run() -> list[int]:
        clock = FakeClock()
        gate = AdaptiveConcurrency(4, clock=clock)
        peaks: list[int] = []
        current = 0

        async def work() -> None:
            nonlocal current
            async with gate.slot():
                current += 1
                peaks.append(current)
                await asyncio.sleep(0.005)
                current -= 1

        first = [asyncio.create_task(work()) for _ in range(4)]
        await asyncio.sleep(0)
        gate.on_overload()  # limit 4 -> 2 while four are in flight
        await asyncio.gather(*first)
        peaks.clear()
        await asyncio.gather(*(work() for _ in range(10)))
        return peaks

    peaks = asyncio.run(run())
    assert len(peaks) == 10
    assert max(peaks) == 2


def test_cancelled_waiter_passes_its_wake_up_on() -> None:
    async def run() -> int:
        gate = AdaptiveConcurrency(1)
        release = asyncio.Event()

        async def holder() -> None:
            async with gate.slot():
                await release.wait()

        async def waiter() -> None:
            async with gate.slot():
                pass

        h = asyncio.create_task(holder())
        await asyncio.sleep(0)
        w1 = asyncio.create_task(waiter())
        w2 = asyncio.create_task(waiter())
        await asyncio.sleep(0)
        release.set()
        await asyncio.sleep(0)  # holder leaves and wakes w1 ...
        w1.cancel()  # ... which is cancelled before it runs: w2 must get the slot instead
        await asyncio.wait_for(w2, 0.5)
        await asyncio.gather(h, w1, return_exceptions=True)
        return gate.in_flight

    assert asyncio.run(run()) == 0


def test_gate_serves_waiters_before_newcomers() -> None:
    """A slot freed for a woken waiter is not taken by a task arriving before the waiter runs
    (it used to be, and the waiter queued again at the back: issue 27)."""

    async def run() -> list[str]:
        gate = AdaptiveConcurrency(1)
        order: list[str] = []
        release = asyncio.Event()

        async def user(name: str, hold: asyncio.Event | None = None) -> None:
            async with gate.slot():
                order.append(name)
                if hold is not None:
                    await hold.wait()

        holder = asyncio.create_task(user("holder", release))
        await asyncio.sleep(0)
        waiter = asyncio.create_task(user("waiter"))
        await asyncio.sleep(0)  # queued behind the holder
        release.set()
        await asyncio.sleep(0)  # the holder leaves: the slot is handed to the waiter ...
        assert gate.in_flight == 0 and not gate._waiters
        newcomer = asyncio.create_task(user("newcomer"))  # ... who has not run yet
        await asyncio.gather(holder, waiter, newcomer)
        assert gate.in_flight == 0 and gate._handed == 0
        return order

    assert asyncio.run(run()) == ["holder", "waiter", "newcomer"]


# --- RetryPolicy ------------------------------------------------------------------------------


class Flaky:
    """Raises the given errors in turn, then returns "ok"."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def _policy(**kwargs: float) -> tuple[RetryPolicy, list[float]]:
    waits: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        waits.append(seconds)

    return RetryPolicy(sleep=fake_sleep, **kwargs), waits  # type: ignore[arg-type]


def test_retry_recovers_from_transient_errors_with_exponential_backoff() -> None:
    policy, waits = _policy(initial_wait=0.5, jitter=0.0)
    fn = Flaky(TransientLLMError("503", status=503), TimeoutError(), TransientLLMError("reset"))
    retries: list[tuple[str, int, float]] = []
    result = asyncio.run(
        policy.call(fn, on_retry=lambda e, n, w: retries.append((type(e).__name__, n, w)))
    )
    assert result == "ok"
    assert fn.calls == 4
    assert waits == [0.5, 1.0, 2.0]
    assert retries == [
        ("TransientLLMError", 1, 0.5),
        ("TimeoutError", 2, 1.0),
        ("TransientLLMError", 3, 2.0),
    ]


def test_retry_wait_is_capped_and_jittered() -> None:
    policy, _ = _policy(initial_wait=1.0, max_wait=4.0, jitter=0.5)
    for attempt in range(1, 8):
        base = min(4.0, 2.0 ** (attempt - 1))
        wait = policy.wait_for(attempt, TransientLLMError("x"))
        assert base <= wait <= base * 1.5


def test_retry_honours_retry_after() -> None:
    policy, waits = _policy(initial_wait=0.1, max_wait=5.0, jitter=0.0)
    fn = Flaky(
        TransientLLMError("429", status=429, retry_after=3.0),
        TransientLLMError("429", status=429, retry_after=1000.0),
    )
    assert asyncio.run(policy.call(fn)) == "ok"
    assert waits[0] >= 3.0
    assert waits[1] == 10.0  # a silly Retry-After is capped at max_wait * 2


def test_retry_does_not_retry_permanent_or_other_errors() -> None:
    for error in (PermanentLLMError("400", status=400), ValueError("bad")):
        policy, waits = _policy()
        fn = Flaky(error)
        with pytest.raises(type(error)):
            asyncio.run(policy.call(fn))
        assert fn.calls == 1
        assert waits == []


def test_retry_reraises_the_original_error_after_max_attempts() -> None:
    policy, waits = _policy(max_attempts=3, jitter=0.0)
    errors = [TransientLLMError(f"fail {i}", status=500) for i in range(5)]
    fn = Flaky(*errors)
    with pytest.raises(TransientLLMError, match="fail 2"):
        asyncio.run(policy.call(fn))
    assert fn.calls == 3
    assert len(waits) == 2


# --- TokenBudget ------------------------------------------------------------------------------


def test_token_budget_raises_once_spent() -> None:
    budget = TokenBudget(100)
    budget.add(60)
    budget.check()
    assert budget.remaining == 40 and not budget.exhausted
    budget.add(45)
    assert budget.exhausted and budget.remaining == 0 and budget.spent == 105
    with pytest.raises(BudgetExhausted) as info:
        budget.check()
    assert str(info.value) == (
        "token budget of 100 spent (105 used); rerun the same command with a larger "
        "--budget-tokens to continue"
    )


def test_unlimited_token_budget() -> None:
    budget = TokenBudget(None)
    budget.add(10**9)
    budget.check()
    assert budget.remaining is None and not budget.exhausted
