"""Default exports of the math recipes train on what the recipe generated, with the model's
reasoning kept (issue 23 item 9): STaR's rationale (not the input's GSM8K answer), PoT's
program, the arithmetic scratchpad. Runs on the ScriptedTestBackend (a test double) whose
answers think first, as a reasoning model's do; arithmetic needs no model."""

from __future__ import annotations

import asyncio
from pathlib import Path

from synthloom.api import RunOptions, run_recipe
from synthloom.core.recipe import Recipe
from synthloom.export.formats import ExportOptions, export
from tests.support.runs import read_jsonl
from tests.support.scripted_backend import ScriptedTestBackend, last_user_text

THOUGHT = "<think>Add the two batches, then subtract what was sold.</think>"


def thinking_responder(request, seed) -> str:
    text = last_user_text(request)
    assert "A baker" in text, text
    if "python" in text.lower() or "program" in text.lower():
        return THOUGHT + "```python\nprint(24 + 18 - 30)\n```"
    return THOUGHT + "24 + 18 = 42 and 42 - 30 = 12.\nThe answer is 12."


def run(recipe: str, out: Path, settings: dict[str, str]) -> Path:
    asyncio.run(run_recipe(Recipe.load(recipe, settings), out, RunOptions(
        backend=ScriptedTestBackend(thinking_responder), limit=1)))
    return out


def assistant(out: Path, fmt: str = "messages") -> str:
    [row] = read_jsonl(out / "train.jsonl")
    return row["messages"][-1]["content"] if fmt == "messages" else row["output"]


def test_star_exports_the_generated_rationale_with_its_reasoning(tmp_path: Path) -> None:
    done = run("star", tmp_path / "star", {"samples": "1"})
    [record] = read_jsonl(done / "data.jsonl")
    assert record["rationale_reasoning"] == "Add the two batches, then subtract what was sold."
    result = export(done, tmp_path / "m", ExportOptions(target="trl"))
    assert result.columns["response"] == "rationale"
    content = assistant(tmp_path / "m")
    assert content == ("<think>\nAdd the two batches, then subtract what was sold.\n</think>\n\n"
                       "24 + 18 = 42 and 42 - 30 = 12.\nThe answer is 12.")
    assert "<<24+18=42>>" not in content and "####" not in content  # not the input's answer
    field = export(done, tmp_path / "a", ExportOptions(format="alpaca", reasoning="field"))
    [row] = read_jsonl(field.data_path)
    assert row["reasoning"].startswith("Add the two") and row["output"].endswith("is 12.")


def test_pot_exports_the_program_the_model_wrote(tmp_path: Path) -> None:
    done = run("pot", tmp_path / "pot", {"timeout": "5"})
    [record] = read_jsonl(done / "data.jsonl")
    assert record["verified"] is True and record["program_text_reasoning"].startswith("Add")
    export(done, tmp_path / "m", ExportOptions(format="messages"))
    content = assistant(tmp_path / "m")
    assert content.startswith("<think>\nAdd the two") and "print(24 + 18 - 30)" in content


def test_arithmetic_exports_the_scratchpad(tmp_path: Path) -> None:
    out = tmp_path / "arith"
    asyncio.run(run_recipe("arithmetic", out, RunOptions(overrides={"count": "1"})))
    result = export(out, tmp_path / "m", ExportOptions(format="messages"))
    assert result.columns["response"] == "scratchpad"
    content = assistant(tmp_path / "m")
    assert content.startswith("Step 1:") and content.splitlines()[-1].startswith("Answer: ")
