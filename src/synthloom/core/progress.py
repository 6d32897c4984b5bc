"""Per-stage rates and ETAs while a run goes on (the CLI's live table and log lines).

A stage's rate is the items it finished (``in``) per second over a sliding window, so a stage
that waited for its context or a barrier is not averaged down by its wait. Its total is known
once the node it reads from is done (that node's ``out``); the ETA is then what is left at the
current rate. While the input is still streaming, the total is unknown and no ETA is shown:
a guess from a partial count would be wrong by the size of what has not arrived.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from synthloom.core.accounting import StepStats


@dataclass(frozen=True)
class StageProgress:
    #: Items finished per second over the window (None before two samples).
    rate: float | None
    #: Items this stage will receive, once its input is done (None while it streams).
    total: int | None
    #: Seconds left at the current rate (None when the total or the rate is unknown).
    eta: float | None


class ProgressTracker:
    """Samples step counts over time. ``inputs``: step name -> the node it reads (None for
    sources)."""

    def __init__(self, inputs: dict[str, str | None], window_s: float = 15.0) -> None:
        self.inputs = inputs
        self.window_s = window_s
        self._samples: dict[str, deque[tuple[float, int]]] = {}

    def observe(self, steps: list[StepStats], now: float) -> dict[str, StageProgress]:
        by_name = {s.name: s for s in steps}
        out: dict[str, StageProgress] = {}
        for s in steps:
            samples = self._samples.setdefault(s.name, deque())
            if s.in_ == 0:
                # Nothing finished yet (waiting for context, or a barrier computing): time the
                # rate from the last look at zero, or a barrier that computed for minutes and
                # then emits is averaged down by its pause (ETAs of 100+ hours were shown).
                samples.clear()
            if not samples or samples[-1][1] != s.in_ or now - samples[-1][0] > self.window_s:
                samples.append((now, s.in_))
            while len(samples) > 2 and now - samples[0][0] > self.window_s:
                samples.popleft()
            rate = None
            if len(samples) >= 2 and now > samples[0][0]:
                rate = (samples[-1][1] - samples[0][1]) / (now - samples[0][0])
            upstream = by_name.get(self.inputs.get(s.name) or "")
            total = upstream.out if upstream is not None and upstream.done else None
            if s.done:
                total = s.in_
            eta = None
            if total is not None and not s.done:
                left = max(0, total - s.in_)
                eta = 0.0 if left == 0 else (left / rate if rate else None)
            out[s.name] = StageProgress(rate=rate, total=total, eta=eta)
        return out


def format_eta(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"
