"""The engine's own ceiling: N LLM requests through a synthloom recipe (cache on) against a
fixed-latency fake endpoint (``fake_openai.py``, 50 ms), beside bare asyncio clients at the
same concurrency, in the same run. Prints one JSON line (the last line).

    python benchmarks/orchestration.py [--quick] [--requests N] [--concurrency C[,C...]]
                                       [--rounds R] [--batch-size B] [--httpx] [--trace]
                                       [--latency-ms MS] [--server-processes K]

The ratios, one line (engine / bare aiohttp at c=64 and c=256, and the load average):

    python benchmarks/orchestration.py 2>/dev/null | tail -1 | python -c "import json,sys; \
        d = json.load(sys.stdin); print(d['ratio_vs_bare'], d['load_average_1m'])"

Each concurrency (default: 64 and 256, in the same run) is measured in ``--rounds`` alternating
rounds (bare aiohttp, engine, bare raw, engine on raw streams, in turn), so the engine and its
baseline see the same load on a shared machine; figures are medians over the rounds, and
``ratio_vs_bare`` is the median of the per-round ratios. The engine runs at its default batch
size (``RunOptions.batch_size``) unless ``--batch-size`` says otherwise. Every client first runs
300 requests untimed (imports and first-use costs stay out of round 0). ``load_average_1m``
is read before and after: a ratio is what counts when other work shares the cores.
``--trace`` adds one traced run of bare aiohttp and of the engine per concurrency (``trace``:
where a request waits, from ``enginetrace.py``; not in the figures).

Why several baselines: at high concurrency **httpx itself is the limit**. httpcore 1.0.x's
connection pool rescans every pooled connection (and ``poll()``s each idle socket) on every
enqueue and release, so its CPU per request grows with the number of connections (measured on
2 loaded cores: ~1.1 ms/request at 16 connections, ~4-6 ms at 32-256; aiohttp ~0.2 ms, raw
asyncio streams ~0.03 ms). The fake server costs ~0.1 ms/request. So:

* ``bare_raw_req_per_s``: raw asyncio streams (``rawhttp.RawJSONClient``): the true ceiling of
  a Python client here; ``bare_aiohttp_req_per_s``: aiohttp (the issue's yardstick: a bare
  client as a user would write it); ``bare_httpx_req_per_s``: httpx;
* ``req_per_s``: the engine through its real ``openai:`` backend on its default transport
  (``transport`` in the output: h11 unless ``SYNTHLOOM_HTTP_TRANSPORT`` says otherwise, e.g.
  ``SYNTHLOOM_HTTP_TRANSPORT=aiohttp`` for the transport before h11);
  ``ratio_vs_bare`` = engine / bare aiohttp: the engine against a bare HTTP client alone;
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
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from enginetrace import Trace, traced
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


async def bare_aiohttp(base: str, n: int, concurrency: int, trace: Trace | None = None) -> None:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def one(i: int) -> None:
            rec = trace.begin() if trace is not None else None
            async with session.post(f"{base}/chat/completions", json=payload(i)) as response:
                await response.json()
            if rec is not None:
                rec["answer"] = rec["end"] = time.perf_counter()

        await asyncio.gather(*(one(i) for i in range(n)))


def timed(fn: Callable[[], Awaitable[Any]]) -> tuple[float, float, Any]:
    """(wall seconds, CPU seconds of this process, result) of ``asyncio.run(fn())``."""
    cpu, began = time.process_time(), time.perf_counter()
    result = asyncio.run(fn())
    return time.perf_counter() - began, time.process_time() - cpu, result


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def measure(base: str, n: int, nh: int, c: int, rounds: int, batch_size: int | None,
            with_httpx: bool, out: Path, template: Path, trace: bool = False
            ) -> dict[str, Any]:
    """One concurrency: alternating rounds of every client, medians."""
    extra = {} if batch_size is None else {"batch_size": batch_size}

    def recipe(count: int) -> Recipe:
        return Recipe(name="orchestration", sources=[Prompts(name="prompts", count=count)],
                      steps=[Generate(name="answer", template=str(template), max_tokens=16)])

    def engine(count: int, backend: Any, folder: str) -> Callable[[], Awaitable[Any]]:
        options = RunOptions(backend=backend, model="fake" if isinstance(backend, str) else None,
                             concurrency=c, **extra)
        return lambda: run_recipe(recipe(count), out / folder, options)

    runs: dict[str, list[tuple[float, float]]] = {}
    sizes = {"bare_httpx": nh, "engine_httpx": nh}
    summaries: dict[str, Any] = {}
    # Untimed warm-up of every client: first-use costs (imports, the step registry, template
    # compilation) otherwise land in round 0's figures (~0.1-0.3 ms/request over 3,000).
    warm = min(n, WARM_UP)
    asyncio.run(bare_aiohttp(base, warm, c))
    asyncio.run(bare_raw(base, warm, c))
    asyncio.run(engine(warm, f"openai:{base}", f"c{c}-warm")())
    asyncio.run(engine(warm, RawStreamBackend(base, "fake", max_connections=c), f"c{c}-warm-raw")())
    for r in range(rounds):
        order: list[tuple[str, Callable[[], Awaitable[Any]]]] = [
            ("bare_aiohttp", lambda: bare_aiohttp(base, n, c)),
            ("engine", engine(n, f"openai:{base}", f"c{c}-aiohttp-{r}")),
            ("bare_raw", lambda: bare_raw(base, n, c)),
            ("engine_raw", engine(n, RawStreamBackend(base, "fake", max_connections=c),
                                  f"c{c}-raw-{r}")),
        ]
        if with_httpx and r == 0:
            order += [("bare_httpx", lambda: bare_httpx(base, nh, c)),
                      ("engine_httpx", engine(nh, OpenAIBackend(base, "fake", transport="httpx"),
                                              f"c{c}-httpx"))]
        if r % 2:  # alternate who goes first: a drifting load favours neither
            order[0], order[1] = order[1], order[0]
            order[2], order[3] = order[3], order[2]
        for key, fn in order:
            wall, cpu, result = timed(fn)
            runs.setdefault(key, []).append((wall, cpu))
            if key.startswith("engine"):
                summaries[key] = result.to_json()
    # The finished raw run again: every item replays from the run store, no LLM call.
    wall, cpu, cached = timed(engine(n, RawStreamBackend(base, "fake", max_connections=c),
                                     f"c{c}-raw-0"))
    runs["rerun"] = [(wall, cpu)]

    def rates(key: str) -> list[float]:
        return [sizes.get(key, n) / wall for wall, _ in runs[key]]

    def rate(key: str) -> float:
        return round(_median(rates(key)), 1)

    def cpu_ms(key: str) -> float:
        return round(_median([1000 * cpu / sizes.get(key, n) for _, cpu in runs[key]]), 3)

    def paired(a: str, b: str) -> float:
        return round(_median([x / y for x, y in zip(rates(a), rates(b), strict=True)]), 3)

    ceiling = c / (LATENCY_S[0])
    block: dict[str, Any] = {
        "concurrency": c, "transport": OpenAIBackend(base, "fake").transport, "rounds": rounds,
        "records": summaries["engine"]["records"],
        "llm_calls": summaries["engine"]["llm_calls"], "req_per_s": rate("engine"),
        "bare_aiohttp_req_per_s": rate("bare_aiohttp"),
        "ratio_vs_bare": paired("engine", "bare_aiohttp"),
        "ratio_of_medians": round(rate("engine") / rate("bare_aiohttp"), 3),
        "ratio_vs_ceiling": round(rate("engine") / ceiling, 3),
        "ceiling_req_per_s": ceiling,
        "bare_raw_req_per_s": rate("bare_raw"),
        "engine_raw_req_per_s": rate("engine_raw"),
        "engine_raw_records": summaries["engine_raw"]["records"],
        "engine_raw_ratio_vs_bare_raw": paired("engine_raw", "bare_raw"),
        "bare_raw_ratio_vs_ceiling": round(rate("bare_raw") / ceiling, 3),
        "rerun_cached_items_per_s": rate("rerun"),
        "rerun_llm_calls": cached.to_json()["llm_calls"],
        "round_req_per_s": {k: [round(x) for x in rates(k)] for k in runs},
        "cpu_ms_per_req": {k: cpu_ms(k) for k in runs},
        "engine_cpu_ms_per_req_over_bare": round(cpu_ms("engine") - cpu_ms("bare_aiohttp"), 3),
        "engine_overhead_cpu_ms_per_req": round(cpu_ms("engine_raw") - cpu_ms("bare_raw"), 3),
    }
    if trace:  # one more run of each, traced (not in the figures above: the trace costs CPU)
        block["trace"] = {}
        for key, fn in (("bare_aiohttp", lambda t: bare_aiohttp(base, n, c, t)),
                        ("engine", lambda t: engine(n, f"openai:{base}", f"c{c}-trace")())):
            t = Trace()
            timed(lambda fn=fn, t=t: traced(lambda: fn(t), t))
            block["trace"][key] = t.report(c)
    if with_httpx:
        block.update(bare_httpx_req_per_s=rate("bare_httpx"),
                     engine_httpx_req_per_s=rate("engine_httpx"),
                     engine_httpx_ratio_vs_bare_httpx=round(
                         rate("engine_httpx") / rate("bare_httpx"), 3))
    return block


LATENCY_S = [0.05]
#: Requests of each client's untimed warm-up run.
WARM_UP = 300


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="2,000 requests per run, 3 rounds (a few minutes on 2 loaded cores)")
    parser.add_argument("--requests", type=int, default=None)
    parser.add_argument("--httpx", action="store_true",
                        help="also the httpx transport and a bare httpx client (one round; slow)")
    parser.add_argument("--httpx-requests", type=int, default=None,
                        help="requests for the two httpx runs (default: min(requests, 1000))")
    parser.add_argument("--concurrency", default="64,256",
                        help="one or more, comma-separated (default: 64,256)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=None,
                        help="the engine's batch size (default: RunOptions' own default)")
    parser.add_argument("--trace", action="store_true",
                        help="also one traced run of bare aiohttp and of the engine per "
                             "concurrency: where a request waits (benchmarks/enginetrace.py)")
    parser.add_argument("--latency-ms", type=float, default=50)
    parser.add_argument("--server-processes", type=int, default=1,
                        help="fake server processes on one port (SO_REUSEPORT)")
    args = parser.parse_args()
    n = args.requests or (2000 if args.quick else 10000)
    nh = args.httpx_requests or min(n, 1000)
    concurrencies = [int(x) for x in str(args.concurrency).split(",") if x.strip()]
    LATENCY_S[0] = args.latency_ms / 1000
    port = free_port()
    load_before = os.getloadavg()[0]
    server = subprocess.Popen([sys.executable, str(HERE / "fake_openai.py"), "--port", str(port),
                               "--latency-ms", str(args.latency_ms),
                               "--processes", str(args.server_processes)])
    base = f"http://127.0.0.1:{port}/v1"
    blocks = []
    try:
        for _ in range(200):
            try:
                httpx.get(f"{base}/models", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.05)
        out = Path(tempfile.mkdtemp(prefix="orchestration-"))
        template = out / "q.jinja"
        template.write_text("{{ q }}")
        for c in concurrencies:
            blocks.append(measure(base, n, nh, c, args.rounds, args.batch_size, args.httpx,
                                  out, template, args.trace))
            print(json.dumps(blocks[-1]), file=sys.stderr)
        shutil.rmtree(out, ignore_errors=True)
    finally:
        server.terminate()
        server.wait(timeout=10)
    children = os.times()
    server_cpu = children.children_user + children.children_system
    result: dict[str, Any] = {
        "bench": "orchestration", "requests": n, "latency_ms": args.latency_ms,
        "transport": OpenAIBackend(base, "fake").transport,
        "batch_size": args.batch_size or RunOptions.batch_size, "rounds": args.rounds,
        "ratio_vs_bare": {str(b["concurrency"]): b["ratio_vs_bare"] for b in blocks},
        "by_concurrency": {str(b["concurrency"]): b for b in blocks},
        "server_cpu_s": round(server_cpu, 2), "server_processes": args.server_processes,
        "cpus": os.cpu_count(), "load_average_1m": [round(load_before, 2),
                                                    round(os.getloadavg()[0], 2)],
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
