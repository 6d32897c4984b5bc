"""Reliability suite: runs that end badly (issue 22 items 4, 5, 13). Real ``synthloom run``
subprocesses against the scripted OpenAI test server (a deterministic test double):

- Ctrl-C / SIGTERM during a rerun of a finished run: exit 130, summary.json "interrupted", the
  finished run's data.jsonl / failed.jsonl / dropped.jsonl untouched (the rerun's rows in
  *.partial), and no request reaches the server after the signal: the server holds every
  request, so exactly the ``--concurrency`` requests in flight at the signal are all it sees;
- kill -9 during a pure replay leaves data.jsonl whole;
- export refuses the interrupted run (exit 2, the status named) unless --force;
- every item failing is exit 4 and status "failed";
- a response body over the cap is one clear, unretried error (both HTTP transports).

The earlier suites (test_reliability_resume.py: kill -9 and resume; test_reliability_faults.py:
injected HTTP faults) cover what these runs do not.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from synthloom.api import RunOptions, run_recipe
from synthloom.llm.backends.openai_compat import OpenAIBackend
from synthloom.llm.client import LLMClient
from synthloom.llm.types import LLMRequest, PermanentLLMError
from tests.support.fault_proxy import ScriptedHTTPError, ScriptedOpenAIServer
from tests.support.reliability import SCRIPTED_MODEL, cli, quickstart_responder, run_cli

pytestmark = pytest.mark.integration

DOCS = 12
CONCURRENCY = 2
OUTPUTS = ("data.jsonl", "failed.jsonl", "dropped.jsonl")


class HoldingResponder:
    """The quickstart answers; while ``hold`` is set, each request waits until released, and
    the number being answered at once is tracked (the server's view of requests in flight)."""

    def __init__(self) -> None:
        self.hold = False
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.in_flight = 0
        self.peak = 0

    def __call__(self, request: dict[str, Any]) -> str:
        with self.lock:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
        try:
            if self.hold:
                self.release.wait(60)
            return quickstart_responder(request)
        finally:
            with self.lock:
                self.in_flight -= 1


def finished_run(server: ScriptedOpenAIServer, out: Path) -> dict[str, bytes]:
    asyncio.run(run_recipe("quickstart", out, RunOptions(
        backend=f"openai:{server.base_url}", model=SCRIPTED_MODEL, limit=DOCS,
        concurrency=CONCURRENCY)))
    return {name: (out / name).read_bytes() for name in OUTPUTS}


def run_args(server: ScriptedOpenAIServer, out: Path, *extra: str) -> list[str]:
    return ["run", "quickstart", "--out", str(out), "--limit", str(DOCS), "--quiet",
            "--no-report", f"--backend=openai:{server.base_url}", f"--model={SCRIPTED_MODEL}",
            f"--concurrency={CONCURRENCY}", *extra]


def wait_until(condition: Any, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 60
    while not condition():
        assert proc.poll() is None, f"the run ended (exit {proc.returncode}) before {what}"
        assert time.monotonic() < deadline, f"no {what} within 60 s"
        time.sleep(0.01)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_an_interrupted_rerun_keeps_the_outputs_and_sends_nothing_after_the_signal(
        tmp_path: Path, signum: int) -> None:
    responder = HoldingResponder()
    out = tmp_path / "run"
    with ScriptedOpenAIServer(responder) as server:
        before = finished_run(server, out)
        server.reset_log()
        responder.hold, responder.peak = True, 0
        # A new response length: every response is asked again (instructions are cached).
        # Batches of 2: several batches in flight, whose waiting items took the freed slots.
        proc = subprocess.Popen(cli(*run_args(server, out, "--set", "max_response_tokens=200",
                                              "--batch-size", "2")),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            wait_until(lambda: responder.in_flight == CONCURRENCY, proc, "requests in flight")
            proc.send_signal(signum)
            _, err = proc.communicate(timeout=60)
            sent = len(server.request_json())
        finally:
            responder.release.set()
            proc.kill()  # a no-op once it has ended
            proc.wait()
        peak = responder.peak

    assert proc.returncode == 130, err.decode()
    # Was: the batches in flight took the slots the signal freed and sent up to 6 more, so the
    # server had more than --concurrency requests at once.
    assert sent == CONCURRENCY and peak == CONCURRENCY
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "interrupted"  # was "ok"
    # Was: data.jsonl reopened for writing at the start, cut to what the rerun had written.
    assert {name: (out / name).read_bytes() for name in OUTPUTS} == before
    assert (out / "data.jsonl.partial").exists()

    if signum == signal.SIGINT:  # export refuses the run, naming its status; --force exports
        refused = run_cli("export", str(out), "--out", str(tmp_path / "exp"))
        assert refused.returncode == 2 and "'interrupted'" in refused.stderr
        forced = run_cli("export", str(out), "--out", str(tmp_path / "exp"), "--force")
        assert forced.returncode == 0, forced.stderr
        rows = (tmp_path / "exp" / "train.jsonl").read_text().splitlines()
        assert len(rows) == DOCS  # the finished run's records, all of them


def test_kill_9_during_a_pure_replay_leaves_data_jsonl_whole(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with ScriptedOpenAIServer(quickstart_responder) as server:
        before = finished_run(server, out)
        proc = subprocess.Popen(cli(*run_args(server, out)), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)

        def writing() -> bool:
            # Was: data.jsonl truncated as the replay began (0 records left by a kill -9).
            return ((out / "data.jsonl.partial").exists()
                    or (out / "data.jsonl").read_bytes() != before["data.jsonl"])

        deadline = time.monotonic() + 60
        while not writing() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.002)
        proc.send_signal(signal.SIGKILL)  # by our own Popen: a no-op if it already ended
        proc.wait(30)
    assert (out / "data.jsonl").read_bytes() == before["data.jsonl"]


def test_every_item_failing_is_exit_4_and_status_failed(tmp_path: Path) -> None:
    def refuses(request: dict[str, Any]) -> str:
        raise ScriptedHTTPError(400, "this model refuses every prompt")

    out = tmp_path / "run"
    with ScriptedOpenAIServer(refuses) as server:
        done = run_cli(*run_args(server, out))
    assert done.returncode == 4, done.stderr  # was 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["records"] == 0  # was "ok"
    assert summary["failed"] == DOCS
    # The run finished: its outputs are published (no records, every failure with its cause).
    assert "failed.jsonl" in done.stderr and (out / "data.jsonl").read_text() == ""
    failed = (out / "failed.jsonl").read_text().splitlines()
    assert len(failed) == DOCS and "refuses every prompt" in failed[0]


@pytest.mark.parametrize("transport", ["h11", "aiohttp", "httpx"])
def test_a_response_over_the_body_cap_is_one_clear_error(transport: str) -> None:
    def huge(request: dict[str, Any]) -> str:
        return "word " * 20_000  # ~100 KB of answer

    async def go(base_url: str) -> None:
        backend = OpenAIBackend(base_url, SCRIPTED_MODEL, transport=transport,
                                max_response_bytes=64 * 1024)
        client = LLMClient(backend, max_attempts=3)
        try:
            with pytest.raises(PermanentLLMError, match="larger than the 0.0625 MiB cap"):
                await client.generate(LLMRequest(messages=[{"role": "user", "content": "hi"}]))
        finally:
            await client.aclose()

    with ScriptedOpenAIServer(huge) as server:
        asyncio.run(go(server.base_url))
        posts = [e for e in server.requests() if e.method == "POST"]
    assert len(posts) == 1  # not retried: the same request would bring the same body
