"""The flagship's non-LLM stages at two sizes: time, peak memory and growth (no model, no LLM).

    python benchmarks/flagship_scale.py            # 10k and 100k
    python benchmarks/flagship_scale.py --quick    # 2k and 20k
    python benchmarks/flagship_scale.py --sizes 5000,50000 --stages select,communities
    python benchmarks/flagship_scale.py --quick --src /tmp/old/src   # another tree (before)

Stages, each run in a fresh subprocess per size (so each peak is its own):

- ``bm25``: ``retrieve_bm25`` over a web-like corpus of N documents (40-400 words of a Zipf
  vocabulary, ~1.3 KB each), answering ``--queries`` seed queries (default 1,000 at every size)
  the way the executor calls it: batches of 32 items, concurrently on one event loop. The first
  batch builds the index. ``loop_stall_s`` is the longest time the event loop did not run a
  10 ms heartbeat: how long every other step of the run (LLM calls) would have been frozen.
- ``topics``: ``cluster_topics`` on N instructions (8-30 words; k = sqrt(N/2) topics);
  ``--topic-sample S`` sets its ``sample_size`` (default 50,000: above it the topics are
  fitted on a sample and every row assigned to its nearest centroid in batches).
- ``select``: ``select_per_topic`` on N records with integer scores 0-7 (as ``judge_rubric``'s
  ``scores.total``), sqrt(N/2) topics of which one holds half the records; target N/10.
- ``communities``: ``semantic_communities`` (threshold 0.85) on N instructions: 10 % near-copies
  of other rows (one word changed) and one cluster of N/20 copies (the issue's 5k-copy cluster
  at 100k).
- ``dedup``: ``dedup_semantic`` (threshold 0.9, 16 neighbours) on the same N instructions as
  ``communities``. With ``--agreement``, after the clock (two all-pairs searches: minutes at
  100k): ``same_as_exact`` (% of rows kept or dropped as with
  ``ann: exact``) and ``pairs_found`` (% of the exact search's neighbour pairs at >= 0.9, of
  the rows with fewer than 16 such neighbours: beyond, ties choose any 16).

The embedding stages use the lexical hashing embedder at 384 dimensions (``hashing:384``, the
width of the default all-MiniLM-L6-v2; no model download). ``embed_s`` is the embedder alone,
timed after the stage in the same process, and ``core_s`` the stage minus it.

The stages' libraries (bm25s, scikit-learn, usearch) are imported before the clock starts.
Per stage and size: ``seconds`` (wall), ``cpu_s`` (user + system CPU of the stage: steadier
than wall time on a shared machine; above wall time where BLAS or usearch use both cores), ``peak_mb`` (peak resident set during the stage: ``VmHWM``
reset after the inputs are generated, minus the resident set before it) and, for the two sizes,
``growth`` = large/small seconds (goal: at most 12 for 10x the input), ``cpu_growth`` and
``mem_growth``. The
last line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

STAGES = ("bm25", "topics", "select", "communities", "dedup")
EMBEDDER = "hashing:384"
SYLLABLES = ("ka", "lo", "mi", "ne", "ru", "ta", "vi", "so", "pe", "da", "gu", "fo", "ri",
             "ma", "te", "no", "la", "zu", "be", "ko", "sa", "di", "wu", "re", "po", "ti", "na",
             "mu", "he", "ga")
PREFIXES = ("how do i", "explain", "write a short guide to", "what is the best way to",
            "compare", "give three examples of", "why does", "help me plan")


# --- inputs ------------------------------------------------------------------------------------

def vocabulary(size: int = 200_000) -> np.ndarray:
    """Pseudo-words: the syllables of each index, base 30 (deterministic, pronounceable)."""
    words = []
    for i in range(size):
        parts, n = [], i + 31
        while n:
            n, d = divmod(n, len(SYLLABLES))
            parts.append(SYLLABLES[d])
        words.append("".join(parts))
    return np.array(words, dtype=object)


def zipf_words(rng: np.random.Generator, vocab: np.ndarray, count: int) -> np.ndarray:
    """Zipf(1.15) ranks over the vocabulary: a few very common words, a long tail."""
    return vocab[(rng.zipf(1.15, size=count) - 1) % len(vocab)]


def web_corpus(n: int, seed: int = 1) -> list[dict[str, Any]]:
    from synthloom.core.records import make_record

    rng = np.random.default_rng(seed)
    vocab = vocabulary()
    lengths = rng.integers(40, 400, size=n)
    words = zipf_words(rng, vocab, int(lengths.sum()))
    docs, at = [], 0
    for i, length in enumerate(lengths.tolist()):
        text = " ".join(words[at : at + length])
        at += length
        docs.append(make_record({"text": text, "title": f"page {i}"}, step="corpus"))
    return docs


def instructions(n: int, seed: int = 2, copies: bool = False) -> list[str]:
    rng = np.random.default_rng(seed)
    vocab = vocabulary()
    lengths = rng.integers(8, 30, size=n)
    words = zipf_words(rng, vocab, int(lengths.sum()))
    texts, at = [], 0
    for length in lengths.tolist():
        prefix = PREFIXES[int(rng.integers(len(PREFIXES)))]
        texts.append(prefix + " " + " ".join(words[at : at + length]))
        at += length
    if copies:
        pyrng = random.Random(seed)
        def near(text: str) -> str:
            tokens = text.split()
            tokens[pyrng.randrange(len(tokens))] = str(vocab[pyrng.randrange(len(vocab))])
            return " ".join(tokens)
        for i in pyrng.sample(range(n), n // 10):  # near-copies of other rows
            texts[i] = near(texts[pyrng.randrange(n)])
        big = texts[0]
        for i in pyrng.sample(range(1, n), n // 20):  # one dense cluster of n/20 copies
            texts[i] = big if pyrng.random() < 0.5 else near(big)
    return texts


# --- one stage in this process -----------------------------------------------------------------

def vm_kb(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


CPU_AT_START = [0.0]


def reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0): a stage's peak is its own; and note
    the CPU time the stage starts at."""
    CPU_AT_START[0] = cpu_seconds()
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


async def heartbeat(stall: list[float], stop: asyncio.Event) -> None:
    last = time.perf_counter()
    while not stop.is_set():
        await asyncio.sleep(0.01)
        now = time.perf_counter()
        stall[0] = max(stall[0], now - last - 0.01)
        last = now


async def run_bm25(size: int, queries: int, run_dir: Path) -> dict[str, Any]:
    from synthloom.core.context import ItemContext, RunContext
    from synthloom.sources.retrieval import RetrieveBm25

    corpus = web_corpus(size)
    seeds = instructions(queries, seed=3)
    step = RetrieveBm25(name="retrieve", corpus="corpus", context=["corpus"],
                        query_columns=["instruction"])
    run = RunContext(run_dir=run_dir, context={"corpus": corpus})
    step.setup(run)
    ctxs = [ItemContext(run=run, item_key=f"k{i}", seed=i) for i in range(queries)]
    asynchronous = inspect.iscoroutinefunction(step.process)  # the old step was sync

    async def one(i: int) -> Any:
        if asynchronous:
            return await step.process({"instruction": seeds[i]}, ctxs[i])
        return step.process({"instruction": seeds[i]}, ctxs[i])  # the old, blocking step

    stall = [0.0]
    stop = asyncio.Event()
    reset_peak()
    before = vm_kb("VmRSS")
    beat = asyncio.create_task(heartbeat(stall, stop))
    await asyncio.sleep(0.02)
    begun = time.perf_counter()
    first = 0.0
    found = 0
    for start in range(0, queries, 32):
        out = await asyncio.gather(*(one(i) for i in range(start, min(start + 32, queries))))
        found += sum(1 for r in out if getattr(r, "columns", None))
        if start == 0:
            first = time.perf_counter() - begun
    seconds = time.perf_counter() - begun
    cpu_end = cpu_seconds()
    stop.set()
    await beat
    index_mb = sum(f.stat().st_size for f in run_dir.rglob("*") if f.is_file()) / 2**20
    return {"seconds": seconds, "build_s": first, "query_ms": (seconds - first) * 1000 /
            max(1, queries - 32), "loop_stall_s": stall[0], "found": found,
            "index_disk_mb": round(index_mb, 1), "rss_before_kb": before, "cpu_end": cpu_end}


async def embed_seconds(texts: list[str]) -> float:
    from synthloom.llm.embeddings import resolve_embedder

    begun = time.perf_counter()
    await resolve_embedder(EMBEDDER).embed(texts)
    return time.perf_counter() - begun


async def run_topics(size: int, run_dir: Path, sample: int | None = None) -> dict[str, Any]:
    from synthloom.core.context import RunContext
    from synthloom.core.records import make_record
    from synthloom.quality.topics import ClusterTopics

    texts = instructions(size)
    records = [make_record({"instruction": t}, step="x") for t in texts]
    step = ClusterTopics(name="topics", column="instruction", embedder=EMBEDDER,
                         **({"sample_size": sample} if sample else {}))
    reset_peak()
    before = vm_kb("VmRSS")
    begun = time.perf_counter()
    results = await step.process_all(records, RunContext(run_dir=run_dir))
    seconds, cpu_end = time.perf_counter() - begun, cpu_seconds()
    peak = vm_kb("VmHWM")
    topics = {r.outputs[0].columns["topic"] for r in results}
    return {"seconds": seconds, "embed_s": await embed_seconds(texts), "topics": len(topics),
            "rss_before_kb": before, "peak_kb": peak, "cpu_end": cpu_end}


async def run_select(size: int, run_dir: Path) -> dict[str, Any]:
    from synthloom.core.context import RunContext
    from synthloom.core.records import make_record
    from synthloom.quality.topics import SelectPerTopic, auto_topics

    rng = np.random.default_rng(4)
    k = auto_topics(size)
    topics = np.where(rng.random(size) < 0.5, 0, rng.integers(1, k, size=size))
    scores = rng.integers(0, 8, size=size)
    records = [make_record({"topic": int(t), "scores": {"total": int(s)}}, step="x")
               for t, s in zip(topics.tolist(), scores.tolist(), strict=True)]
    step = SelectPerTopic(name="selected", score_column="scores.total", target=size // 10)
    reset_peak()
    before = vm_kb("VmRSS")
    begun = time.perf_counter()
    results = await step.process_all(records, RunContext(run_dir=run_dir))
    seconds, cpu_end = time.perf_counter() - begun, cpu_seconds()
    return {"seconds": seconds, "kept": sum(1 for r in results if r.outputs),
            "rss_before_kb": before, "peak_kb": vm_kb("VmHWM"), "cpu_end": cpu_end}


async def run_communities(size: int, run_dir: Path) -> dict[str, Any]:
    from synthloom.core.context import RunContext
    from synthloom.core.records import make_record
    from synthloom.quality.topics import SemanticCommunities

    texts = instructions(size, copies=True)
    records = [make_record({"instruction": t, "n": i}, step="x") for i, t in enumerate(texts)]
    step = SemanticCommunities(name="unique", column="instruction", threshold=0.85,
                               embedder=EMBEDDER)
    reset_peak()
    before = vm_kb("VmRSS")
    begun = time.perf_counter()
    results = await step.process_all(records, RunContext(run_dir=run_dir))
    seconds, cpu_end = time.perf_counter() - begun, cpu_seconds()
    peak = vm_kb("VmHWM")
    return {"seconds": seconds, "embed_s": await embed_seconds(texts),
            "dropped": sum(1 for r in results if r.dropped), "rss_before_kb": before,
            "peak_kb": peak, "cpu_end": cpu_end}


async def run_dedup(size: int, run_dir: Path, agreement: bool = False) -> dict[str, Any]:
    from synthloom.core.context import RunContext
    from synthloom.core.records import make_record
    from synthloom.quality import vectors as vec
    from synthloom.quality.dedup import SemanticDedup

    texts = instructions(size, copies=True)
    records = [make_record({"instruction": t, "n": i}, step="x") for i, t in enumerate(texts)]
    ctx = RunContext(run_dir=run_dir)
    step = SemanticDedup(name="semantic", column="instruction", embedder=EMBEDDER)
    reset_peak()
    before = vm_kb("VmRSS")
    begun = time.perf_counter()
    results = await step.process_all(records, ctx)
    seconds, cpu_end = time.perf_counter() - begun, cpu_seconds()
    peak = vm_kb("VmHWM")
    out = {"seconds": seconds, "embed_s": await embed_seconds(texts),
           "dropped": sum(1 for r in results if r.dropped), "rss_before_kb": before,
           "peak_kb": peak, "cpu_end": cpu_end}
    if not agreement:
        return out
    # against all pairs (not timed): the same decisions, and the neighbour pairs found
    exact = await SemanticDedup(name="semantic", column="instruction", embedder=EMBEDDER,
                                ann="exact").process_all(records, ctx)
    same = sum((a.dropped is None) == (b.dropped is None)
               for a, b in zip(results, exact, strict=True))
    out["same_as_exact"] = round(100 * same / size, 3)
    from synthloom.llm.embeddings import resolve_embedder

    vectors = await resolve_embedder(EMBEDDER).embed(texts)
    search = getattr(vec, "neighbours_above", None)  # a tree before it: its top_k
    found = (search(vectors, 16, 0.9) if search else vec.top_k(vectors, 16, "auto"))
    truth = vec.top_k(vectors, 16, "exact")

    # rows with fewer than 16 neighbours at >= 0.9 (elsewhere ties pick any 16 of them)
    whole = truth[1][:, -1] < 0.9

    def pairs(idx: np.ndarray, sims: np.ndarray) -> set[tuple[int, int]]:
        rows, cols = np.nonzero((sims >= 0.9) & whole[:, None])
        return set(zip(rows.tolist(), idx[rows, cols].tolist(), strict=True))

    expected = pairs(*truth)
    out["pairs_found"] = round(100 * len(pairs(*found) & expected) / max(len(expected), 1), 3)
    return out


def preload() -> None:
    """Import the stages' libraries before timing: a one-off cost, not one that grows."""
    import contextlib
    import importlib

    for name in ("bm25s", "scipy.sparse.csgraph", "sklearn.cluster",
                 "sklearn.feature_extraction.text", "usearch.index"):
        with contextlib.suppress(ImportError):
            importlib.import_module(name)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def child(stage: str, size: int, queries: int, topic_sample: int | None = None,
          agreement: bool = False) -> None:
    preload()
    with tempfile.TemporaryDirectory(prefix="flagship-scale-") as tmp:
        run_dir = Path(tmp)
        if stage == "bm25":
            out = asyncio.run(run_bm25(size, queries, run_dir))
            out["peak_kb"] = vm_kb("VmHWM")
        elif stage == "topics":
            out = asyncio.run(run_topics(size, run_dir, topic_sample))
        elif stage == "select":
            out = asyncio.run(run_select(size, run_dir))
        elif stage == "dedup":
            out = asyncio.run(run_dedup(size, run_dir, agreement))
        else:
            out = asyncio.run(run_communities(size, run_dir))
    out["peak_mb"] = round((out.pop("peak_kb") - out.pop("rss_before_kb")) / 1024, 1)
    out["cpu_s"] = round(out.pop("cpu_end") - CPU_AT_START[0], 2)
    import synthloom

    out["tree"] = str(Path(synthloom.__file__).parent.parent)
    print(json.dumps(out))


# --- driver ------------------------------------------------------------------------------------

def measure(stage: str, size: int, queries: int, src: str | None, timeout: float,
            threads: int = 0, topic_sample: int | None = None, agreement: bool = False,
            ) -> dict[str, Any]:
    env = dict(os.environ)
    if threads:  # OpenMP / BLAS threads: busy-waiting pools inflate time on a shared machine
        for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env[name] = str(threads)
    if src:
        env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    cmd = [sys.executable, __file__, "--child", stage, str(size), "--queries", str(queries),
           *(["--topic-sample", str(topic_sample)] if topic_sample else []),
           *(["--agreement"] if agreement else [])]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"over {timeout:.0f} s"}
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["?"])[-1][:200]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="2k and 20k")
    parser.add_argument("--sizes", default=None, help="two sizes, e.g. 10000,100000")
    parser.add_argument("--stages", default=",".join(STAGES))
    parser.add_argument("--queries", type=int, default=1000, help="bm25 seed queries")
    parser.add_argument("--src", default=None, help="import synthloom from this src folder")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per stage and size")
    parser.add_argument("--threads", type=int, default=0,
                        help="OpenMP/BLAS threads of the stages (0: the libraries' default)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="runs per stage and size; the fastest is kept (shared machines): "
                             "its wall seconds and peak, and the least CPU seconds of any run")
    parser.add_argument("--topic-sample", type=int, default=None,
                        help="cluster_topics' sample_size (default: the step's, 50,000)")
    parser.add_argument("--agreement", action="store_true",
                        help="dedup: compare with all-pairs search after the clock (slow)")
    parser.add_argument("--child", nargs=2, metavar=("STAGE", "SIZE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), args.queries, args.topic_sample,
              args.agreement)
        return
    sizes = [int(s) for s in (args.sizes or ("2000,20000" if args.quick else "10000,100000")
                              ).split(",")]
    figures: dict[str, Any] = {"sizes": sizes, "src": args.src or "installed",
                               "threads": args.threads, "stages": {}}
    for stage in args.stages.split(","):
        runs = {}
        for size in sizes:
            tries = [measure(stage, size, args.queries, args.src, args.timeout, args.threads,
                             args.topic_sample, args.agreement)
                     for _ in range(max(1, args.repeat))]
            runs[size] = min(tries, key=lambda r: r.get("seconds", float("inf")))
            if len(tries) > 1 and all("cpu_s" in t for t in tries):
                # each clock's own minimum: on a shared machine the fastest wall-clock run is
                # not always the one that used the least CPU
                runs[size] = {**runs[size], "cpu_s": min(t["cpu_s"] for t in tries),
                              "cpu_s_runs": [t["cpu_s"] for t in tries]}
            print(f"{stage:12s} {size:>8d}  {json.dumps(runs[size])}", flush=True)
        small, large = runs[sizes[0]], runs[sizes[-1]]
        row: dict[str, Any] = {"runs": runs}
        if "error" not in small and "error" not in large:
            row["growth"] = round(large["seconds"] / small["seconds"], 2)
            row["cpu_growth"] = round(large["cpu_s"] / max(small["cpu_s"], 1e-3), 2)
            row["mem_growth"] = round(max(large["peak_mb"], 1) / max(small["peak_mb"], 1), 2)
            if "embed_s" in large:
                core = [r["seconds"] - r["embed_s"] for r in (small, large)]
                row["core_growth"] = round(core[1] / max(core[0], 1e-3), 2)
        figures["stages"][stage] = row
        print(f"{stage:12s} growth x{row.get('growth')} (time), x{row.get('cpu_growth')} "
              f"(CPU time), x{row.get('mem_growth')} (peak memory) for "
              f"x{sizes[-1] / sizes[0]:g} input", flush=True)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
