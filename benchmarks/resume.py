"""Time to resume a finished run: a 100k-item recipe (generated source -> a cheap map step ->
an LLM ``generate`` step on an instant in-process backend -> JSONL sink), then the same recipe
again into the same folder, where every item is a cache hit. Prints one JSON line.

    python benchmarks/resume.py            # 100,000 items
    python benchmarks/resume.py --quick    # 20,000 items
    python benchmarks/resume.py --items N

Target: the rerun of 100k items in under 10 s. ``ratio`` = rerun seconds / first-run seconds.
``rerun_backend_calls`` must be 0 (the backend counts its own calls) and ``rerun_records``
equal ``first_records``; ``same_output`` says whether data.jsonl came out byte-identical.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from synthloom.api import RunOptions, run_recipe
from synthloom.core.context import ItemContext
from synthloom.core.recipe import Recipe
from synthloom.core.steps import MapStep, SourceStep, StepConfig
from synthloom.llm.backends.base import Backend
from synthloom.llm.types import LLMRequest, RawCompletion, Usage
from synthloom.methods.generate import Generate

TARGET_S = 10.0


class ItemsConfig(StepConfig):
    count: int


class Items(SourceStep):
    type_name = "bench_items"
    Config = ItemsConfig

    def read(self, ctx: Any):
        for i in range(self.config.count):
            yield {"topic": f"topic {i % 997}", "n": i}


class Describe(MapStep):
    """Cheap Python work per item (the kind of step a recipe has between LLM calls)."""

    type_name = "bench_describe"

    def process(self, record: dict[str, Any], ctx: ItemContext) -> dict[str, Any]:
        return {"prompt": f"Describe {record['topic']} in one line (item {record['n']}).",
                "words": len(record["topic"].split())}


class InstantBackend(Backend):
    """Answers at once with text derived from the prompt; counts its calls."""

    kind = "bench-instant"
    default_concurrency = 256

    def __init__(self) -> None:
        self.calls = 0

    @property
    def model_id(self) -> str:
        return "bench-instant:v1"

    async def complete(self, request: LLMRequest, *, seed: int | None) -> RawCompletion:
        self.calls += 1
        prompt = (request.messages or [{}])[-1].get("content", "")
        text = "answer " + hashlib.blake2b(prompt.encode(), digest_size=6).hexdigest()
        return RawCompletion(text=text, finish_reason="stop",
                             usage=Usage(len(prompt.split()), 2), model=self.model_id)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20,000 items")
    parser.add_argument("--items", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args()
    n = args.items or (20_000 if args.quick else 100_000)
    work = Path(tempfile.mkdtemp(prefix="resume-bench-"))
    try:
        template = work / "describe.jinja"
        template.write_text("{{ prompt }}")
        recipe = Recipe(name="resume", sources=[Items(name="items", count=n)],
                        steps=[Describe(name="describe"),
                               Generate(name="answer", template=str(template), max_tokens=8)])
        backend = InstantBackend()
        options = RunOptions(backend=backend, concurrency=256, batch_size=args.batch_size)
        run_dir = work / "run"

        def timed_run() -> tuple[float, float, dict[str, Any]]:
            cpu, began = time.process_time(), time.perf_counter()
            summary = asyncio.run(run_recipe(recipe, run_dir, options)).to_json()
            return time.perf_counter() - began, time.process_time() - cpu, summary

        first_s, first_cpu, first = timed_run()
        first_calls = backend.calls
        first_out = (run_dir / "data.jsonl").read_bytes()
        rerun_s, rerun_cpu, rerun = timed_run()
        same = (run_dir / "data.jsonl").read_bytes() == first_out
        store_mb = sum(p.stat().st_size for p in run_dir.glob("run.db*")) / 2**20
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({
        "bench": "resume", "items": n, "batch_size": args.batch_size,
        "first_seconds": round(first_s, 2), "first_cpu_s": round(first_cpu, 2),
        "first_items_per_s": round(n / first_s, 1), "first_records": first["records"],
        "first_backend_calls": first_calls,
        "rerun_seconds": round(rerun_s, 2), "rerun_cpu_s": round(rerun_cpu, 2),
        "rerun_items_per_s": round(n / rerun_s, 1), "rerun_records": rerun["records"],
        "rerun_backend_calls": backend.calls - first_calls,
        "rerun_cache_hits": rerun["cache_hits"], "same_output": same,
        "projected_rerun_s_for_100k": round(rerun_s * 100_000 / n, 2), "target_s": TARGET_S,
        "ratio": round(rerun_s / first_s, 3), "run_store_mb": round(store_mb, 1),
        "cpus": os.cpu_count(), "load_average_1m": round(os.getloadavg()[0], 2),
    }))


if __name__ == "__main__":
    main()
