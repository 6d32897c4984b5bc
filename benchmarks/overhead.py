"""The engine's overhead on a real model server: the same N chat requests through a synthloom
recipe (a ``generate`` step over a generated source, ``openai:`` backend) and through a bare
asyncio httpx client at the same concurrency, against one local ``llama_cpp.server`` serving the
embedded SmolLM2-135M GGUF. Prints one JSON line (the last line).

    python benchmarks/overhead.py [--quick] [--requests N] [--max-tokens T]
                                  [--concurrency C] [--order bare-first|engine-first|abba]

Both send the same prompts, ``max_tokens`` and temperature 0 (greedy: the text does not depend
on the seed, so both paths generate the same tokens; ``same_text_fraction`` checks it). The
server generates one request at a time, so it is the bottleneck and output tokens/s is the
figure: ``ratio`` = engine tokens/s / bare tokens/s (target >= 0.97). The server drifts with
machine load, so ``--order abba`` (the default without ``--quick``) runs bare, engine, engine,
bare and sums each side; ``per_pass`` keeps every pass. Before the first pass a few untimed
warm-up requests (other prompts) page the model in: without them the first pass, whichever
side it is, came out 1.5-3x slower.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests/support/llama_server.py starts the server as tests do

from tests.support.llama_server import LlamaServer  # noqa: E402

TOPICS = ["tides", "bread", "bicycles", "volcanoes", "libraries", "owls", "glass", "rivers",
          "chess", "coffee", "bridges", "bees", "clocks", "maps", "salt", "kites"]
TEMPERATURE = 0.0
TOP_P = 1.0


def prompt(i: int) -> str:
    return f"Write two sentences about {TOPICS[i % len(TOPICS)]} for reader number {i}."


class TopicsConfig(StepConfig):
    count: int


class Topics(SourceStep):
    type_name = "bench_topics"
    Config = TopicsConfig

    def read(self, ctx: Any):
        for i in range(self.config.count):
            yield {"q": prompt(i)}


async def bare(base: str, model: str, n: int, max_tokens: int, concurrency: int
               ) -> tuple[float, int, dict[str, str]]:
    """(seconds, completion tokens, text by prompt): what the engine's backend would send."""
    gate = asyncio.Semaphore(concurrency)
    texts: dict[str, str] = {}
    tokens = 0
    async with httpx.AsyncClient(timeout=600) as client:
        async def one(i: int) -> None:
            nonlocal tokens
            body = {"model": model, "temperature": TEMPERATURE, "top_p": TOP_P,
                    "max_tokens": max_tokens, "seed": i,
                    "messages": [{"role": "user", "content": prompt(i)}]}
            async with gate:
                response = await client.post(f"{base}/chat/completions", json=body)
            response.raise_for_status()
            data = response.json()
            tokens += int(data["usage"]["completion_tokens"])
            texts[prompt(i)] = (data["choices"][0]["message"]["content"] or "").strip()

        await client.get(f"{base}/models")  # as the engine's backend.check() does
        began = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        return time.perf_counter() - began, tokens, texts


def engine(base: str, model: str, n: int, max_tokens: int, concurrency: int, work: Path
           ) -> tuple[float, int, dict[str, str], dict[str, Any]]:
    run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=work))  # fresh: no cache hits
    template = work / "q.jinja"
    template.write_text("{{ q }}")
    recipe = Recipe(name="overhead", sources=[Topics(name="topics", count=n)],
                    steps=[Generate(name="answer", template=str(template), max_tokens=max_tokens,
                                    temperature=TEMPERATURE, top_p=TOP_P)])
    options = RunOptions(backend=f"openai:{base}", model=model, concurrency=concurrency)
    began = time.perf_counter()
    summary = asyncio.run(run_recipe(recipe, run_dir, options)).to_json()
    seconds = time.perf_counter() - began
    texts = {}
    with (run_dir / "data.jsonl").open() as lines:
        for line in lines:
            record = json.loads(line)
            texts[record["q"]] = record["text"]
    return seconds, summary["completion_tokens"], texts, summary


async def warm_up(base: str, model: str, count: int, max_tokens: int) -> None:
    async with httpx.AsyncClient(timeout=600) as client:
        for i in range(count):
            body = {"model": model, "temperature": TEMPERATURE, "max_tokens": max_tokens,
                    "messages": [{"role": "user", "content": f"Warm-up {i}: name a colour."}]}
            (await client.post(f"{base}/chat/completions", json=body)).raise_for_status()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="8 requests x 32 tokens, AB order")
    parser.add_argument("--requests", type=int, default=None)
    parser.add_argument("--max-tokens", type=int, default=None)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--order", choices=["bare-first", "engine-first", "abba"], default=None)
    parser.add_argument("--warmup", type=int, default=4, help="untimed requests first")
    args = parser.parse_args()
    n = args.requests or (8 if args.quick else 48)
    max_tokens = args.max_tokens or (32 if args.quick else 64)
    order = args.order or ("bare-first" if args.quick else "abba")
    passes = {"bare-first": ["bare", "engine"], "engine-first": ["engine", "bare"],
              "abba": ["bare", "engine", "engine", "bare"]}[order]
    work = Path(tempfile.mkdtemp(prefix="overhead-"))
    per_pass: list[dict[str, Any]] = []
    texts: dict[str, dict[str, str]] = {}
    errors = 0
    try:
        with LlamaServer(n_ctx=2048, n_threads=os.cpu_count() or 2) as server:
            asyncio.run(warm_up(server.base_url, server.model, args.warmup, max_tokens))
            for side in passes:
                if side == "bare":
                    seconds, tokens, got = asyncio.run(
                        bare(server.base_url, server.model, n, max_tokens, args.concurrency))
                else:
                    seconds, tokens, got, summary = engine(
                        server.base_url, server.model, n, max_tokens, args.concurrency, work)
                    errors += summary["failed"]
                texts.setdefault(side, got)
                per_pass.append({"side": side, "seconds": round(seconds, 2), "tokens": tokens,
                                 "tokens_per_s": round(tokens / seconds, 2),
                                 "load_average_1m": round(os.getloadavg()[0], 2)})
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def total(side: str) -> tuple[float, int]:
        rows = [p for p in per_pass if p["side"] == side]
        return sum(p["seconds"] for p in rows), sum(p["tokens"] for p in rows)

    bare_s, bare_tokens = total("bare")
    engine_s, engine_tokens = total("engine")
    bare_rate, engine_rate = bare_tokens / bare_s, engine_tokens / engine_s
    same = sum(texts["bare"].get(q) == t for q, t in texts["engine"].items())
    print(json.dumps({
        "bench": "overhead", "requests": n, "max_tokens": max_tokens,
        "concurrency": args.concurrency, "order": order, "warmup_requests": args.warmup,
        "temperature": TEMPERATURE,
        "engine_tokens_per_s": round(engine_rate, 2), "bare_tokens_per_s": round(bare_rate, 2),
        "ratio": round(engine_rate / bare_rate, 3), "target": 0.97,
        "engine_req_per_s": round(n * passes.count("engine") / engine_s, 3),
        "bare_req_per_s": round(n * passes.count("bare") / bare_s, 3),
        "engine_output_tokens": engine_tokens, "bare_output_tokens": bare_tokens,
        "same_text_fraction": round(same / max(1, len(texts["engine"])), 3),
        "engine_failed": errors, "per_pass": per_pass,
        "cpus": os.cpu_count(), "load_average_1m": round(os.getloadavg()[0], 2),
    }))


if __name__ == "__main__":
    main()
