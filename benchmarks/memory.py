"""Peak memory of a long streaming run: N generated documents through ``chunk`` ->
``filter_length`` -> a JSONL sink with the local executor (no LLM). Prints one JSON line.

    python benchmarks/memory.py            # 10k, 100k and 1M documents
    python benchmarks/memory.py --quick    # 10k and 100k only (about 30 s on 2 quiet cores)
    python benchmarks/memory.py --sizes 10000,300000
    python benchmarks/memory.py --sizes 20000,100000 --trace   # + top tracemalloc growers
    python benchmarks/memory.py --quick --barrier   # + a global step over every chunk

``--trace`` runs each size under tracemalloc (about 2x slower, and the traced run's peak is
higher: the snapshots are memory too) and prints, per size, the lines whose live Python
allocations grew most between 20% and 95% of the documents (bytes per document), the traced
heap and SQLite's own allocator (``sqlite3_memory_used``) at both points, and RSS minus the
traced heap (native: SQLite, the allocator's free lists; under --trace also tracemalloc's own
tables and the first snapshot; numpy buffers are traced, so they count as heap).

Each size runs in a fresh subprocess, so each peak is its own: the peak resident set
(``VmHWM`` from /proc/self/status, else ``ru_maxrss``) of the whole run, beside the resident
set after imports and before the run (``rss_before_mb``). Target: under 1 GiB and flat in N
(``growth_mb_per_100k_docs`` between the smallest and the largest size should be ~0).

The documents are made in the source step itself (seeded, 40-160 words of a small vocabulary
in sentences), ~600 bytes each; a chunk of 128 estimated tokens splits the longer ones in two;
the filter drops chunks under 20 words (with a reason, in dropped.jsonl). The run folder (about
2 KB of disk per document: JSONL, run store) is deleted after each size.

``--barrier`` adds ``dedup_exact`` on the chunks' text before the sink: a global step, so the
whole stream waits at a barrier (the local executor spools its input to disk: the peak should
stay flat in N; a barrier that held its input as a list grew with it).
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import ctypes.util
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

GIB = 1024**3
VOCAB = ("tide harbour river bread oven stone glass clock bridge owl lantern garden market "
         "paper ink salt kite map orchard meadow copper engine valley signal winter summer "
         "archive ledger window candle forest island engine quiet bright slow early late "
         "small large old new warm cold north south east west")
WORDS = VOCAB.split(" ")


def vm_kb(field: str) -> int | None:
    """A ``Vm*`` field of /proc/self/status in KiB (Linux), else None."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def peak_rss_mb() -> float:
    kb = vm_kb("VmHWM")
    if kb is None:  # ru_maxrss is KiB on Linux (bytes on macOS; this is a Linux benchmark)
        kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(kb / 1024, 1)


def sqlite_memory_mb() -> float | None:
    """Bytes held by SQLite's allocator (all connections), from the shared libsqlite3."""
    try:
        name = ctypes.util.find_library("sqlite3")
        lib = ctypes.CDLL(name or "libsqlite3.so.0")
        lib.sqlite3_memory_used.restype = ctypes.c_int64
        return round(lib.sqlite3_memory_used() / 2**20, 2)
    except (OSError, AttributeError):  # statically linked into _sqlite3, or no such library
        return None


class Tracer:
    """Two tracemalloc snapshots during the run (at 20% and 95% of the documents), compared."""

    def __init__(self, count: int, top: int = 12) -> None:
        self.count = count
        self.top = top
        self.marks = [max(1, count // 5), max(1, count * 19 // 20)]
        self.points: list[dict[str, Any]] = []
        self.snaps: list[tracemalloc.Snapshot] = []
        tracemalloc.start()

    def on_progress(self, stats: list[Any]) -> None:
        docs = stats[0].in_  # the source step
        if len(self.snaps) < len(self.marks) and docs >= self.marks[len(self.snaps)]:
            traced = tracemalloc.get_traced_memory()[0]
            rss = (vm_kb("VmRSS") or 0) * 1024
            self.points.append({"docs": docs, "traced_mb": round(traced / 2**20, 2),
                                "rss_mb": round(rss / 2**20, 1),
                                "native_mb": round((rss - traced) / 2**20, 1),
                                "sqlite_mb": sqlite_memory_mb()})
            self.snaps.append(tracemalloc.take_snapshot().filter_traces(
                [tracemalloc.Filter(False, tracemalloc.__file__)]))

    def report(self) -> dict[str, Any]:
        tracemalloc.stop()
        if len(self.snaps) < 2:
            return {"points": self.points, "growers": []}
        docs = max(1, self.points[1]["docs"] - self.points[0]["docs"])
        diff = self.snaps[1].compare_to(self.snaps[0], "lineno")
        growers = [{"where": f"{d.traceback[0].filename}:{d.traceback[0].lineno}",
                    "kib": round(d.size_diff / 1024, 1),
                    "bytes_per_doc": round(d.size_diff / docs, 2), "blocks": d.count_diff}
                   for d in diff[: self.top]]
        return {"points": self.points, "growers": growers}


def child(count: int, batch_size: int, trace: bool = False, barrier: bool = False,
          ) -> dict[str, Any]:
    from synthloom.api import RunOptions, run_recipe
    from synthloom.core.recipe import Recipe
    from synthloom.core.registry import sink_type
    from synthloom.core.steps import SourceStep, StepConfig
    from synthloom.quality.dedup import ExactDedup
    from synthloom.quality.filters import LengthFilter
    from synthloom.sources.chunk_step import ChunkDocuments

    class DocsConfig(StepConfig):
        count: int

    class GeneratedDocs(SourceStep):
        type_name = "bench_generated_docs"
        Config = DocsConfig

        def read(self, ctx: Any):
            rng = random.Random(7)
            for i in range(self.config.count):
                words = [rng.choice(WORDS) for _ in range(rng.randint(40, 160))]
                for cut in range(9, len(words) - 1, rng.randint(8, 14)):
                    words[cut] += "."
                text = " ".join(words).capitalize() + "."
                yield {"doc_id": f"doc-{i}", "title": f"Document {i}", "text": text}

    recipe = Recipe(
        name="memory",
        sources=[GeneratedDocs(name="docs", count=count)],
        steps=[ChunkDocuments(name="chunks", max_tokens=128, overlap_tokens=16,
                              tokenizer="estimate"),
               LengthFilter(name="long_enough", column="text", min_words=20),
               *([ExactDedup(name="unique", column="text")] if barrier else [])],
        sinks=[sink_type("jsonl")(path="data.jsonl")],
    )
    before = round((vm_kb("VmRSS") or 0) / 1024, 1)
    tracer = Tracer(count) if trace else None
    out = Path(tempfile.mkdtemp(prefix="memory-bench-"))
    try:
        began = time.perf_counter()
        options = RunOptions(batch_size=batch_size,
                             on_progress=tracer.on_progress if tracer else None)
        summary = asyncio.run(run_recipe(recipe, out, options))
        seconds = time.perf_counter() - began
        data = summary.to_json()
        disk = sum(p.stat().st_size for p in out.iterdir() if p.is_file())
    finally:
        shutil.rmtree(out, ignore_errors=True)
    steps = {s["name"]: s for s in data["steps"]}
    traced = {"trace": tracer.report()} if tracer else {}
    return {"docs": count, "records": data["records"], "chunks": steps["chunks"]["out"],
            "dropped": data["dropped"], "failed": data["failed"],
            "seconds": round(seconds, 1), "docs_per_s": round(count / seconds, 1),
            "rss_before_mb": before, "peak_rss_mb": peak_rss_mb(),
            "run_folder_mb": round(disk / 2**20, 1), **traced}


def print_trace(run: dict[str, Any]) -> None:
    """The tracemalloc growers of one size, as text (the JSON result stays the last line)."""
    trace = run.get("trace") or {}
    print(f"--- {run['docs']} docs: tracemalloc growers between the two points")
    for point in trace.get("points", []):
        print(f"  at {point['docs']:>8} docs: traced {point['traced_mb']} MB, rss "
              f"{point['rss_mb']} MB, native (rss - traced) {point['native_mb']} MB, "
              f"sqlite {point['sqlite_mb']} MB")
    for g in trace.get("growers", []):
        print(f"  {g['kib']:>9.1f} KiB {g['bytes_per_doc']:>8.2f} B/doc {g['blocks']:>+7} blocks"
              f"  {g['where']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10k and 100k documents only")
    parser.add_argument("--sizes", default=None, help="comma-separated document counts")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--trace", action="store_true",
                        help="print the top tracemalloc growers per size (about 2x slower)")
    parser.add_argument("--barrier", action="store_true",
                        help="a global step (dedup_exact) over every chunk before the sink")
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(child(args.child, args.batch_size, args.trace, args.barrier)))
        return
    default = "10000,100000" if args.quick else "10000,100000,1000000"
    sizes = [int(s) for s in (args.sizes or default).split(",")]
    runs = []
    for size in sizes:
        # A fresh interpreter per size: VmHWM is a per-process high-water mark.
        done = subprocess.run([sys.executable, __file__, "--child", str(size),
                               "--batch-size", str(args.batch_size),
                               *(["--trace"] if args.trace else []),
                               *(["--barrier"] if args.barrier else [])],
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            runs.append({"docs": size, "error": done.stderr.strip()[-2000:]})
            continue
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
        if args.trace:
            print_trace(runs[-1])
    ok = [r for r in runs if "peak_rss_mb" in r]
    result: dict[str, Any] = {"bench": "memory", "sizes": sizes, "batch_size": args.batch_size,
                              "barrier": args.barrier, "runs": runs}
    if ok:
        peak = max(r["peak_rss_mb"] for r in ok)
        result["max_peak_rss_mb"] = peak
        result["under_1_gib"] = peak * 2**20 < GIB
        if len(ok) > 1:
            small, large = ok[0], ok[-1]
            result["growth_mb_per_100k_docs"] = round(
                (large["peak_rss_mb"] - small["peak_rss_mb"])
                / ((large["docs"] - small["docs"]) / 100_000), 2)
            # ratio: peak at the largest size over the peak at the smallest (1.0 = flat).
            result["ratio"] = round(large["peak_rss_mb"] / small["peak_rss_mb"], 3)
    result["load_average_1m"] = round(os.getloadavg()[0], 2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
