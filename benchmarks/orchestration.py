"""The engine's own ceiling: N LLM requests through a synthloom recipe (cache on) against a
fixed-latency fake endpoint (``fake_openai.py``, 50 ms), beside bare asyncio clients at the
same concurrency, in the same run. Prints one JSON line (the last line).

    python benchmarks/orchestration.py [--quick] [--requests N] [--concurrency C]
                                       [--latency-ms MS] [--server-processes K]

Why several baselines: at high concurrency **httpx itself is the limit**. httpcore 1.0.x's
connection pool rescans every pooled connection (and ``poll()``s each idle socket) on every
enqueue and release, so its CPU per request grows with the number of connections (measured on
2 loaded cores: ~1.1 ms/request at 16 connections, ~4-6 ms at 32-256; aiohttp ~0.2 ms, raw
asyncio streams ~0.03 ms). The fake server costs ~0.1 ms/request. So:

* ``bare_raw_req_per_s``: raw asyncio streams (``rawhttp.RawJSONClient``): the true ceiling of
  a Python client here; ``bare_aiohttp_req_per_s``: aiohttp, the ``openai`` backend's default
  transport; ``bare_httpx_req_per_s``: httpx, its other transport;
* ``req_per_s``: the engine through its real ``openai:`` backend (aiohttp transport);
  ``ratio_vs_bare`` = engine / bare aiohttp: the engine against its own HTTP client alone;
  ``engine_httpx_req_per_s`` and ``engine_httpx_ratio_vs_bare_httpx``: the same on httpx;
* ``engine_raw_req_per_s``: the engine through a benchmark-only backend on raw streams
  (``rawhttp.RawStreamBackend``); ``engine_raw_ratio_vs_bare_raw``: the engine's own cost with
  the HTTP client taken out of the way;
* ``*_cpu_ms_per_req``: CPU time of this process per request. Unlike req/s this hardly moves
  with other load on the machine, so compare these when the machine is shared;
  ``engine_overhead_cpu_ms_per_req`` = engine (raw backend) minus bare raw client.
* ``rerun_cached_items_per_s``: the same recipe again (every item from the run store).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from numbered_prompts import Prompts
from rawhttp import RawJSONClient, RawStreamBackend, free_port

from synthloom.api import RunOptions, run_recipe
from synthloom.core.recipe import Recipe
from synthloom.llm.backends.openai_compat import OpenAIBackend
from synthloom.methods.generate import Generate

HERE = Path(__file__).resolve().parent


def payload(i: int) -> dict[str, Any]:
    return {"model": "fake", "messages": [{"role": "user", "content": f"q {i}"}],
            "max_tokens": 16}


async def bare_httpx(base: str, n: int, concurrency: int) -> None:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:
        gate = asyncio.Semaphore(concurrency)

        async def one(i: int) -> None:
            async with gate:
                response = await client.post(f"{base}/chat/completions", json=payload(i))
                response.json()

        await asyncio.gather(*(one(i) for i in range(n)))


async def bare_raw(base: str, n: int, concurrency: int) -> None:
    client = RawJSONClient(base, max_connections=concurrency)

    async def one(i: int) -> None:
        status, _ = await client.post("/chat/completions", payload(i))
        assert status == 200, status

    await asyncio.gather(*(one(i) for i in range(n)))
    await client.aclose()


async def bare_aiohttp(base: str, n: int, concurrency: int) -> None:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def one(i: int) -> None:
            async with session.post(f"{base}/chat/completions", json=payload(i)) as response:
                await response.json()

        await asyncio.gather(*(one(i) for i in range(n)))


def timed(fn: Callable[[], Awaitable[Any]]) -> tuple[float, float, Any]:
    """(wall seconds, CPU seconds of this process, result) of ``asyncio.run(fn())``."""
    cpu, began = time.process_time(), time.perf_counter()
    result = asyncio.run(fn())
    return time.perf_counter() - began, time.process_time() - cpu, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="2,000 requests; 1,000 through httpx (under ~30 s on 2 quiet cores)")
    parser.add_argument("--requests", type=int, default=None)
    parser.add_argument("--httpx-requests", type=int, default=None,
                        help="requests for the two httpx runs (default: --requests; slow)")
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--latency-ms", type=float, default=50)
    parser.add_argument("--server-processes", type=int, default=1,
                        help="fake server processes on one port (SO_REUSEPORT)")
    args = parser.parse_args()
    n = args.requests or (2000 if args.quick else 20000)
    # httpx costs milliseconds of CPU per request at high concurrency: fewer for its two runs.
    nh = args.httpx_requests or (min(n, 1000) if args.quick else n)
    c = args.concurrency
    port = free_port()
    server = subprocess.Popen([sys.executable, str(HERE / "fake_openai.py"), "--port", str(port),
                               "--latency-ms", str(args.latency_ms),
                               "--processes", str(args.server_processes)])
    base = f"http://127.0.0.1:{port}/v1"
    figures: dict[str, tuple[float, float]] = {}
    sizes = {"bare_httpx": nh, "engine_httpx": nh}
    try:
        for _ in range(200):
            try:
                httpx.get(f"{base}/models", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.05)
        # Bare clients first, then the engine (each on a fresh event loop and connections).
        figures["bare_raw"] = timed(lambda: bare_raw(base, n, c))[:2]
        figures["bare_aiohttp"] = timed(lambda: bare_aiohttp(base, n, c))[:2]
        figures["bare_httpx"] = timed(lambda: bare_httpx(base, nh, c))[:2]

        out = Path(tempfile.mkdtemp(prefix="orchestration-"))
        template = out / "q.jinja"
        template.write_text("{{ q }}")

        def recipe(count: int) -> Recipe:
            return Recipe(name="orchestration", sources=[Prompts(name="prompts", count=count)],
                          steps=[Generate(name="answer", template=str(template), max_tokens=16)])

        options = RunOptions(backend=f"openai:{base}", model="fake", concurrency=c,
                             batch_size=256)
        wall, cpu, summary = timed(lambda: run_recipe(recipe(n), out / "run", options))
        figures["engine"] = (wall, cpu)
        summary = summary.to_json()
        httpx_options = RunOptions(backend=OpenAIBackend(base, "fake", transport="httpx"),
                                   concurrency=c, batch_size=256)
        figures["engine_httpx"] = timed(
            lambda: run_recipe(recipe(nh), out / "httpx", httpx_options))[:2]
        raw_options = RunOptions(backend=RawStreamBackend(base, "fake", max_connections=c),
                                 concurrency=c, batch_size=256)
        wall, cpu, raw_summary = timed(lambda: run_recipe(recipe(n), out / "raw", raw_options))
        figures["engine_raw"] = (wall, cpu)
        raw_summary = raw_summary.to_json()
        # The finished raw run again: every item replays from the run store, no LLM call.
        wall, cpu, cached = timed(lambda: run_recipe(recipe(n), out / "raw", raw_options))
        figures["rerun"] = (wall, cpu)
        cached = cached.to_json()
        shutil.rmtree(out, ignore_errors=True)
    finally:
        server.terminate()
        server.wait(timeout=10)
    children = os.times()
    server_cpu = children.children_user + children.children_system

    def rate(key: str) -> float:
        return round(sizes.get(key, n) / figures[key][0], 1)

    def cpu_ms(key: str) -> float:
        return round(1000 * figures[key][1] / sizes.get(key, n), 3)

    ceiling = c / (args.latency_ms / 1000)
    result: dict[str, Any] = {
        "bench": "orchestration", "requests": n, "httpx_requests": nh, "concurrency": c,
        "latency_ms": args.latency_ms, "records": summary["records"],
        "llm_calls": summary["llm_calls"], "req_per_s": rate("engine"),
        "bare_httpx_req_per_s": rate("bare_httpx"),
        "bare_aiohttp_req_per_s": rate("bare_aiohttp"),
        "ratio_vs_bare": round(rate("engine") / rate("bare_aiohttp"), 3),
        "ratio_vs_ceiling": round(rate("engine") / ceiling, 3),
        "rerun_cached_items_per_s": rate("rerun"),
        "rerun_llm_calls": cached["llm_calls"],
        # Added by the harness fix (issue 9): the ceiling without httpx, and CPU per request.
        "ceiling_req_per_s": ceiling,
        "bare_raw_req_per_s": rate("bare_raw"),
        "engine_httpx_req_per_s": rate("engine_httpx"),
        "engine_httpx_ratio_vs_bare_httpx": round(rate("engine_httpx") / rate("bare_httpx"), 3),
        "engine_raw_req_per_s": rate("engine_raw"),
        "engine_raw_records": raw_summary["records"],
        "engine_raw_ratio_vs_bare_raw": round(rate("engine_raw") / rate("bare_raw"), 3),
        "bare_raw_ratio_vs_ceiling": round(rate("bare_raw") / ceiling, 3),
        "cpu_ms_per_req": {k: cpu_ms(k) for k in figures},
        "engine_overhead_cpu_ms_per_req": round(cpu_ms("engine_raw") - cpu_ms("bare_raw"), 3),
        "httpx_cpu_ms_per_req_over_raw": round(cpu_ms("bare_httpx") - cpu_ms("bare_raw"), 3),
        "server_cpu_ms_per_req": round(
            1000 * server_cpu / sum(sizes.get(k, n) for k in figures if k != "rerun"), 3),
        "server_processes": args.server_processes,
        "cpus": os.cpu_count(), "load_average_1m": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
