"""--rpm / --tpm / adaptive concurrency measured at the server, through ``synthloom run``.

Runs the quickstart recipe (30 documents, 60 calls, --concurrency 8) in a subprocess against the
fault proxy in front of the scripted OpenAI test server, as
tests/integration/test_reliability_limits.py does, and prints what the server saw: the most
requests (tokens) in any 10 s and 60 s window, against the limit and against an unlimited run of
the same recipe (the baseline); and, under a storm of 16 x 429, the requests in flight at the
server before the storm and in the first wave after it.

    python benchmarks/limits_cli.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.integration.test_reliability_limits import (  # noqa: E402
    DOCS,
    StormPlan,
    TimedResponder,
    max_in_window,
    run_quickstart,
    serve,
)


def write_docs(folder: Path) -> None:
    for i in range(DOCS):
        (folder / f"doc{i:02d}.txt").write_text(
            f"Title: Topic number {i}\n\nTopic number {i} is about how step {i} follows step "
            f"{i - 1} in a long process that learners study carefully.\n")


def timed_run(docs: Path, out: Path, *extra: str, plan: StormPlan | None = None,
              latency_s: float = 0.0) -> tuple[TimedResponder, dict]:
    responder = TimedResponder(latency_s)
    upstream, proxy = serve(responder, plan)
    with upstream, proxy:
        summary = run_quickstart(proxy.base_url, docs, out, *extra)
    return responder, summary


def report(name: str, r: TimedResponder, weights: list[float], limit: float | None,
           base: float) -> None:
    span = max(r.arrivals) - min(r.arrivals)
    w10, w60 = max_in_window(r.arrivals, weights, 10.0), max_in_window(r.arrivals, weights, 60.0)
    first = min(r.arrivals)
    burst = sum(w for t, w in zip(r.arrivals, weights, strict=True) if t < first + 0.5)
    rate = (sum(weights) - burst) / (span - 0.5) * 60 if span > 1 else float("inf")
    bound = f"limit {limit:g}/min -> <= {limit / 3:g} per 10 s" if limit else "no limit"
    print(f"{name:10s} {bound:34s} max in 10 s {w10:8.0f}  in 60 s {w60:8.0f}  "
          f"span {span:5.1f} s  burst {burst:6.0f} then {rate:7.0f}/min "
          f"({w10 / base:.2f}x the unlimited run's 10 s peak)")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "docs").mkdir()
        write_docs(root / "docs")
        docs = root / "docs"
        free, _ = timed_run(docs, root / "free")
        ones = [1.0] * len(free.arrivals)
        report("unlimited", free, ones, None, max_in_window(free.arrivals, ones, 10.0))
        rpm = 150
        limited, _ = timed_run(docs, root / "rpm", "--rpm", str(rpm))
        report("--rpm", limited, [1.0] * len(limited.arrivals), rpm,
               max_in_window(free.arrivals, ones, 10.0))
        tpm = 2 * sum(free.tokens)
        base = max_in_window(free.arrivals, free.tokens, 10.0)
        report("unlimited", free, free.tokens, None, base)
        limited, _ = timed_run(docs, root / "tpm", "--tpm", str(tpm))
        report("--tpm", limited, limited.tokens, tpm, base)
        plan = StormPlan(calm=16, storm=16)
        storm, summary = timed_run(docs, root / "storm", plan=plan, latency_s=0.25)
        start, end = min(plan.faulted_at), max(plan.faulted_at)
        pairs = sorted(zip(storm.arrivals, storm.overlap, strict=True))
        before = max(o for t, o in pairs if t < start)
        after = [o for t, o in pairs if t > end][:8]
        later = max(o for t, o in pairs if t > end)
        llm = summary["llm"]
        print(f"429 storm  in flight at the server: before {before}, first wave after "
              f"{max(after)} ({max(after) / before:.2f}x), later max {later}; client: "
              f"lowest limit {llm['concurrency_lowest']}, {llm['concurrency_decreases']} "
              f"decrease(s), final {llm['concurrency_limit']}, retries {llm['retries']}")


if __name__ == "__main__":
    main()
