"""Page load times of the review web app (``synthloom review RUN``) at 10k and 1M records: the
records table (first page, a deep page, each filter), one record's page and the overview, over
HTTP against the real app served by uvicorn on 127.0.0.1. The issue's bar: it must stay fast
at 1M records (a SQLite index, nothing loads the whole file into memory).

    python benchmarks/review.py                          # 10k and 1M records (~15 min, 2 cores)
    python benchmarks/review.py --sizes 10000,100000     # quicker
    python benchmarks/review.py --repeat 30 --keep --workdir /data/bench

Per size: a synthetic run folder is written to disk in a stream (``data.jsonl`` of N records,
~1 KB each: instruction / response text of a few hundred characters, ``judge_score``,
``topic_label``, ``_meta`` with id / parents / step / source; ``dropped.jsonl`` with N/50 rows,
``failed.jsonl`` with N/200, ``summary.json``). The index (``RUN/review/index.db``) is built in
a fresh interpreter (``RunIndex.refresh``, timed: rows/s, its peak RSS), then a second fresh
interpreter serves the app; each page is fetched once (``first``: the first request after
start) and then ``--repeat`` times (warm: median and p95). The server's peak RSS (``VmHWM``)
is read after all the requests.

``ratio`` is the largest size's median over the smallest's (the baseline, measured in the same
run): 1.0 = flat in N. Prints a plain table, then one JSON line (the last line). Run folders
live under a temp dir (or ``--workdir``) and are deleted unless ``--keep`` (1M records: about
1 GB of JSONL plus about 1 GB of index).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

PER_PAGE = 50  # the app's page size (synthloom.review.app.PER_PAGE)
STEPS = (("answer", 0.7), ("rewrite", 0.25), ("evolve", 0.05))
TOPICS = [f"topic-{i:02d}" for i in range(24)]
# A Zipf-ish vocabulary: a few common words, a long tail (the text search hits ~1-5% of rows
# for a mid-frequency word, as a real search would).
_WORDS = ("tide harbour river bread oven stone glass clock bridge owl lantern garden market "
         "paper ink salt kite map orchard meadow copper engine valley signal winter summer "
         "archive ledger window candle forest island quiet bright slow early late small large "
         "old new warm cold north south east west")
_BASE = _WORDS.split(" ")
VOCAB = _BASE + [a + b for a in _BASE for b in _BASE if a != b]
CUM_WEIGHTS = list(itertools.accumulate(1 / (rank + 1) for rank in range(len(VOCAB))))
QUERY = VOCAB[1000]  # a tail word: in ~1.5% of the records


# --- the run folder --------------------------------------------------------------------------

def _text(rng: random.Random, low: int, high: int) -> str:
    words = rng.choices(VOCAB, cum_weights=CUM_WEIGHTS, k=rng.randint(low, high))
    return " ".join(words).capitalize() + "."


def make_run(run_dir: Path, n: int, seed: int = 0) -> dict[str, Any]:
    """Write the run folder, streaming (one record in memory at a time)."""
    rng = random.Random(seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    steps = [s for s, _ in STEPS]
    step_w = [w for _, w in STEPS]
    per_step = dict.fromkeys(steps, 0)
    with (run_dir / "data.jsonl").open("wb", buffering=1 << 20) as data, \
            (run_dir / "dropped.jsonl").open("wb") as dropped, \
            (run_dir / "failed.jsonl").open("wb") as failed:
        for i in range(n):
            step = rng.choices(steps, step_w)[0]
            per_step[step] += 1
            record = {
                "instruction": _text(rng, 15, 45),
                "response": _text(rng, 30, 80),
                "judge_score": round(rng.uniform(1, 5), 2),
                "judge_reasoning": _text(rng, 5, 15),
                "topic_label": rng.choice(TOPICS),
                "_meta": {"id": f"r{i:08d}", "parents": [f"p{i:08d}"], "step": step,
                          "model": "bench-model", "sample_index": 0,
                          "source": {"id": f"doc-{i // 4}", "chunk_id": f"doc-{i // 4}#{i % 4}",
                                     "char_start": 0, "char_end": 400}},
            }
            data.write(orjson.dumps(record) + b"\n")
            if i % 50 == 0:
                dropped.write(orjson.dumps({"id": f"r{i:08d}-d", "step": "length_filter",
                                            "reason": rng.choice(["too short", "too long",
                                                                  "near duplicate"]),
                                            "record": record}) + b"\n")
            if i % 200 == 0:
                failed.write(orjson.dumps({"id": f"r{i:08d}-f", "step": step,
                                           "error_class": "RateLimitError",
                                           "message": "429 Too Many Requests",
                                           "record": record}) + b"\n")
    summary = {"recipe": "bench_review", "records": n, "dropped": n // 50, "failed": n // 200,
               "steps": [{"name": s, "kind": "map", "in": c, "out": c, "failed": 0,
                          "dropped": 0, "llm_calls": c, "prompt_tokens": c * 180,
                          "completion_tokens": c * 140, "seconds": 1.0 + c / 1000}
                         for s, c in per_step.items()]}
    (run_dir / "summary.json").write_text(json.dumps(summary))
    return per_step


# --- child processes (fresh interpreters: each peak RSS is its own) ---------------------------

def peak_rss_mb(pid: int | str = "self") -> float | None:
    """``VmHWM`` of a process in MiB (Linux), else this process's ``ru_maxrss``."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    if pid == "self":
        return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return None


def child_build(run_dir: str) -> dict[str, Any]:
    from synthloom.review.index import RunIndex

    began = time.perf_counter()
    index = RunIndex(run_dir)
    counts = index.refresh()
    seconds = time.perf_counter() - began
    index.close()
    rows = sum(counts.values())
    return {"rows": rows, "per_file": counts, "seconds": round(seconds, 2),
            "rows_per_s": round(rows / seconds), "peak_rss_mb": peak_rss_mb()}


def child_serve(run_dir: str, port: int) -> None:
    import uvicorn

    from synthloom.review.app import create_app

    uvicorn.run(create_app(run_dir), host="127.0.0.1", port=port, log_level="warning",
                access_log=False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- measuring -------------------------------------------------------------------------------

def pages(n: int) -> list[tuple[str, str]]:
    last = max(1, -(-n // PER_PAGE))
    return [
        ("records p1", "/records/records"),
        ("records last page", f"/records/records?page={last}"),
        ("records mid page", f"/records/records?page={last // 2 or 1}"),
        ("step filter", "/records/records?step=rewrite"),
        ("step filter last page", f"/records/records?step=evolve&page="
                                  f"{max(1, -(-n // 20 // PER_PAGE))}"),
        ("score range", "/records/records?score_min=3.5&score_max=4"),
        ("text search", f"/records/records?q={QUERY}"),
        ("text + score", f"/records/records?q={QUERY}&score_min=3"),
        ("topic filter", "/records/records?topic=topic-07"),
        ("dropped p1", "/records/dropped"),
        ("row page", f"/row/{n // 2 or 1}"),
        ("overview", "/"),
    ]


def measure(run_dir: Path, n: int, repeat: int) -> dict[str, Any]:
    import httpx

    port = _free_port()
    server = subprocess.Popen([sys.executable, __file__, "--child-serve", str(run_dir),
                               "--port", str(port)])
    base = f"http://127.0.0.1:{port}"
    out: dict[str, Any] = {"pages": {}}
    try:
        with httpx.Client(base_url=base, timeout=120) as client:
            began = time.perf_counter()
            while True:  # the app opens the (already built) index at start
                try:
                    client.get("/static/missing")
                    break
                except httpx.TransportError:
                    if server.poll() is not None or time.perf_counter() - began > 600:
                        raise RuntimeError("the review server did not start") from None
                    time.sleep(0.1)
            out["server_start_s"] = round(time.perf_counter() - began, 2)
            out["server_rss_after_start_mb"] = peak_rss_mb(server.pid)
            for name, url in pages(n):
                times = []
                for _ in range(repeat + 1):
                    t0 = time.perf_counter()
                    resp = client.get(url)
                    times.append((time.perf_counter() - t0) * 1000)
                    if resp.status_code != 200:
                        raise RuntimeError(f"GET {url}: {resp.status_code} {resp.text[:200]}")
                warm = sorted(times[1:])
                out["pages"][name] = {
                    "url": url, "first_ms": round(times[0], 1),
                    "median_ms": round(statistics.median(warm), 1),
                    "p95_ms": round(warm[min(len(warm) - 1, round(0.95 * (len(warm) - 1)))], 1),
                    "bytes": len(resp.content)}
            out["server_peak_rss_mb"] = peak_rss_mb(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)
    return out


def run_size(n: int, workdir: Path, repeat: int, keep: bool) -> dict[str, Any]:
    run_dir = workdir / f"review-bench-{n}"
    if run_dir.exists():
        shutil.rmtree(run_dir)
    try:
        began = time.perf_counter()
        make_run(run_dir, n)
        result: dict[str, Any] = {"records": n,
                                  "generate_s": round(time.perf_counter() - began, 1)}
        done = subprocess.run([sys.executable, __file__, "--child-build", str(run_dir)],
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            return {**result, "error": done.stderr.strip()[-2000:]}
        result["index"] = json.loads(done.stdout.strip().splitlines()[-1])
        result["data_mb"] = round(sum(p.stat().st_size for p in run_dir.glob("*.jsonl"))
                                  / 2**20, 1)
        result["index_mb"] = round(sum(p.stat().st_size for p in
                                       (run_dir / "review").glob("index.db*")) / 2**20, 1)
        result.update(measure(run_dir, n, repeat))
        return result
    finally:
        if not keep:
            shutil.rmtree(run_dir, ignore_errors=True)


def _fmt_n(n: int) -> str:
    return f"{n // 1_000_000}M" if n % 1_000_000 == 0 else \
        f"{n // 1000}k" if n % 1000 == 0 else str(n)


def print_table(runs: list[dict[str, Any]]) -> None:
    ok = [r for r in runs if "pages" in r]
    if not ok:
        return
    small, large = ok[0], ok[-1]
    heads = [f"{_fmt_n(r['records'])} {c}" for r in ok for c in ("median", "p95", "first")]
    ratio = f"ratio {_fmt_n(large['records'])}/{_fmt_n(small['records'])}"
    print(f"{'page (ms)':<24}" + "".join(f"{h:>13}" for h in heads) + f"{ratio:>14}")
    for name in small["pages"]:
        cells = []
        for r in ok:
            p = r["pages"].get(name, {})
            cells += [p.get("median_ms"), p.get("p95_ms"), p.get("first_ms")]
        m0, m1 = small["pages"][name]["median_ms"], large["pages"][name]["median_ms"]
        print(f"{name:<24}" + "".join(f"{c:>13}" for c in cells) + f"{m1 / m0:>14.2f}")
    print()
    for r in ok:
        ix = r["index"]
        print(f"{_fmt_n(r['records']):>4}: index build {ix['seconds']} s ({ix['rows']} rows, "
              f"{ix['rows_per_s']} rows/s, peak RSS {ix['peak_rss_mb']} MB); data "
              f"{r['data_mb']} MB, index {r['index_mb']} MB; server start "
              f"{r['server_start_s']} s, RSS after start {r['server_rss_after_start_mb']} MB, "
              f"peak {r['server_peak_rss_mb']} MB")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,1000000", help="comma-separated record counts")
    parser.add_argument("--repeat", type=int, default=15, help="warm requests per page")
    parser.add_argument("--quick", action="store_true",
                        help="1k and 10k records, 5 requests a page (a smoke run)")
    parser.add_argument("--keep", action="store_true", help="keep the run folders")
    parser.add_argument("--workdir", default=None, help="where the run folders go (a temp dir)")
    parser.add_argument("--child-build", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--child-serve", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_build:
        print(json.dumps(child_build(args.child_build)))
        return 0
    if args.child_serve:
        child_serve(args.child_serve, args.port)
        return 0
    if args.quick:
        args.sizes, args.repeat = "1000,10000", 5
    sizes = sorted(int(s) for s in args.sizes.split(","))
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="review-"))
    workdir.mkdir(parents=True, exist_ok=True)
    free_gb = shutil.disk_usage(workdir).free / 2**30
    need_gb = max(sizes) * 2.2e-6 * (len(sizes) if args.keep else 1)
    if free_gb < need_gb:
        print(json.dumps({"error": f"{workdir}: {free_gb:.1f} GB free, ~{need_gb:.1f} GB needed"}))
        return 1
    runs = []
    try:
        for n in sizes:
            runs.append(run_size(n, workdir, args.repeat, args.keep))
            print(f"# {n} records done", file=sys.stderr, flush=True)
    finally:
        if not args.keep and not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    print_table(runs)
    result: dict[str, Any] = {"bench": "review_pages", "sizes": sizes, "repeat": args.repeat,
                              "runs": runs}
    ok = [r for r in runs if "pages" in r]
    if len(ok) > 1:
        small, large = ok[0], ok[-1]
        # ratio per page: median at the largest size over the median at the smallest.
        result["ratio"] = {name: round(large["pages"][name]["median_ms"]
                                       / small["pages"][name]["median_ms"], 2)
                           for name in small["pages"]}
        result["slowest_median_ms"] = max(p["median_ms"] for p in large["pages"].values())
    result["load_average_1m"] = round(os.getloadavg()[0], 2)
    if args.keep:
        result["workdir"] = str(workdir)
    print(json.dumps(result))
    return 0 if len(ok) == len(runs) else 1


if __name__ == "__main__":
    sys.exit(main())
