"""``--rpm``, ``--tpm`` and adaptive concurrency, through ``synthloom run`` (a subprocess) against
the fault proxy in front of the scripted OpenAI test server (a deterministic test double).

Measured at the server: the arrival time, the requested tokens (prompt characters / 4 +
``max_tokens``, how OpenAI-style servers charge a request against TPM, and what the client
charges) and the requests in flight at each arrival. The limiter's promise, checked over every
sliding window of the run: at most the limit in any 60 s, and in any 10 s at most its burst (a
sixth of the limit) plus 10 s at its rate, i.e. a third of the limit (plus one request of slack
for the trip from client to server). An unlimited run of the same recipe breaks the 10 s bound,
so the check can fail. That the 60 s bound binds is shown on a virtual clock in
tests/unit/test_limits.py (a real run would need minutes).
"""

from __future__ import annotations

import bisect
import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.fault_proxy import FaultPlan, FaultProxy, ScriptedOpenAIServer
from tests.support.reliability import (
    SCRIPTED_MODEL,
    assert_accounting_closes,
    load_run,
    quickstart_responder,
    run_cli,
)

pytestmark = pytest.mark.integration

DOCS = 30  # quickstart: two calls per document (instruction, then response)
CALLS = 2 * DOCS


class TimedResponder:
    """The quickstart responder, recording per answered request its arrival, requested tokens
    and the requests in flight at that moment (itself included); ``latency_s`` is slept while
    the request counts as in flight."""

    def __init__(self, latency_s: float = 0.0) -> None:
        self.latency_s = latency_s
        self._lock = threading.Lock()
        self._in_flight = 0
        self.arrivals: list[float] = []
        self.tokens: list[int] = []
        self.overlap: list[int] = []

    def __call__(self, request: dict[str, Any]) -> str:
        with self._lock:
            self._in_flight += 1
            self.arrivals.append(time.monotonic())
            self.tokens.append(_requested_tokens(request))
            self.overlap.append(self._in_flight)
        try:
            if self.latency_s:
                time.sleep(self.latency_s)
            return quickstart_responder(request)
        finally:
            with self._lock:
                self._in_flight -= 1


def _requested_tokens(request: dict[str, Any]) -> int:
    chars = sum(len(m.get("content") or "") for m in request.get("messages") or [])
    chars += len(request.get("prompt") or "")
    return chars // 4 + int(request.get("max_tokens") or 0)


def max_in_window(times: list[float], weights: list[float], window_s: float) -> float:
    """The largest sum of weights arriving within any ``window_s``-second sliding window."""
    order = sorted(range(len(times)), key=times.__getitem__)
    ts = [times[i] for i in order]
    ws = [weights[i] for i in order]
    best, total, start = 0.0, 0.0, 0
    for end, t in enumerate(ts):
        total += ws[end]
        while ts[start] <= t - window_s:
            total -= ws[start]
            start += 1
        best = max(best, total)
    return best


@pytest.fixture(scope="module")
def docs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("docs")
    for i in range(DOCS):
        (folder / f"doc{i:02d}.txt").write_text(
            f"Title: Topic number {i}\n\nTopic number {i} is about how step {i} follows step "
            f"{i - 1} in a long process that learners study carefully.\n")
    return folder


def run_quickstart(url: str, docs: Path, out: Path, *extra: str) -> dict[str, Any]:
    done = run_cli("run", "quickstart", "--backend", f"openai:{url}", "--model", SCRIPTED_MODEL,
                   "--set", f"docs={docs}", "--out", str(out), "--concurrency", "8", "--quiet",
                   "--no-report", *extra, env={"OPENAI_API_KEY": "sk-test"}, timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    summary, rows = load_run(out)
    assert_accounting_closes(summary, out)
    assert len(rows) == DOCS and summary["failed"] == 0
    return summary


def serve(responder: TimedResponder, plan: FaultPlan | None = None
          ) -> tuple[ScriptedOpenAIServer, FaultProxy]:
    upstream = ScriptedOpenAIServer(responder).start()
    return upstream, FaultProxy(upstream.base_url, plan).start()


@pytest.fixture(scope="module")
def unlimited(docs: Path, tmp_path_factory: pytest.TempPathFactory) -> TimedResponder:
    """The same run without limits: what the limited runs must spread out."""
    responder = TimedResponder()
    upstream, proxy = serve(responder)
    with upstream, proxy:
        run_quickstart(proxy.base_url, docs, tmp_path_factory.mktemp("unlimited"))
    assert len(responder.arrivals) == CALLS
    return responder


@pytest.mark.timeout(300)
def test_rpm_holds_in_every_window_at_the_server(
        docs: Path, tmp_path: Path, unlimited: TimedResponder) -> None:
    rpm = 150  # a burst of 25, then 2.5 per second: the 60 calls take 14 s
    ones = [1.0] * CALLS
    bound = rpm / 3 + 1
    # Control: unlimited, the same calls come faster than the limit allows.
    assert max_in_window(unlimited.arrivals, ones, 10.0) > bound
    responder = TimedResponder()
    upstream, proxy = serve(responder)
    with upstream, proxy:
        summary = run_quickstart(proxy.base_url, docs, tmp_path, "--rpm", str(rpm))
    assert len(responder.arrivals) == summary["llm"]["calls"] == CALLS
    assert max_in_window(responder.arrivals, ones, 10.0) <= bound
    assert max_in_window(responder.arrivals, ones, 60.0) <= rpm
    # The pace binds: the 35 calls after the burst came at 2.5 per second (14 s).
    assert max(responder.arrivals) - min(responder.arrivals) >= 12


@pytest.mark.timeout(300)
def test_tpm_holds_in_every_window_at_the_server(
        docs: Path, tmp_path: Path, unlimited: TimedResponder) -> None:
    total = sum(unlimited.tokens)
    tpm = 2 * total  # a burst of a third of the run's tokens, the rest over 20 s
    bound = tpm / 3 + max(unlimited.tokens)
    assert max_in_window(unlimited.arrivals, unlimited.tokens, 10.0) > bound  # control
    responder = TimedResponder()
    upstream, proxy = serve(responder)
    with upstream, proxy:
        run_quickstart(proxy.base_url, docs, tmp_path, "--tpm", str(tpm))
    assert sum(responder.tokens) == total  # the same requests: the windows compare like for like
    assert max_in_window(responder.arrivals, responder.tokens, 10.0) <= bound
    assert max_in_window(responder.arrivals, responder.tokens, 60.0) <= tpm
    assert max(responder.arrivals) - min(responder.arrivals) >= 16


class StormPlan(FaultPlan):
    """No faults for the first ``calm`` requests, then 429 (Retry-After) for ``storm`` of them,
    then none again."""

    def __init__(self, calm: int, storm: int, retry_after: float = 0.2) -> None:
        super().__init__(retry_after=retry_after)
        self.calm, self.storm = calm, storm
        self.faulted_at: list[float] = []

    def decide(self) -> str | None:
        with self._lock:
            index = self._decided
            self._decided += 1
            if self.calm <= index < self.calm + self.storm:
                self._injected += 1
                self.faulted_at.append(time.monotonic())
                return "429"
            return None


@pytest.mark.timeout(300)
def test_a_429_storm_halves_the_concurrency_the_server_sees(docs: Path, tmp_path: Path) -> None:
    responder = TimedResponder(latency_s=0.25)
    plan = StormPlan(calm=16, storm=16)
    upstream, proxy = serve(responder, plan)
    with upstream, proxy:
        summary = run_quickstart(proxy.base_url, docs, tmp_path)
    llm = summary["llm"]
    assert plan.injected == 16 and llm["retries"] == 16 and llm["retry_causes"] == {"429": 16}
    assert llm["failed_requests"] == 0 and len(responder.arrivals) == CALLS
    # At the server: all 8 slots in use before the storm; in the first wave after it (the
    # first 8 requests answered after the last 429), at most half of them plus the one slot
    # additive increase may have added by then.
    start, end = min(plan.faulted_at), max(plan.faulted_at)
    before = [o for t, o in zip(responder.arrivals, responder.overlap, strict=True) if t < start]
    after_at = bisect.bisect_right(sorted(responder.arrivals), end)
    pairs = sorted(zip(responder.arrivals, responder.overlap, strict=True))
    after = [o for _, o in pairs][after_at:][:8]
    assert max(before) == 8, before
    assert len(after) == 8 and max(after) <= 8 // 2 + 1, after
    # The client's own account: halved at least once (429 waves are spaced by a cooldown, so
    # one burst does not collapse it to 1), then grown back by additive increase.
    assert llm["concurrency_decreases"] >= 1 and llm["concurrency_lowest"] <= 4, llm
    (tmp_path / "measured.json").write_text(json.dumps({"before": before, "after": after}))
