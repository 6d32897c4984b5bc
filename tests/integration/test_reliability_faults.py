"""Reliability suite 1: the fault server. The quickstart recipe runs through the fault proxy in
front of the scripted OpenAI test server (a deterministic test double), which injects 429 with
Retry-After, 500, 503, client timeouts, connection resets, truncated bodies and invalid JSON.

Checked at both ends: the run ends with exactly the records of an undisturbed run (none lost,
none duplicated); every POST the server saw is a call the client counted, every injected fault
is either a counted retry or a counted failed request, and a request that keeps failing fails
only its own item, with its cause in failed.jsonl. The real llama.cpp variant of this run is
tests/integration/test_openai_runs.py::test_quickstart_over_http_with_injected_faults.

The runs are in-process (no CLI start-up cost) so the client can get a 1 s read timeout and
short retry waits: every fault costs at most a second and the file stays a few seconds.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from synthloom.core.executor import LocalExecutor
from synthloom.core.recipe import Recipe
from synthloom.core.store import RunStore
from synthloom.llm.backends.openai_compat import OpenAIBackend
from synthloom.llm.client import LLMClient
from synthloom.llm.limits import RetryPolicy
from tests.support.fault_proxy import FAULT_KINDS, FaultPlan, FaultProxy, ScriptedOpenAIServer
from tests.support.reliability import (
    SCRIPTED_MODEL,
    assert_accounting_closes,
    load_run,
    quickstart_responder,
    read_jsonl,
)

pytestmark = pytest.mark.integration

DOCS = 12  # every bundled quickstart document: 24 calls per undisturbed run


def run_quickstart(base_url: str, out: Path, *, max_attempts: int = 8, concurrency: int = 4,
                   timeout_s: float = 5.0, limit: int = DOCS, max_wait: float = 0.2,
                   transport: str = "auto") -> dict[str, Any]:
    """What ``synthloom run quickstart`` does, with a short read timeout and short backoff."""

    async def go() -> dict[str, Any]:
        recipe = Recipe.load("quickstart", {})
        store = RunStore(out / "run.db")
        backend = OpenAIBackend(base_url, SCRIPTED_MODEL, timeout_s=timeout_s,
                                transport=transport)
        await backend.check()
        retry = RetryPolicy(max_attempts=max_attempts, initial_wait=0.02, max_wait=max_wait)
        client = LLMClient(backend, concurrency=concurrency, retry=retry, cache=store)
        try:
            executor = LocalExecutor(recipe, out, llm=client, store=store, limit=limit)
            return (await executor.run()).to_json()
        finally:
            await client.aclose()
            store.close()

    out.mkdir(parents=True, exist_ok=True)
    return asyncio.run(go())


@pytest.fixture(scope="module")
def undisturbed(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """The records of a run with no faults: what every faulted run must end with."""
    out = tmp_path_factory.mktemp("undisturbed")
    with ScriptedOpenAIServer(quickstart_responder) as server:
        run_quickstart(server.base_url, out)
    summary, rows = load_run(out)
    assert_accounting_closes(summary, out)
    assert len(rows) == DOCS and summary["failed"] == 0
    return rows


def posts(proxy: FaultProxy) -> list[Any]:
    return [e for e in proxy.requests() if e.method == "POST"]


@pytest.mark.parametrize("transport", ["h11", "aiohttp", "httpx"])
def test_every_fault_kind_is_retried_and_no_record_is_lost(
        undisturbed: list[dict[str, Any]], tmp_path: Path, transport: str) -> None:
    # Each kind once up front (a known mix), then a third of the requests faulted at random.
    # "timeout" holds the answer 2 s: the client's 1 s read timeout fires first. (Only once:
    # each costs a second, and a longer client timeout keeps a loaded machine's slow answer
    # from passing for an injected fault.)
    kinds = [k for k in FAULT_KINDS if k != "timeout"]
    plan = FaultPlan(first_n=list(FAULT_KINDS), rate=0.33, kinds=kinds, seed=5, timeout_s=2.0,
                     max_faults=30, retry_after=0.1)
    with ScriptedOpenAIServer(quickstart_responder) as server, \
            FaultProxy(server.base_url, plan) as proxy:
        summary = run_quickstart(proxy.base_url, tmp_path, timeout_s=1.0, transport=transport)
        seen = posts(proxy)
        answered = proxy.completed_bodies()
    _, rows = load_run(tmp_path)
    assert_accounting_closes(summary, tmp_path)

    # Nothing lost, nothing duplicated, nothing changed: the undisturbed run's records, in order.
    assert [r["_meta"]["id"] for r in rows] == [r["_meta"]["id"] for r in undisturbed]
    assert [r["response"] for r in rows] == [r["response"] for r in undisturbed]
    assert summary["failed"] == 0 and read_jsonl(tmp_path / "failed.jsonl") == []

    # Server side: every kind was injected; each request body got a full answer exactly once.
    faults = [e.fault for e in seen if e.fault]
    assert set(faults) == set(FAULT_KINDS) and len(faults) == plan.injected
    assert len(answered) == 2 * DOCS and set(answered.values()) == {1}
    # Client side: every POST is a counted call; every fault a counted retry (none failed).
    llm = summary["llm"]
    assert llm["calls"] == len(seen)
    assert llm["retries"] == plan.injected and llm["failed_requests"] == 0
    assert sum(llm["retry_causes"].values()) == llm["retries"]
    assert {"429", "500", "503"} <= set(llm["retry_causes"])
    # Transport troubles are told apart, not lumped as "TransientLLMError".
    assert {"timeout", "invalid_body"} <= set(llm["retry_causes"])
    assert "TransientLLMError" not in llm["retry_causes"]
    # A reset and a truncated body are named by the transport's own error classes.
    assert len(llm["retry_causes"]) >= 6, llm["retry_causes"]


class TimedPlan(FaultPlan):
    """A FaultPlan that also notes when each request arrived."""

    def decide(self) -> str | None:
        self.__dict__.setdefault("times", []).append(time.monotonic())
        return super().decide()


def test_retry_after_is_honoured(tmp_path: Path) -> None:
    # Without Retry-After the next attempt would come after ~0.02-0.03 s (the backoff); the
    # policy caps a server's Retry-After at 2 * max_wait, here 60 s.
    plan = TimedPlan(first_n=["429"], retry_after=1.0)
    with ScriptedOpenAIServer(quickstart_responder) as server, \
            FaultProxy(server.base_url, plan) as proxy:
        summary = run_quickstart(proxy.base_url, tmp_path, concurrency=1, limit=1, max_wait=30)
        statuses = [e.status for e in posts(proxy)]
    times = plan.__dict__["times"]
    assert statuses == [429, 200, 200]
    assert 1.0 <= times[1] - times[0] < 5.0, times
    assert summary["llm"]["retry_causes"] == {"429": 1} and summary["records"] == 1


def test_a_request_that_keeps_failing_fails_only_its_item_with_the_cause(
        undisturbed: list[dict[str, Any]], tmp_path: Path) -> None:
    def responder(request: dict[str, Any]) -> str:
        if "Composting" in str(request.get("messages")):
            raise RuntimeError("upstream model crashed on this prompt")
        return quickstart_responder(request)

    # Two injected faults besides: too few to exhaust any other request's three attempts.
    plan = FaultPlan(first_n=["503", "reset"])
    with ScriptedOpenAIServer(responder) as server, FaultProxy(server.base_url, plan) as proxy:
        summary = run_quickstart(proxy.base_url, tmp_path, max_attempts=3)
        seen = posts(proxy)
        upstream_errors = [e for e in server.requests() if e.status == 500]
    _, rows = load_run(tmp_path)
    assert_accounting_closes(summary, tmp_path)

    [failed] = read_jsonl(tmp_path / "failed.jsonl")
    assert failed["step"] == "instruction" and failed["error_class"] == "TransientLLMError"
    assert "HTTP 500" in failed["message"] and "upstream model crashed" in failed["message"]
    assert "Composting" in failed["record"]["title"]
    # Its three attempts reached the server (or met an injected fault) and were all counted:
    # every failed attempt, injected or the server's own 500, is a retry or the failure.
    llm = summary["llm"]
    assert llm["failed_requests"] == 1 and llm["calls"] == len(seen)
    assert 1 <= len(upstream_errors) <= 3
    assert llm["retries"] + llm["failed_requests"] == plan.injected + len(upstream_errors)
    # Every other document's records are exactly the undisturbed run's.
    expected = [r["_meta"]["id"] for r in undisturbed if "Composting" not in r["title"]]
    assert [r["_meta"]["id"] for r in rows] == expected and len(expected) == DOCS - 1
