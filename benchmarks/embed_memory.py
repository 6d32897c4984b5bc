"""Peak memory of embedding seed-like texts through the run's embedding cache
(``CachedEmbedder`` around the ``hashing`` embedder, 2,048 dims: the flagship's ``seeds_unique``
step), cold (empty cache: every text a miss) and warm (every text a hit: what the step's
barrier sees after ``prepare`` filled the cache batch by batch). Prints one JSON line per size.

    python benchmarks/embed_memory.py                       # 20k and 100k texts
    python benchmarks/embed_memory.py --sizes 100000 --step # + the whole step (communities)
    python benchmarks/embed_memory.py --src /tmp/old/src    # another checkout's code (before)

Each phase runs in a fresh subprocess (its own ``VmHWM``): ``peak_mb`` is the whole process's
peak, ``added_mb`` the peak minus the resident set before the call (the texts are made before
it), ``anon_peak_mb`` the highest anonymous resident set (sampled). ``matrix_mb`` is one
n x dims float32 copy: ``added_mb / matrix_mb`` counts the copies the path holds at its
peak. ``--step`` runs ``semantic_communities.process_all`` (threshold 0.85, the benchmark
corpus of benchmarks/flagship_scale.py with its near-copies) on the warm cache.
The 1M figure is the highest phase's whole peak scaled linearly (imports included: an upper
bound), as docs/performance.md extrapolates the run.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DIMS = 2048


def vm_kb(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def anon_peak(stop: threading.Event, peak: list[int]) -> None:
    """The highest ``RssAnon`` seen (sampled every 20 ms): memory only swap could free; a
    file-backed matrix counts in ``VmHWM`` but not here."""
    while not stop.wait(0.02):
        peak[0] = max(peak[0], vm_kb("RssAnon"))


def child(phase: str, size: int, run_dir: Path) -> dict[str, Any]:
    sys.path.insert(0, str(HERE))
    from flagship_scale import instructions

    from synthloom.llm.embeddings import EmbedderConfig, resolve_embedder

    texts = instructions(size, copies=True)
    config = EmbedderConfig(spec=f"hashing:{DIMS}")
    before = vm_kb("VmRSS")
    begun = time.perf_counter()
    stop, anon = threading.Event(), [vm_kb("RssAnon")]
    sampler = threading.Thread(target=anon_peak, args=(stop, anon), daemon=True)
    sampler.start()
    if phase == "step":
        from synthloom.core.context import RunContext
        from synthloom.core.records import make_record
        from synthloom.quality.topics import SemanticCommunities

        records = [make_record({"instruction": t, "n": i}, step="x")
                   for i, t in enumerate(texts)]
        before = vm_kb("VmRSS")
        begun = time.perf_counter()
        step = SemanticCommunities(name="unique", column="instruction", threshold=0.85,
                                   embedder=config)
        results = asyncio.run(step.process_all(records, RunContext(run_dir=run_dir)))
        dropped = [(i, r.dropped) for i, r in enumerate(results) if r.dropped]
        digest = hashlib.sha256(json.dumps(dropped).encode()).hexdigest()[:16]
        extra = {"dropped": len(dropped), "dropped_digest": digest}  # same kept records?
    else:
        async def embed() -> Any:
            model = resolve_embedder(config, run_dir)
            try:
                return await model.embed(texts)
            finally:
                await model.aclose()

        vectors = asyncio.run(embed())
        extra = {"shape": list(vectors.shape), "checksum": float(vectors.sum(dtype="f8"))}
    seconds = time.perf_counter() - begun
    stop.set()
    sampler.join()
    db = sum(f.stat().st_size for f in run_dir.glob("embeddings.db*"))
    peak = vm_kb("VmHWM")
    return {"phase": phase, "seconds": round(seconds, 2), "rss_before_mb": before // 1024,
            "peak_mb": peak // 1024, "added_mb": (peak - before) // 1024,
            "anon_peak_mb": anon[0] // 1024,
            "cache_mb": round(db / 2**20, 1), **extra}


def measure(phase: str, size: int, run_dir: Path, src: str | None) -> dict[str, Any]:
    env = dict(os.environ)
    if src:  # the other checkout's package first on the path
        env["PYTHONPATH"] = os.pathsep.join([src, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    out = subprocess.run([sys.executable, __file__, "--child", phase, "--sizes", str(size),
                          "--run-dir", str(run_dir)], env=env, check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="20000,100000")
    parser.add_argument("--step", action="store_true", help="also the whole step, warm")
    parser.add_argument("--src", help="a checkout's src/ to run instead of the installed one")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--run-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.child:
        print(json.dumps(child(args.child, sizes[0], Path(args.run_dir))))
        return
    for size in sizes:
        run_dir = Path(tempfile.mkdtemp(prefix="embed_memory_"))
        try:
            phases = ["cold", "warm", *(["step"] if args.step else [])]
            rows = {p: measure(p, size, run_dir, args.src) for p in phases}
        finally:
            shutil.rmtree(run_dir, ignore_errors=True)
        matrix_mb = size * DIMS * 4 / 2**20
        last = max(rows.values(), key=lambda r: r["peak_mb"])
        print(json.dumps({
            "texts": size, "src": args.src or "installed", "matrix_mb": round(matrix_mb),
            **{p: r for p, r in rows.items()},
            "copies_at_peak": {p: round(r["added_mb"] / matrix_mb, 2) for p, r in rows.items()},
            "extrapolated_1m_mb": round(last["peak_mb"] * 1_000_000 / size),
        }))


if __name__ == "__main__":
    main()
