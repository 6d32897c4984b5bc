"""The engine's own ceiling: N LLM requests through a synthloom recipe (cache on) against a
50 ms fixed-latency fake endpoint with unlimited concurrency, beside a bare asyncio httpx client
at the same concurrency, in the same run. Prints one JSON line.

    python benchmarks/orchestration.py [--quick] [--requests N] [--concurrency C]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from synthloom.api import RunOptions, run_recipe
from synthloom.core.recipe import Recipe
from synthloom.core.steps import SourceStep, StepConfig
from synthloom.methods.generate import Generate

HERE = Path(__file__).resolve().parent


class PromptsConfig(StepConfig):
    count: int


class Prompts(SourceStep):
    type_name = "bench_prompts"
    Config = PromptsConfig

    def read(self, ctx: Any):
        for i in range(self.config.count):
            yield {"q": f"question number {i}"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def bare_client(base: str, n: int, concurrency: int) -> float:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:
        gate = asyncio.Semaphore(concurrency)

        async def one(i: int) -> None:
            async with gate:
                response = await client.post(f"{base}/chat/completions", json={
                    "model": "fake", "messages": [{"role": "user", "content": f"q {i}"}],
                    "max_tokens": 16})
                response.json()

        begun = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        return time.perf_counter() - begun


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--requests", type=int, default=None)
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--latency-ms", type=float, default=50)
    args = parser.parse_args()
    n = args.requests or (3000 if args.quick else 20000)
    port = free_port()
    server = subprocess.Popen([sys.executable, str(HERE / "fake_openai.py"), "--port", str(port),
                               "--latency-ms", str(args.latency_ms)])
    base = f"http://127.0.0.1:{port}/v1"
    try:
        for _ in range(100):
            try:
                httpx.get(f"{base}/models", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.05)
        bare_s = asyncio.run(bare_client(base, n, args.concurrency))
        out = Path(tempfile.mkdtemp(prefix="orchestration-"))
        template = out / "q.jinja"
        template.write_text("{{ q }}")
        recipe = Recipe(name="orchestration", sources=[Prompts(name="prompts", count=n)],
                        steps=[Generate(name="answer", template=str(template), max_tokens=16)])
        options = RunOptions(backend=f"openai:{base}", model="fake",
                             concurrency=args.concurrency, batch_size=256)
        begun = time.perf_counter()
        summary = asyncio.run(run_recipe(recipe, out / "run", options)).to_json()
        engine_s = time.perf_counter() - begun
        begun = time.perf_counter()
        cached = asyncio.run(run_recipe(recipe, out / "run", options)).to_json()
        cached_s = time.perf_counter() - begun
        shutil.rmtree(out, ignore_errors=True)
    finally:
        server.terminate()
    ceiling = args.concurrency / (args.latency_ms / 1000)
    result = {
        "bench": "orchestration", "requests": n, "concurrency": args.concurrency,
        "latency_ms": args.latency_ms, "records": summary["records"],
        "llm_calls": summary["llm_calls"], "req_per_s": round(n / engine_s, 1),
        "bare_httpx_req_per_s": round(n / bare_s, 1),
        "ratio_vs_bare": round(bare_s / engine_s, 3),
        "ratio_vs_ceiling": round(n / engine_s / ceiling, 3),
        "rerun_cached_items_per_s": round(n / cached_s, 1),
        "rerun_llm_calls": cached["llm_calls"],
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
