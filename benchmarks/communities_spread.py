"""``semantic_communities`` with every vector in the process vs spread (quality/spread.py),
the embedding cache filled first (as on Ray after ``prepare``): peak memory, CPU, and whether
the results are identical. The spread passes run in this process (the local mapper), so the
peak is an upper bound for a Ray driver's, and the CPU is the actors' and the driver's together.

    python benchmarks/communities_spread.py --size 100000
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from flagship_scale import EMBEDDER, cpu_seconds, instructions, reset_peak, vm_kb  # noqa: E402


async def child(size: int, mode: str, run_dir: Path) -> dict[str, object]:
    from synthloom.core.context import RunContext
    from synthloom.core.records import make_record
    from synthloom.quality.topics import SemanticCommunities

    texts = instructions(size, copies=True)
    records = [make_record({"instruction": t, "n": i}, step="x") for i, t in enumerate(texts)]
    step = SemanticCommunities(name="unique", column="instruction", threshold=0.85,
                               embedder=EMBEDDER,
                               spread_above=10**12 if mode == "local" else 2)
    ctx = RunContext(run_dir=run_dir)
    for start in range(0, size, 4096):
        await step.prepare(records[start : start + 4096], ctx)
    reset_peak()
    before, cpu, begun = vm_kb("VmRSS"), cpu_seconds(), time.perf_counter()
    results = await step.process_all(records, ctx)
    return {"mode": mode, "size": size, "wall_s": round(time.perf_counter() - begun, 1),
            "cpu_s": round(cpu_seconds() - cpu, 1),
            "peak_mb": round((vm_kb("VmHWM") - before) / 1024, 1),
            "dropped": sum(1 for r in results if r.dropped),
            "results": hashlib.sha256(repr(results).encode()).hexdigest()[:16]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--child", nargs=2, metavar=("MODE", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(asyncio.run(child(args.size, args.child[0], Path(args.child[1])))))
        return
    with tempfile.TemporaryDirectory() as tmp:
        rows = [json.loads(subprocess.run(
            [sys.executable, __file__, "--size", str(args.size), "--child", mode, tmp],
            check=True, capture_output=True, text=True).stdout.splitlines()[-1])
            for mode in ("local", "spread")]
    for row in rows:
        print(json.dumps(row))
    print("identical results:", rows[0]["results"] == rows[1]["results"])


if __name__ == "__main__":
    main()
