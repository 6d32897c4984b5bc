"""The Ray driver's memory on the flagship: peak RSS at 500 and 2,000 documents, and the
growth per document extrapolated to 1M.

Each size runs in a fresh process (``ru_maxrss`` is a high-water mark) that calls
``run_recipe(..., executor="ray", ray_actors=2)`` on the corpus and seeds that
tests/integration/test_ray_executor.py's ``write_corpus`` writes (60-word documents, 24
seeds), scripted answers (ScriptedTestBackend, a test double), ``embedder: hashing``.

    python benchmarks/ray_driver_memory.py                 # 500 and 2,000 documents
    python benchmarks/ray_driver_memory.py --sizes 200 800 --baseline-mb 372 449
    python benchmarks/ray_driver_memory.py --topic-sample 200   # cluster_topics' sample_size

Prints per size: seconds, driver RSS after the imports, driver peak RSS; then the slope per
document, the 1M extrapolation, and (``--baseline-mb``) the ratio to a baseline's peaks.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: This checkout's code first (a copy of an older commit measures that commit: the baseline).
PATH = os.pathsep.join([str(ROOT / "src"), str(ROOT), os.environ.get("PYTHONPATH", "")]
                       ).strip(os.pathsep)
WORDS = ("bread", "starter", "flour", "water", "salt", "oven", "crumb", "crust", "proof",
         "dough", "yeast", "rye")


def write_corpus(folder: Path, n: int) -> dict[str, str]:
    """The Ray flagship test's corpus (tests/integration/test_ray_executor.py)."""
    docs = folder / "docs"
    docs.mkdir()
    for i in range(n):
        body = " ".join(WORDS[(i * 7 + j * 3) % len(WORDS)] for j in range(60))
        (docs / f"{i:05d}.txt").write_text(f"Document {i} on {WORDS[i % len(WORDS)]}\n\n{body}")
    seeds = folder / "seeds.jsonl"
    seeds.write_text("".join(json.dumps({"instruction": f"How do I fix my {w} {i} when baking "
                                                        "bread at home this weekend?"}) + "\n"
                             for i, w in enumerate(WORDS * 2)))
    return {"corpus": str(docs), "seeds": str(seeds), "target": "40", "embedder": "hashing"}


def child(n: int, topic_sample: int | None = None) -> None:
    """One run in this process; prints a JSON line with its figures."""
    import asyncio

    import ray
    from tests.support.scripted_backend import ScriptedTestBackend
    from tests.unit.test_synthquestions_steps import scripted

    from synthloom.api import RunOptions, run_recipe
    from synthloom.core.recipe import Recipe

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        recipe = Recipe.load("synthquestions", write_corpus(folder, n))
        if topic_sample:  # fit the topics on a sample, assign in actors (as above 50k rows)
            topics = next(s for s in recipe.steps if s.name == "topics")
            topics.config = topics.config.model_copy(update={"sample_size": topic_sample})
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                 logging_level="ERROR", runtime_env={"env_vars": {"PYTHONPATH": PATH}})
        after_imports = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        begun = time.perf_counter()
        summary = asyncio.run(run_recipe(recipe, folder / "ray", RunOptions(
            backend=ScriptedTestBackend(scripted), executor="ray", ray_actors=2)))
        seconds = time.perf_counter() - begun
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        ray.shutdown()
    print(json.dumps({"n": n, "status": summary.status, "seconds": round(seconds, 1),
                      "after_imports_mb": round(after_imports), "peak_mb": round(peak)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs=2, default=[500, 2000])
    parser.add_argument("--baseline-mb", type=float, nargs=2, default=None,
                        help="a baseline's peak RSS (MB) at the two sizes, for the ratio")
    parser.add_argument("--topic-sample", type=int, default=None,
                        help="cluster_topics' sample_size (default: the recipe's, 50,000)")
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(args.child, args.topic_sample)
        return
    env = {**os.environ, "PYTHONPATH": PATH}
    rows = []
    for n in args.sizes:
        extra = ["--topic-sample", str(args.topic_sample)] if args.topic_sample else []
        out = subprocess.run([sys.executable, __file__, "--child", str(n), *extra], env=env,
                             cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout
        row = json.loads(out.strip().splitlines()[-1])
        rows.append(row)
        print(f"{n:>6} documents: {row['seconds']:>6.1f} s  status {row['status']}  "
              f"driver RSS after imports {row['after_imports_mb']} MB  "
              f"peak {row['peak_mb']} MB", flush=True)
    (a, b) = rows
    slope_kb = (b["peak_mb"] - a["peak_mb"]) * 1024 / (b["n"] - a["n"])
    intercept = a["peak_mb"] - slope_kb * a["n"] / 1024
    at_1m_gb = (intercept + slope_kb * 1_000_000 / 1024) / 1024
    print(f"slope: {slope_kb:.1f} KB per document; intercept {intercept:.0f} MB; "
          f"extrapolated driver peak at 1M documents: {at_1m_gb:.1f} GB")
    if args.baseline_mb:
        for row, base in zip(rows, args.baseline_mb, strict=True):
            print(f"peak vs baseline at {row['n']}: {row['peak_mb']} / {base:g} MB = "
                  f"{row['peak_mb'] / base:.2f}x")


if __name__ == "__main__":
    main()
