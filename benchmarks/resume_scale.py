"""The flagship killed (SIGKILL) and resumed at scale: repeated calls and time to resume.

    python benchmarks/resume_scale.py            # 100,000 documents and seeds
    python benchmarks/resume_scale.py --quick    # 10,000
    python benchmarks/resume_scale.py --docs N --kills 3 --seed 0

``synthquestions`` (``embedder=hashing``) runs through ``synthloom.api.run_recipe`` in a child
process on N generated documents and N seed instructions (tests/support/scale_inputs.py) with
the instant scripted backend (tests/support/instant_backend.py: answers made in microseconds
from the request, no model). First one uninterrupted run (the baseline), then the same inputs
into a fresh folder: the child is killed with SIGKILL when its backend has answered a chosen
number of calls (``--kills`` points drawn between 10 % and 90 % of the baseline's calls, seeded),
and started again on the same folder, until a run finishes.

The backend appends one line per answered call (a hash of the request and seed, and the time)
to a log with ``O_APPEND`` writes, which survive the kill. Printed:

- ``baseline_calls`` and ``interrupted_calls`` (all attempts together), ``extra_calls`` and its
  ratio to the baseline;
- ``repeated_calls``: calls answered in an earlier attempt and asked again. Those answered less
  than ``--in-flight-s`` (default 1 s) before the kill are ``repeated_in_flight`` (answered, not
  yet committed: the store commits once per event-loop turn, so a kill can lose them, as the
  design allows); the others are ``repeated_finished``, which must be 0;
  ``repeated_oldest_s``: how long before its kill the oldest repeated call was answered;
- ``resume_s`` per resumed attempt: from the child's start (``run_recipe`` called, imports
  done) to its first new backend call -- opening the store, reading the corpus and replaying
  cached items up to the first uncached one; ``resume_growth`` = last / first;
- ``same_records``: the interrupted series' data.jsonl holds the baseline's record ids.

The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RECIPE = "synthquestions"


# --- child: one run, logging every answered call ---------------------------------------------

def child(inputs: Path, run_dir: Path, log_path: Path, batch: int) -> None:
    sys.path.insert(0, str(ROOT))
    import hashlib

    from tests.support.instant_backend import InstantSchemaBackend, request_text

    from synthloom.api import RunOptions, run_recipe
    from synthloom.core.recipe import Recipe

    overrides = json.loads((inputs / "overrides.json").read_text())
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    class LoggedInstantBackend(InstantSchemaBackend):
        """The instant scripted backend, one log line per answered call."""

        async def complete(self, request: Any, *, seed: int | None) -> Any:
            out = await super().complete(request, seed=seed)
            key = hashlib.blake2b(f"{seed}\x1f{request.n}\x1f{request_text(request)}".encode(),
                                  digest_size=10).hexdigest()
            os.write(fd, f"C {key} {time.time():.4f}\n".encode())
            return out

    recipe = Recipe.load(RECIPE, overrides)
    options = RunOptions(backend=LoggedInstantBackend(), batch_size=batch, concurrency=batch)
    os.write(fd, f"S - {time.time():.4f}\n".encode())
    summary = asyncio.run(run_recipe(recipe, run_dir, options)).to_json()
    os.write(fd, f"E {summary['status']} {time.time():.4f}\n".encode())
    os.close(fd)


# --- driver ------------------------------------------------------------------------------------

def make_inputs(folder: Path, n: int) -> None:
    sys.path.insert(0, str(ROOT))
    from tests.support.scale_inputs import scale_case

    case = scale_case(RECIPE, folder, n)
    (folder / "overrides.json").write_text(json.dumps(case.overrides))


def read_log(path: Path) -> list[tuple[str, str, float]]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 3:  # a line cut by the kill has fewer parts
            rows.append((parts[0], parts[1], float(parts[2])))
    return rows


def calls_in(path: Path) -> int:
    """Answered calls logged so far (newlines in C lines; cheap enough at 50 ms polls)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return 0
    return data.count(b"\nC ") + data.startswith(b"C ")


def attempt(inputs: Path, run_dir: Path, log_path: Path, batch: int, kill_at: int | None,
            timeout: float) -> dict[str, Any]:
    """One child run; killed with SIGKILL once ``kill_at`` calls are in its log."""
    log_path.unlink(missing_ok=True)
    cmd = [sys.executable, __file__, "--child", str(inputs), str(run_dir), str(log_path),
           "--batch", str(batch)]
    began = time.time()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    killed_at = None
    while proc.poll() is None:
        if time.time() - began > timeout:
            proc.kill()
            proc.wait()
            raise SystemExit(f"a run took over {timeout:.0f} s")
        if kill_at is not None and calls_in(log_path) >= kill_at:
            os.kill(proc.pid, signal.SIGKILL)
            killed_at = time.time()
            proc.wait()
            break
        time.sleep(0.05)
    stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    rows = read_log(log_path)
    if killed_at is None and not any(kind == "E" for kind, _, _ in rows):
        raise SystemExit(f"the run failed (rc {proc.returncode}): {stderr.strip()[-2000:]}")
    start = next((t for kind, _, t in rows if kind == "S"), began)
    calls = [(key, t) for kind, key, t in rows if kind == "C"]
    return {"calls": calls, "killed_at": killed_at, "seconds": time.time() - began,
            "resume_s": (calls[0][1] - start) if calls else None}


def record_ids(run_dir: Path) -> set[str]:
    path = run_dir / "data.jsonl"
    if not path.exists():
        return set()
    return {json.loads(line)["_meta"]["id"] for line in path.read_text().splitlines() if line}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10,000 documents")
    parser.add_argument("--docs", type=int, default=None, help="documents (and seeds)")
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0, help="draws the kill points")
    parser.add_argument("--batch", type=int, default=64, help="batch size and concurrency")
    parser.add_argument("--in-flight-s", type=float, default=1.0)
    parser.add_argument("--timeout", type=float, default=7200, help="seconds per attempt")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--child", nargs=3, metavar=("INPUTS", "RUN", "LOG"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(Path(args.child[0]), Path(args.child[1]), Path(args.child[2]), args.batch)
        return
    n = args.docs or (10_000 if args.quick else 100_000)
    work = Path(tempfile.mkdtemp(prefix="resume-scale-"))
    try:
        inputs = work / "inputs"
        make_inputs(inputs, n)
        base = attempt(inputs, work / "baseline", work / "baseline.log", args.batch, None,
                       args.timeout)
        total = len(base["calls"])
        print(f"baseline: {total} calls in {base['seconds']:.1f} s", flush=True)
        rng = random.Random(args.seed)
        # cumulative call counts of the series at which to kill (answered calls, all attempts)
        points = sorted(rng.sample(range(int(total * 0.1), int(total * 0.9)), args.kills))
        run_dir, done_calls = work / "interrupted", 0
        attempts, answered = [], {}  # key -> (time answered, kill time of its attempt)
        repeated_finished = repeated_in_flight = 0
        oldest = 0.0  # the longest a repeated call had been answered before its kill
        for i in range(args.kills + 1):
            kill_at = points[i] - done_calls if i < args.kills else None
            if kill_at is not None and kill_at <= 0:
                kill_at = 1  # a resume's work was all replayed: kill at its first call
            res = attempt(inputs, run_dir, work / f"attempt{i}.log", args.batch, kill_at,
                          args.timeout)
            for key, _ in res["calls"]:
                if key in answered:
                    when, killed = answered[key]
                    if killed is not None:
                        oldest = max(oldest, killed - when)
                    if killed is not None and killed - when < args.in_flight_s:
                        repeated_in_flight += 1
                    else:
                        repeated_finished += 1
            for key, when in res["calls"]:
                answered.setdefault(key, (when, res["killed_at"]))
            done_calls += len(res["calls"])
            attempts.append({"calls": len(res["calls"]), "seconds": round(res["seconds"], 2),
                             "killed": res["killed_at"] is not None,
                             "resume_s": None if i == 0 or res["resume_s"] is None
                             else round(res["resume_s"], 2)})
            print(f"attempt {i}: {json.dumps(attempts[-1])}", flush=True)
        same = record_ids(run_dir) == record_ids(work / "baseline")
        resumes = [a["resume_s"] for a in attempts[1:] if a["resume_s"] is not None]
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({
        "bench": "resume_scale", "recipe": RECIPE, "documents": n, "kills": args.kills,
        "baseline_calls": total, "baseline_seconds": round(base["seconds"], 2),
        "interrupted_calls": done_calls, "extra_calls": done_calls - total,
        "calls_ratio": round(done_calls / max(total, 1), 4),
        "repeated_calls": repeated_finished + repeated_in_flight,
        "repeated_finished": repeated_finished, "repeated_in_flight": repeated_in_flight,
        "repeated_oldest_s": round(oldest, 3),
        "kill_points": points, "resume_s": resumes,
        "resume_growth": round(resumes[-1] / resumes[0], 2) if len(resumes) > 1 and resumes[0]
        else None,
        "same_records": same, "attempts": attempts,
        "cpus": os.cpu_count(), "load_average_1m": round(os.getloadavg()[0], 2),
    }))


if __name__ == "__main__":
    main()
