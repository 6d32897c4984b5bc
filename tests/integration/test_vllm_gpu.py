"""The vLLM backend on a real GPU: quickstart through `vllm:MODEL` (locally and on Ray), guided
JSON honoured. Skips without vLLM or a CUDA device, or without a local model
(SYNTHLOOM_VLLM_MODEL: a path or a name already in the HF cache; there is no model hub here)."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

vllm = pytest.importorskip("vllm", reason="vllm not installed (extra: vllm; needs a GPU)")
torch = pytest.importorskip("torch", reason="torch not installed")
if not torch.cuda.is_available():
    pytest.skip("no CUDA device: the vLLM backend needs a GPU", allow_module_level=True)
MODEL = os.environ.get("SYNTHLOOM_VLLM_MODEL")
if not MODEL:
    pytest.skip("set SYNTHLOOM_VLLM_MODEL to a local model for the vLLM test",
                allow_module_level=True)

from synthloom.api import RunOptions, run_recipe  # noqa: E402
from synthloom.core.recipe import Recipe  # noqa: E402

pytestmark = pytest.mark.integration


def test_quickstart_on_vllm_structured_and_cached(tmp_path: Path) -> None:
    options = RunOptions(backend=f"vllm:{MODEL}?gpu_memory_utilization=0.5", limit=4)
    summary = asyncio.run(run_recipe(Recipe.load("quickstart"), tmp_path, options)).to_json()
    assert summary["status"] == "ok" and summary["llm_calls"] > 0
    instruction = next(s for s in summary["steps"] if s["name"] == "instruction")
    assert instruction["failed"] == 0  # guided JSON: every instruction parsed
    records = [json.loads(x) for x in (tmp_path / "data.jsonl").read_text().splitlines()]
    assert all(r["_meta"]["model"].startswith("vllm:") for r in records)
    again = asyncio.run(run_recipe(Recipe.load("quickstart"), tmp_path, options)).to_json()
    assert again["llm_calls"] == 0
