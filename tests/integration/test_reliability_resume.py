"""Reliability suite 2: crash and resume. ``synthloom run`` is killed with SIGKILL several times
at random moments (one of them during start-up, the others after a random number of answered
calls, plus a random delay), then run to the end. Against the scripted OpenAI test server (a
deterministic test double with a little latency, so calls are in flight at each kill):

- the final records are exactly those of an uninterrupted run (same ids, same order);
- the server counts, per interrupted attempt, which request bodies it answered; a body answered
  before a kill is asked again afterwards only if it was in flight at the kill (at most
  ``--concurrency`` per kill): finished calls come from the run store, never the server.

The random seed is printed on failure; set SYNTHLOOM_RELIABILITY_SEED to replay one.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from synthloom.api import RunOptions, run_recipe
from tests.support.fault_proxy import ScriptedOpenAIServer
from tests.support.reliability import (
    SCRIPTED_MODEL,
    assert_accounting_closes,
    cli,
    load_run,
    quickstart_responder,
    run_cli,
)

pytestmark = pytest.mark.integration

CONCURRENCY = 2
DOCS = 12  # 24 calls; at 0.12 s each, two at a time, about 1.5 s of calls in all
LATENCY_S = 0.12
KILLS_AFTER_PROGRESS = 2


def answered(server: ScriptedOpenAIServer) -> int:
    return sum(server.completed_bodies().values())


def test_repeated_sigkill_then_resume_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    seed = int(os.environ.get("SYNTHLOOM_RELIABILITY_SEED") or random.randrange(1 << 30))
    rng = random.Random(seed)
    why = f"(seed {seed}; SYNTHLOOM_RELIABILITY_SEED={seed} replays the kill plan)"
    with ScriptedOpenAIServer(quickstart_responder, latency_s=LATENCY_S) as server:
        backend = f"openai:{server.base_url}"
        reference = tmp_path / "reference"
        asyncio.run(run_recipe("quickstart", reference, RunOptions(
            backend=backend, model=SCRIPTED_MODEL, limit=DOCS, concurrency=CONCURRENCY)))
        reference_bodies = server.completed_bodies()
        server.reset_log()

        out = tmp_path / "killed"
        args = ["run", "quickstart", "--out", str(out), "--limit", str(DOCS), "--quiet",
                "--no-report", f"--backend={backend}", f"--model={SCRIPTED_MODEL}",
                f"--concurrency={CONCURRENCY}"]
        phases: list[Counter[str]] = []  # bodies answered during each killed attempt
        # The first kill lands during start-up (imports, creating the run store).
        plan: list[int | None] = [None] + [rng.randint(1, 8) for _ in range(KILLS_AFTER_PROGRESS)]
        for progress in plan:
            proc = subprocess.Popen(cli(*args), stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 60
            if progress is None:
                time.sleep(rng.uniform(0.05, 1.0))
            else:
                while answered(server) < progress and proc.poll() is None:
                    assert time.monotonic() < deadline, f"no progress {why}"
                    time.sleep(0.01)
                time.sleep(rng.uniform(0.0, LATENCY_S))
            finished = proc.poll() is not None
            proc.send_signal(signal.SIGKILL)  # by our own Popen: a no-op if it already ended
            proc.wait(30)
            phases.append(server.completed_bodies())
            server.reset_log()
            assert not finished, f"the run ended (exit {proc.returncode}) before its kill {why}"

        done = run_cli(*args, timeout=120)
        assert done.returncode == 0, done.stderr
        final = server.completed_bodies()

    summary, rows = load_run(out)
    ref_summary, ref_rows = load_run(reference)
    assert_accounting_closes(summary, out)
    assert [r["_meta"]["id"] for r in rows] == [r["_meta"]["id"] for r in ref_rows], why
    assert summary["records"] == ref_summary["records"] == DOCS

    # Server-side counts: what a killed attempt got answered is asked again later only if it
    # was in flight at that kill (answered, but not yet in the run store).
    later = [sum(phases[i + 1:], Counter()) + final for i in range(len(phases))]
    for i, got in enumerate(phases):
        again = [body for body in got if body in later[i]]
        assert len(again) <= CONCURRENCY, f"kill {i}: {len(again)} finished calls repeated {why}"
    # The interrupted attempts together asked exactly the uninterrupted run's requests, each
    # once, plus at most the calls in flight at each kill.
    every = sum(phases, Counter()) + final
    assert set(every) == set(reference_bodies) and len(reference_bodies) == 2 * DOCS, why
    assert sum(every.values()) <= 2 * DOCS + CONCURRENCY * len(phases), why
    assert sum(phases, Counter()), f"no kill landed after an answered call {why}"
