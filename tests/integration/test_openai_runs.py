"""The openai backend in whole runs against a real llama.cpp server (127.0.0.1), behind the
fault proxy: faults are retried and counted, a kill -9 resumes without repeating finished
calls, and malformed JSON (from the scripted OpenAI test server) is repaired or counted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.fault_proxy import FaultPlan, FaultProxy, ScriptedOpenAIServer
from tests.support.runs import assert_closed

pytestmark = pytest.mark.integration
# Short caps keep the runs fast; the cut-off answers they make are kept (by default a cut-off
# answer is a drop, which would leave these fault and resume tests without records).
SHORT = ["--set", "max_response_tokens=40", "--set", "instruction.max_tokens=60",
         "--set", "response.keep_truncated=true"]


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "synthloom", *args]


def run_cli(*args: str, timeout: float = 400) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cli(*args), capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "OPENAI_API_KEY": "sk-test-not-a-real-key-1234"})


def load(out: Path) -> tuple[dict, list[dict]]:
    summary = json.loads((out / "summary.json").read_text())
    rows = [json.loads(x) for x in (out / "data.jsonl").read_text().splitlines() if x.strip()]
    return summary, rows


def assert_accounting_closes(summary: dict, out: Path) -> None:
    assert_closed(summary)
    rows = summary["records"]
    ids = [json.loads(x)["_meta"]["id"] for x in (out / "data.jsonl").read_text().splitlines()]
    assert len(ids) == rows == len(set(ids))  # nothing lost, nothing duplicated


def test_quickstart_over_http_with_injected_faults(llama_server, tmp_path: Path) -> None:
    plan = FaultPlan(first_n=["500", "429", "503"], rate=0.25, seed=7, timeout_s=1.0,
                     kinds=["429", "500", "503", "reset", "truncated", "invalid_json", "timeout"])
    with FaultProxy(llama_server.base_url, plan) as proxy:
        out = tmp_path / "faulty"
        done = run_cli("run", "quickstart", "--out", str(out), "--limit", "5", "--quiet",
                       "--backend", f"openai:{proxy.base_url}", "--model", llama_server.model,
                       "--concurrency", "2", *SHORT)
        assert done.returncode == 0, done.stderr
        summary, rows = load(out)
        posts = [e for e in proxy.requests() if e.method == "POST"]
    assert_accounting_closes(summary, out)
    assert rows and all(r["_meta"]["model"].startswith("openai:") for r in rows)
    llm = summary["llm"]
    assert plan.injected >= 3 and llm["retries"] >= plan.injected - llm["failed_requests"]
    assert {"500", "429", "503"} <= set(llm["retry_causes"])
    # Every request the server saw is a call the client counted (plus at most one
    # response_format negotiation resend, which the backend makes itself).
    assert llm["calls"] <= len(posts) <= llm["calls"] + 1
    assert "sk-test-not-a-real-key" not in "".join(
        p.read_text(errors="replace") for p in out.iterdir() if p.suffix in (".json", ".jsonl"))


def test_kill9_then_resume_repeats_no_finished_call(llama_server, tmp_path: Path) -> None:
    out = tmp_path / "killed"
    args = ["run", "quickstart", "--out", str(out), "--limit", "8", "--quiet", "--backend",
            "--model", llama_server.model, "--concurrency", "2", *SHORT]
    with FaultProxy(llama_server.base_url) as proxy:
        args[7] = f"--backend=openai:{proxy.base_url}"
        args.remove("--model")
        args[args.index(llama_server.model)] = f"--model={llama_server.model}"
        proc = subprocess.Popen(cli(*args), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 240
        while sum(proxy.completed_bodies().values()) < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
        first = proxy.completed_bodies()
        assert sum(first.values()) >= 5, "the run never got going"
        proxy.reset_log()
        done = run_cli(*args)
        assert done.returncode == 0, done.stderr
        second = proxy.completed_bodies()
    summary, rows = load(out)
    assert_accounting_closes(summary, out)
    repeated = sum(n for body, n in second.items() if body in first)
    # Only calls in flight at the kill may be repeated (concurrency 2; the response may have
    # left the server but not reached the cache).
    assert repeated <= 2, f"{repeated} finished calls were requested again"
    assert summary["steps"][0]["out"] == 8 and summary["cache_hits"] >= 3


def test_malformed_json_is_repaired_or_counted(tmp_path: Path) -> None:
    """The scripted OpenAI test server (a test double) answers instruction requests with broken
    JSON: fixable answers are repaired, hopeless ones fail the item with a counted error."""

    def responder(request: dict) -> str:
        text = request["messages"][-1]["content"]
        if "instruction" in text and "JSON" in text:
            if "Sourdough" in text or "HTTP" in text:
                return "Here you go:\n```json\n{\n  'instruction': 'How do I keep it alive,'\n"
            return "I cannot produce that."  # no JSON at all: re-asked, then failed
        return "A short and useful answer."

    with ScriptedOpenAIServer(responder) as server:
        out = tmp_path / "broken"
        done = run_cli("run", "quickstart", "--out", str(out), "--limit", "3", "--quiet",
                       "--backend", f"openai:{server.base_url}", "--set",
                       "instruction_ok.min_words=1")
        assert done.returncode == 0, done.stderr
    summary, rows = load(out)
    assert_accounting_closes(summary, out)
    assert len(rows) == 2 and all(r["instruction"].startswith("How do I") for r in rows)
    failed = [json.loads(x) for x in (out / "failed.jsonl").read_text().splitlines()]
    assert [f["error_class"] for f in failed] == ["StructuredOutputError"]
    assert summary["llm"]["structured_failures"] == 1
