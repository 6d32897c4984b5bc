"""Two named models in one run, each a real llama.cpp server on 127.0.0.1 (different ports),
each behind a pass-through proxy that counts the requests the server received: the calls
summary.json attributes to a model are exactly the POSTs its server saw, and each step's
requests went to its own model's server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import _llama_skip_reason
from tests.support.fault_proxy import FaultProxy
from tests.support.llama_server import LlamaServer

pytestmark = pytest.mark.integration


def _recipe(folder: Path) -> Path:
    docs = folder / "docs"
    docs.mkdir()
    for i, topic in enumerate(["tides", "bees", "lighthouses"]):
        (docs / f"{i}.txt").write_text(f"A short note about {topic}.\n\nIt has facts.")
    (folder / "ask.jinja").write_text("Write one question about this text: {{ text }}")
    (folder / "judge.jinja").write_text("Is this a good question? Answer yes or no: "
                                        "{{ question }}")
    recipe = {
        "name": "two-servers",
        # The judge is declared as the run's model; --model-for makes it the second server.
        "models": {"judge": "default"},
        "sources": [{"name": "docs", "type": "text_files", "path": str(docs)}],
        "steps": [
            {"name": "ask", "type": "generate", "template": "ask.jinja", "output": "question",
             "max_tokens": 24, "temperature": 0.0, "keep_truncated": True},
            # Short caps keep it fast; the cut-off answers are kept (default: a drop).
            {"name": "judge", "type": "generate", "template": "judge.jinja", "model": "judge",
             "output": "verdict", "max_tokens": 8, "temperature": 0.0, "keep_truncated": True},
        ],
    }
    path = folder / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


@pytest.mark.timeout(600)
def test_two_servers_as_two_named_models(tmp_path: Path) -> None:
    reason = _llama_skip_reason()
    if reason is not None:
        pytest.skip(reason)
    recipe = _recipe(tmp_path)
    out = tmp_path / "out"
    with LlamaServer(alias="teacher", n_threads=1) as teacher, \
            LlamaServer(alias="judge", n_threads=1) as judge, \
            FaultProxy(teacher.base_url) as teacher_proxy, \
            FaultProxy(judge.base_url) as judge_proxy:
        judge_spec = json.dumps({"backend": f"openai:{judge_proxy.base_url}",
                                 "model": judge.model, "concurrency": 1})
        done = subprocess.run(
            [sys.executable, "-m", "synthloom", "run", str(recipe), "--out", str(out),
             "--quiet", "--backend", f"openai:{teacher_proxy.base_url}", "--model",
             teacher.model, "--concurrency", "2", "--model-for", f"judge={judge_spec}"],
            capture_output=True, text=True, timeout=500,
            env={**os.environ, "OPENAI_API_KEY": "sk-test-not-a-real-key-1234"})
        assert done.returncode == 0, done.stderr
        teacher_posts = [e for e in teacher_proxy.requests() if e.method == "POST"]
        judge_posts = [e for e in judge_proxy.requests() if e.method == "POST"]
    summary = json.loads((out / "summary.json").read_text())
    models = summary["models"]
    steps = {s["name"]: s for s in summary["steps"]}
    # Each server's request count is exactly what the summary attributes to its model.
    assert models["default"]["calls"] == len(teacher_posts) == steps["ask"]["llm_calls"] == 3
    assert models["judge"]["calls"] == len(judge_posts) == steps["judge"]["llm_calls"] == 3
    assert all(e.completed for e in teacher_posts + judge_posts)
    assert models["default"]["steps"] == ["ask"] and models["judge"]["steps"] == ["judge"]
    # Model ids name the served model (the alias of each server).
    assert models["judge"]["model"] == "openai:judge"
    assert models["default"]["model"] == "openai:teacher"
    # Tokens: the client's count per model is what the steps on it spent.
    assert models["judge"]["completion_tokens"] == steps["judge"]["completion_tokens"] > 0
    assert models["default"]["prompt_tokens"] == steps["ask"]["prompt_tokens"] > 0
    rows = [json.loads(x) for x in (out / "data.jsonl").read_text().splitlines() if x.strip()]
    assert len(rows) == 3 and all(r["verdict"] for r in rows)
    assert all(r["_meta"]["model"] == "openai:judge" for r in rows)  # the judge's records
    report = (out / "report.html").read_text()
    assert "<h3>Per model</h3>" in report
