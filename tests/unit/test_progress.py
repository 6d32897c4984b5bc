"""Per-stage rates and ETAs (core/progress.py) and the CLI's log line without a terminal."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from synthloom.api import RunOptions, run_recipe
from synthloom.cli import _progress_line
from synthloom.core.accounting import StepStats
from synthloom.core.progress import ProgressTracker, format_eta
from synthloom.core.recipe import Recipe
from tests.support.scripted_backend import ScriptedTestBackend


def stats(name: str, kind: str, in_: int, out: int, done: bool = False) -> StepStats:
    return StepStats(name=name, kind=kind, in_=in_, out=out, done=done)


def test_rate_total_and_eta_follow_the_counts() -> None:
    tracker = ProgressTracker({"src": None, "ask": "src"}, window_s=100)
    first = tracker.observe([stats("src", "source", 50, 50), stats("ask", "map", 0, 0)], 0.0)
    assert first["ask"].rate is None and first["ask"].total is None and first["ask"].eta is None
    # The source is still reading: no total, so no ETA, but a rate.
    second = tracker.observe([stats("src", "source", 100, 100), stats("ask", "map", 20, 20)],
                             10.0)
    assert second["ask"].rate == 2.0 and second["ask"].total is None and second["ask"].eta is None
    # The source is done with 100: 60 left at 2/s is 30 s.
    third = tracker.observe([stats("src", "source", 100, 100, done=True),
                             stats("ask", "map", 40, 40)], 20.0)
    assert third["ask"].total == 100 and third["ask"].rate == 2.0 and third["ask"].eta == 30.0
    done = tracker.observe([stats("src", "source", 100, 100, done=True),
                            stats("ask", "map", 100, 90, done=True)], 50.0)
    assert done["ask"].eta is None and done["ask"].total == 100


def test_the_rate_forgets_a_long_wait() -> None:
    """A stage that waited 100 s for its context, then runs at 10/s, shows ~10/s."""
    tracker = ProgressTracker({"a": None}, window_s=15)
    tracker.observe([stats("a", "map", 0, 0)], 0.0)
    for t in range(100, 131):
        seen = tracker.observe([stats("a", "map", (t - 100) * 10, 0)], float(t))
    assert 9.0 <= seen["a"].rate <= 10.5


def test_log_line_names_running_stages_with_eta() -> None:
    steps = [stats("src", "source", 100, 100, done=True), stats("ask", "map", 40, 40)]
    tracker = ProgressTracker({"src": None, "ask": "src"}, window_s=100)
    tracker.observe(steps, 0.0)
    steps[1].in_ = 60
    line = _progress_line(steps, tracker.observe(steps, 10.0), 10.0)
    assert "1/2 steps done" in line and "ask 60/100 2.0/s eta 20s" in line
    assert format_eta(3725) == "1h02m" and format_eta(75) == "1m15s"


def test_a_real_run_reports_totals_and_etas_while_it_goes(tmp_path: Path) -> None:
    """A 1,000-row run on the ScriptedTestBackend (a test double with latency): the second
    stage knows its total and an ETA before it finishes."""
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({"text": f"question {i}"}) + "\n" for i in range(1000)))
    (tmp_path / "echo.jinja").write_text("{{ text }}")
    recipe = Recipe.from_dict({
        "name": "progress", "sources": [{"name": "rows", "type": "jsonl", "path": str(rows)}],
        "steps": [{"name": "ask", "type": "generate", "template": str(tmp_path / "echo.jinja"),
                   "output": "answer"}],
        "sinks": [{"type": "jsonl", "path": "data.jsonl"}]})
    tracker = ProgressTracker({"rows": None, "ask": "rows"}, window_s=5)
    seen = []

    def on_progress(steps: list[StepStats]) -> None:
        seen.append(tracker.observe(steps, time.perf_counter())["ask"])

    asyncio.run(run_recipe(recipe, tmp_path / "out", RunOptions(
        backend=ScriptedTestBackend(latency_s=0.002), on_progress=on_progress, concurrency=8)))
    with_eta = [s for s in seen if s.eta is not None and s.eta > 0]
    assert with_eta and all(s.total == 1000 for s in with_eta)


def test_a_barrier_that_computed_for_minutes_is_timed_from_its_first_output() -> None:
    """A global step finishes nothing for 300 s (observed every second), then emits 64 items
    a second: its rate is ~64/s at once, not 64 over the 300 s pause."""
    tracker = ProgressTracker({"src": None, "dedup": "src"}, window_s=15)
    src = stats("src", "source", 1000, 1000, done=True)
    for t in range(0, 301):
        tracker.observe([src, stats("dedup", "global", 0, 0)], float(t))
    seen = tracker.observe([src, stats("dedup", "global", 64, 64)], 301.0)["dedup"]
    assert seen.rate == 64.0 and seen.eta is not None and seen.eta < 30


def test_log_line_names_a_global_step_computing() -> None:
    steps = [stats("src", "source", 500, 500, done=True), stats("dedup", "global", 0, 0),
             stats("ask", "map", 0, 0)]
    tracker = ProgressTracker({"src": None, "dedup": "src", "ask": "dedup"}, window_s=100)
    line = _progress_line(steps, tracker.observe(steps, 5.0), 5.0)
    assert "dedup computing over 500" in line and "ask" not in line
