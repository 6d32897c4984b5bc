"""synthloom beside peer libraries on the same small recipe (N prompts -> one completion each),
against the same local fake endpoint (``fake_openai.py``, 50 ms) at the same concurrency, in
the same run. Prints one JSON line (the last line).

    python benchmarks/peers.py [--quick] [--requests N] [--concurrency C] [--install]

Peers run in their own throwaway virtual environment (default ``/tmp/peers-venv``) so the
project's environment is not touched; each is driven by a small script in a subprocess and
times its own run (``pipeline.run()`` / ``llm(rows)``, imports excluded):

* ``distilabel`` (``pip install distilabel``): ``LoadDataFromDicts >> TextGeneration`` with
  ``OpenAILLM(base_url=...)``; ``input_batch_size`` = concurrency (it gathers one batch at a
  time);
* ``curator`` (``pip install bespokelabs-curator``): a ``curator.LLM`` subclass, ``backend=
  "openai"``, ``max_concurrent_requests`` = concurrency, rate limits out of the way. Its token
  estimate needs tiktoken's ``cl100k_base`` file; the driver points ``TIKTOKEN_CACHE_DIR`` at
  the copy litellm (a curator dependency) ships, as there is no network here.

``--install`` creates the venv and tries ``pip install`` once per peer; a failed install is
remembered (``<venv>/.bench-install-failed-<peer>``) and not tried again. A peer that is not
installed, or whose run fails, is reported under ``skipped`` with the reason; with no peer at
all the line is ``{"bench": "peers", "skipped": {...}}``.

``ratio`` per peer = synthloom req/s / peer req/s (> 1: synthloom is faster).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from numbered_prompts import Prompts
from rawhttp import free_port

from synthloom.api import RunOptions, run_recipe
from synthloom.core.recipe import Recipe
from synthloom.methods.generate import Generate

HERE = Path(__file__).resolve().parent
MAX_TOKENS = 16

PEERS: dict[str, dict[str, str]] = {
    "distilabel": {"package": "distilabel", "module": "distilabel"},
    "curator": {"package": "bespokelabs-curator", "module": "bespokelabs.curator"},
}

COMMON = '''
import importlib.metadata, json, os, sys, tempfile, time
base, n, c, max_tokens = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rows = [{"instruction": f"question number {i}"} for i in range(n)]
'''

DRIVERS = {
    "distilabel": COMMON + '''
from distilabel.models import OpenAILLM
from distilabel.pipeline import Pipeline
from distilabel.steps import LoadDataFromDicts
from distilabel.steps.tasks import TextGeneration

with Pipeline(name="bench-peers", cache_dir=tempfile.mkdtemp(prefix="distilabel-")) as pipeline:
    load = LoadDataFromDicts(data=rows, batch_size=c)
    llm = OpenAILLM(model="fake", base_url=base, api_key="none",
                    generation_kwargs={"max_new_tokens": max_tokens})
    load >> TextGeneration(llm=llm, input_batch_size=c)
began = time.perf_counter()
distiset = pipeline.run(use_cache=False)
seconds = time.perf_counter() - began
out = distiset["default"]["train"]
print(json.dumps({"seconds": seconds, "records": len(out),
                  "ok": sum(1 for r in out if r.get("generation")),
                  "version": importlib.metadata.version("distilabel")}))
''',
    "curator": COMMON + '''
import importlib.util
spec = importlib.util.find_spec("litellm")
if spec and spec.submodule_search_locations:  # tiktoken's files as litellm ships them
    os.environ.setdefault("TIKTOKEN_CACHE_DIR", os.path.join(
        list(spec.submodule_search_locations)[0], "litellm_core_utils", "tokenizers"))
from bespokelabs import curator

class Answer(curator.LLM):
    def prompt(self, row):
        return row["instruction"]

    def parse(self, row, response):
        return {"instruction": row["instruction"], "generation": response}

llm = Answer(model_name="fake", backend="openai", generation_params={"max_tokens": max_tokens},
             backend_params={"base_url": base, "api_key": "none", "max_concurrent_requests": c,
                             "max_requests_per_minute": 10**8, "max_tokens_per_minute": 10**11,
                             "require_all_responses": False})
began = time.perf_counter()
response = llm(rows, working_dir=tempfile.mkdtemp(prefix="curator-"))
seconds = time.perf_counter() - began
out = getattr(response, "dataset", response)
print(json.dumps({"seconds": seconds, "records": len(out),
                  "ok": sum(1 for r in out if r.get("generation")),
                  "version": importlib.metadata.version("bespokelabs-curator")}))
''',
}

PEER_ENV = {  # no telemetry, no hub, no rich progress bars in a captured pipe
    "TELEMETRY_ENABLED": "false", "DISTILABEL_TELEMETRY": "0", "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1", "CURATOR_DISABLE_RICH_DISPLAY": "1", "OPENAI_API_KEY": "none",
}


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def install(venv: Path, peer: str) -> str | None:
    """Try once to pip-install ``peer`` into ``venv``; the reason it failed, or None."""
    marker = venv / f".bench-install-failed-{peer}"
    if marker.exists():
        return f"install failed before (not retried): {marker.read_text()[-300:]}"
    if not venv_python(venv).exists():
        made = subprocess.run([sys.executable, "-m", "venv", str(venv)], capture_output=True,
                              text=True, check=False)
        if made.returncode != 0:
            return f"python -m venv {venv} failed: {made.stderr.strip()[-300:]}"
    done = subprocess.run([str(venv_python(venv)), "-m", "pip", "install", "-q",
                           PEERS[peer]["package"]], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        reason = f"pip install {PEERS[peer]['package']} failed: {done.stderr.strip()[-300:]}"
        marker.write_text(reason)
        return reason
    return None


def run_peer(venv: Path, peer: str, base: str, n: int, c: int, work: Path
             ) -> tuple[dict[str, Any] | None, str | None]:
    python = venv_python(venv)
    if not python.exists():
        return None, f"no venv at {venv} (run with --install, or pip install " \
                     f"{PEERS[peer]['package']} into it)"
    probe = subprocess.run([str(python), "-c", f"import {PEERS[peer]['module']}"],
                           capture_output=True, text=True, check=False,
                           env={**os.environ, **PEER_ENV})
    if probe.returncode != 0:
        return None, f"{PEERS[peer]['package']} not importable in {venv}: " \
                     f"{probe.stderr.strip().splitlines()[-1:]}"
    script = work / f"drive_{peer}.py"
    script.write_text(DRIVERS[peer])
    began = time.perf_counter()
    try:
        done = subprocess.run([str(python), str(script), base, str(n), str(c), str(MAX_TOKENS)],
                              capture_output=True, text=True, check=False, timeout=900,
                              cwd=work, env={**os.environ, **PEER_ENV})
    except subprocess.TimeoutExpired:
        return None, "run timed out after 900 s"
    process_s = time.perf_counter() - began
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = [line for line in done.stderr.splitlines() if line.strip()][-3:]
        return None, f"run failed (exit {done.returncode}): {' | '.join(tail)[-400:]}"
    result = json.loads(lines[-1])
    result["process_seconds"] = round(process_s, 2)
    return result, None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 requests")
    parser.add_argument("--requests", type=int, default=None)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--latency-ms", type=float, default=50)
    parser.add_argument("--venv", default="/tmp/peers-venv",
                        help="throwaway venv holding the peers (never the project's)")
    parser.add_argument("--install", action="store_true",
                        help="create the venv and try pip install once per peer")
    parser.add_argument("--peers", default=",".join(PEERS), help="comma-separated subset")
    args = parser.parse_args()
    n = args.requests or (1000 if args.quick else 10000)
    c = args.concurrency
    venv = Path(args.venv)
    peers = [p.strip() for p in args.peers.split(",") if p.strip() in PEERS]
    skipped: dict[str, str] = {}
    if args.install:
        for peer in peers:
            reason = install(venv, peer)
            if reason:
                skipped[peer] = reason
    port = free_port()
    server = subprocess.Popen([sys.executable, str(HERE / "fake_openai.py"), "--port", str(port),
                               "--latency-ms", str(args.latency_ms)])
    base = f"http://127.0.0.1:{port}/v1"
    work = Path(tempfile.mkdtemp(prefix="peers-"))
    results: dict[str, dict[str, Any]] = {}
    try:
        for _ in range(200):
            try:
                httpx.get(f"{base}/models", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.05)
        template = work / "q.jinja"
        template.write_text("{{ instruction }}")
        recipe = Recipe(name="peers", sources=[Prompts(name="prompts", count=n, column="instruction")],
                        steps=[Generate(name="generation", template=str(template),
                                        output="generation", max_tokens=MAX_TOKENS)])
        options = RunOptions(backend=f"openai:{base}", model="fake", concurrency=c)
        began = time.perf_counter()
        summary = asyncio.run(run_recipe(recipe, work / "synthloom", options)).to_json()
        seconds = time.perf_counter() - began
        results["synthloom"] = {"seconds": round(seconds, 2), "records": summary["records"],
                                "ok": summary["records"], "req_per_s": round(n / seconds, 1)}
        for peer in peers:
            if peer in skipped:
                continue
            result, reason = run_peer(venv, peer, base, n, c, work)
            if reason:
                skipped[peer] = reason
                print(f"peers: skipping {peer}: {reason}", file=sys.stderr)
                continue
            assert result is not None
            result["seconds"] = round(result["seconds"], 2)
            result["req_per_s"] = round(n / result["seconds"], 1)
            results[peer] = result
    finally:
        server.terminate()
        server.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)
    ran = [p for p in peers if p in results]
    line: dict[str, Any] = {"bench": "peers"}
    if ran:
        own = results["synthloom"]["req_per_s"]
        line.update({
            "requests": n, "concurrency": c, "latency_ms": args.latency_ms,
            "ceiling_req_per_s": c / (args.latency_ms / 1000),
            "synthloom_req_per_s": own, "results": results,
            "ratio": {p: round(own / results[p]["req_per_s"], 3) for p in ran},
        })
    elif "synthloom" in results:
        line["synthloom_req_per_s"] = results["synthloom"]["req_per_s"]
    line["skipped"] = skipped
    line["load_average_1m"] = round(os.getloadavg()[0], 2)
    print(json.dumps(line))


if __name__ == "__main__":
    main()
