"""The flagship killed (SIGKILL) and resumed at scale: repeated calls and time to resume.

    python benchmarks/resume_scale.py            # 100,000 documents and seeds
    python benchmarks/resume_scale.py --quick    # 10,000
    python benchmarks/resume_scale.py --docs N --kills 3 --seed 0
    python benchmarks/resume_scale.py --docs N --points 0.05,0.5,0.95   # kills at these shares

``synthquestions`` (``embedder=hashing``) runs through ``synthloom.api.run_recipe`` in a child
process on N generated documents and N seed instructions (tests/support/scale_inputs.py) with
the instant scripted backend (tests/support/instant_backend.py: answers made in microseconds
from the request, no model). First one uninterrupted run (the baseline), then the same inputs
into a fresh folder: the child is killed with SIGKILL when its backend has answered a chosen
number of calls (``--kills`` points drawn between 10 % and 90 % of the baseline's calls, seeded,
or ``--points``: shares of the baseline's calls), and started again on the same folder, until a
run finishes.

Every attempt runs one frozen copy of the code (``--code tree``: the working tree as it was when
the benchmark started; ``--code head``: the last commit), made in the work folder: in a working
tree that others edit while it runs, attempts would otherwise run different code, and a resumed
series could not be compared with its baseline.

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
- ``same_records``: the interrupted series' data.jsonl holds the baseline's record ids; when
  not, ``differs`` names each output file whose ids differ (ids only in one run) and each step
  whose counts (in / out / failed / dropped) differ, in recipe order, and ``failed`` counts the
  rows of each run's failed.jsonl (a call that failed in one run and not in the other changes
  what follows);
- ``peak_rss_mb`` per attempt: the run process's peak (VmHWM, read until its end or kill) and
  ``group_rss_mb``, the largest sum of its process group's RSS (pool workers) sampled each second.

Each attempt's progress lines (the CLI's non-terminal display: every ``--progress-every``
seconds, one line with each running stage's count, items/s and ETA) are printed as they come
(its stderr is kept in the work folder as ``attemptN.err``). The last line is one
JSON object.
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

def child(inputs: Path, run_dir: Path, log_path: Path, batch: int, progress_every: float) -> None:
    sys.path.insert(0, str(ROOT))
    import hashlib

    from tests.support.instant_backend import InstantSchemaBackend, request_text

    from synthloom.api import RunOptions, run_recipe
    from synthloom.cli import _Progress
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
    # What `synthloom run` shows without a terminal (a cluster job's log): a line per interval.
    display = _Progress(enabled=False, inputs={n.name: recipe.inputs_of(n) for n in recipe.nodes},
                        log_lines=True, log_every_s=progress_every)
    options = RunOptions(backend=LoggedInstantBackend(), batch_size=batch, concurrency=batch,
                         on_progress=display.update)
    os.write(fd, f"S - {time.time():.4f}\n".encode())
    summary = asyncio.run(run_recipe(recipe, run_dir, options)).to_json()
    os.write(fd, f"E {summary['status']} {time.time():.4f}\n".encode())
    os.close(fd)


# --- driver ------------------------------------------------------------------------------------

def freeze_code(dest: Path, which: str) -> Path:
    """One copy of the code for every attempt: the package, tests/support and this script.
    ``which``: ``tree`` (the working tree now), ``head`` (the last commit) or any git
    revision (a before/after pair on the same machine and load)."""
    parts = ["src/synthloom", "tests/__init__.py", "tests/support", "benchmarks/resume_scale.py"]
    dest.mkdir(parents=True)
    if which != "tree":
        rev = "HEAD" if which == "head" else which
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, *parts],
                                 check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    else:
        skip = shutil.ignore_patterns("__pycache__", "*.pyc")
        for part in parts:
            src, out = ROOT / part, dest / part
            out.parent.mkdir(parents=True, exist_ok=True)
            if src.is_dir():
                shutil.copytree(src, out, ignore=skip)
            else:
                shutil.copy2(src, out)
    return dest


def code_state() -> dict[str, Any]:
    """The commit and the uncommitted files under src/ (what ``--code tree`` froze besides)."""
    def git(*args: str) -> str:
        out = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True)
        return out.stdout.strip()
    return {"head": git("rev-parse", "--short", "HEAD"),
            "uncommitted_src": len(git("status", "--porcelain", "--", "src").splitlines())}


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


def _status_kb(pid: int | str, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def group_rss_kb(sid: int) -> int:
    """RSS of every process in session ``sid`` (the run and its pool workers)."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid:  # field 6 of /proc/PID/stat: the session id
            total += _status_kb(entry.name, "VmRSS")
    return total


def show_progress(err_path: Path, shown: int, name: str) -> int:
    """Prints the run's new progress lines (``[12s] 3/23 steps done; ...``); returns the bytes
    read so far (a line still being written waits for the next call)."""
    try:
        with err_path.open("rb") as err:
            err.seek(shown)
            data = err.read()
    except FileNotFoundError:
        return shown
    complete = data[:data.rfind(b"\n") + 1]
    for line in complete.decode(errors="replace").splitlines():
        if line.startswith("["):
            print(f"  {name} {line}", flush=True)
    return shown + len(complete)


def attempt(code: Path, inputs: Path, run_dir: Path, log_path: Path, args: argparse.Namespace,
            kill_at: int | None) -> dict[str, Any]:
    """One child run; killed with SIGKILL once ``kill_at`` calls are in its log."""
    log_path.unlink(missing_ok=True)
    cmd = [sys.executable, str(code / "benchmarks" / "resume_scale.py"), "--child", str(inputs),
           str(run_dir), str(log_path), "--batch", str(args.batch),
           "--progress-every", str(args.progress_every)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(code / "src"), *filter(None, [os.environ.get("PYTHONPATH")])])}
    began = time.time()
    err_path = log_path.with_suffix(".err")
    # stderr to a file (a pipe read at the end could fill and block the run); the session
    # groups the run's pool workers
    with err_path.open("wb") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err,
                                start_new_session=True, env=env, cwd=code)
    killed_at = None
    hwm = group = shown = 0
    sampled = 0.0
    while proc.poll() is None:
        hwm = max(hwm, _status_kb(proc.pid, "VmHWM"))
        if time.time() - sampled >= 1.0:
            sampled = time.time()
            group = max(group, group_rss_kb(proc.pid))
            shown = show_progress(err_path, shown, log_path.stem)
        if time.time() - began > args.timeout:
            proc.kill()
            proc.wait()
            raise SystemExit(f"a run took over {args.timeout:.0f} s")
        if kill_at is not None and calls_in(log_path) >= kill_at:
            os.kill(proc.pid, signal.SIGKILL)
            killed_at = time.time()
            proc.wait()
            break
        time.sleep(0.05)
    show_progress(err_path, shown, log_path.stem)
    stderr = err_path.read_text(errors="replace")
    rows = read_log(log_path)
    if killed_at is None and not any(kind == "E" for kind, _, _ in rows):
        raise SystemExit(f"the run failed (rc {proc.returncode}): {stderr.strip()[-2000:]}")
    start = next((t for kind, _, t in rows if kind == "S"), began)
    calls = [(key, t) for kind, key, t in rows if kind == "C"]
    return {"calls": calls, "killed_at": killed_at, "seconds": time.time() - began,
            "resume_s": (calls[0][1] - start) if calls else None,
            "peak_rss_mb": round(hwm / 1024), "group_rss_mb": round(group / 1024)}


def ids_of(path: Path) -> set[str]:
    if not path.exists():
        return set()
    with path.open() as lines:
        return {json.loads(line)["_meta"]["id"] for line in lines if line.strip()}


def lines_in(path: Path) -> int:
    if not path.exists():
        return 0
    with path.open("rb") as lines:
        return sum(1 for _ in lines)


def differences(base: Path, other: Path) -> dict[str, Any]:
    """Where two finished runs differ: output files by record id, steps by their counts."""
    files = {}
    for path in sorted(base.glob("*.jsonl")):
        if path.name in ("failed.jsonl", "dropped.jsonl"):
            continue  # rows of records, not records: compared below by their counts
        a, b = ids_of(path), ids_of(other / path.name)
        if a != b:
            files[path.name] = {"only_baseline": len(a - b), "only_interrupted": len(b - a)}
    counts = {}
    summaries = [json.loads((run / "summary.json").read_text()) for run in (base, other)]
    others = {s["name"]: s for s in summaries[1]["steps"]}
    for step in summaries[0]["steps"]:
        mine = [step.get(k) for k in ("in", "out", "failed", "dropped")]
        theirs = [others.get(step["name"], {}).get(k) for k in ("in", "out", "failed", "dropped")]
        if mine != theirs:
            counts[step["name"]] = {"baseline": mine, "interrupted": theirs}
    return {"files": files, "steps": counts}


def kill_points(total: int, args: argparse.Namespace) -> list[int]:
    """Cumulative call counts of the series at which to kill (answered calls, all attempts)."""
    if args.points:
        return sorted(max(1, int(total * float(p))) for p in args.points.split(","))
    rng = random.Random(args.seed)
    return sorted(rng.sample(range(int(total * 0.1), int(total * 0.9)), args.kills))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10,000 documents")
    parser.add_argument("--docs", type=int, default=None, help="documents (and seeds)")
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0, help="draws the kill points")
    parser.add_argument("--points", default=None,
                        help="kill at these shares of the baseline's calls (e.g. 0.05,0.5,0.95)")
    parser.add_argument("--batch", type=int, default=64, help="batch size and concurrency")
    parser.add_argument("--in-flight-s", type=float, default=1.0)
    parser.add_argument("--timeout", type=float, default=7200, help="seconds per attempt")
    parser.add_argument("--progress-every", type=float, default=30.0,
                        help="seconds between a run's progress lines")
    parser.add_argument("--code", default="tree",
                        help="the code every attempt runs: tree (the working tree now), head, "
                             "or a git revision")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--child", nargs=3, metavar=("INPUTS", "RUN", "LOG"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(Path(args.child[0]), Path(args.child[1]), Path(args.child[2]), args.batch,
              args.progress_every)
        return
    n = args.docs or (10_000 if args.quick else 100_000)
    work = Path(tempfile.mkdtemp(prefix="resume-scale-"))
    print(f"work folder: {work}", flush=True)
    state = {**code_state(), "frozen": args.code}
    try:
        code = freeze_code(work / "code", args.code)
        inputs = work / "inputs"
        make_inputs(inputs, n)
        base = attempt(code, inputs, work / "baseline", work / "baseline.log", args, None)
        total = len(base["calls"])
        print(f"baseline: {total} calls in {base['seconds']:.1f} s, peak RSS "
              f"{base['peak_rss_mb']} MB", flush=True)
        points = kill_points(total, args)
        run_dir, done_calls = work / "interrupted", 0
        attempts, answered = [], {}  # key -> (time answered, kill time of its attempt)
        repeated_finished = repeated_in_flight = 0
        oldest = 0.0  # the longest a repeated call had been answered before its kill
        for i in range(len(points) + 1):
            kill_at = points[i] - done_calls if i < len(points) else None
            if kill_at is not None and kill_at <= 0:
                kill_at = 1  # a resume's work was all replayed: kill at its first call
            res = attempt(code, inputs, run_dir, work / f"attempt{i}.log", args, kill_at)
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
                             else round(res["resume_s"], 2),
                             "peak_rss_mb": res["peak_rss_mb"],
                             "group_rss_mb": res["group_rss_mb"]})
            print(f"attempt {i}: {json.dumps(attempts[-1])}", flush=True)
        same = ids_of(run_dir / "data.jsonl") == ids_of(work / "baseline" / "data.jsonl")
        diff = None if same else differences(work / "baseline", run_dir)
        failed = {"baseline": lines_in(work / "baseline" / "failed.jsonl"),
                  "interrupted": lines_in(run_dir / "failed.jsonl")}
        resumes = [a["resume_s"] for a in attempts[1:] if a["resume_s"] is not None]
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({
        "bench": "resume_scale", "recipe": RECIPE, "documents": n, "kills": len(points),
        "code": state,
        "baseline_calls": total, "baseline_seconds": round(base["seconds"], 2),
        "baseline_peak_rss_mb": base["peak_rss_mb"],
        "baseline_group_rss_mb": base["group_rss_mb"],
        "interrupted_calls": done_calls, "extra_calls": done_calls - total,
        "calls_ratio": round(done_calls / max(total, 1), 4),
        "repeated_calls": repeated_finished + repeated_in_flight,
        "repeated_finished": repeated_finished, "repeated_in_flight": repeated_in_flight,
        "repeated_oldest_s": round(oldest, 3),
        "kill_points": points, "resume_s": resumes,
        "resume_growth": round(resumes[-1] / resumes[0], 2) if len(resumes) > 1 and resumes[0]
        else None,
        "same_records": same, "differs": diff, "failed": failed, "attempts": attempts,
        "cpus": os.cpu_count(), "load_average_1m": round(os.getloadavg()[0], 2),
    }))


if __name__ == "__main__":
    main()
