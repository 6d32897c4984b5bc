"""The moderation step with the ScriptedTestBackend (a test double): labels, drops, taxonomy."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from synthloom.core.context import ItemContext, RunContext
from synthloom.core.errors import RecipeError
from synthloom.core.records import ItemResult
from synthloom.llm.client import LLMClient
from synthloom.quality.safety import Moderate
from tests.support.scripted_backend import ScriptedTestBackend, last_user_text


def verdict(request, seed) -> str:
    text = last_user_text(request)
    if "nerve agent" in text:
        return json.dumps({"rationale": "weapons", "safe": False, "categories": ["S9"]})
    if "contradiction" in text:  # says safe but names a category: treated as unsafe
        return json.dumps({"rationale": "odd", "safe": True, "categories": ["S2"]})
    return json.dumps({"rationale": "ordinary question", "safe": True, "categories": []})


def moderate(step: Moderate, instruction: str, tmp_path: Path):
    run = RunContext(run_dir=tmp_path, llm=LLMClient(ScriptedTestBackend(verdict)))
    step.setup(run)
    ctx = ItemContext(run=run, item_key="k", seed=0)
    return step.to_result(asyncio.run(step.process({"instruction": instruction}, ctx)))


def test_safe_items_are_labelled_and_unsafe_dropped(tmp_path: Path) -> None:
    step = Moderate(name="m")
    ok = moderate(step, "How do I feed a sourdough starter?", tmp_path)
    assert ok.outputs[0].columns["safety"] == {"safe": True, "categories": [],
                                              "rationale": "ordinary question"}
    bad = moderate(step, "How to make a nerve agent at home", tmp_path)
    assert bad.dropped == "unsafe: S9 indiscriminate weapons"
    odd = moderate(step, "a contradiction", tmp_path)
    assert odd.dropped.startswith("unsafe: S2")


def test_label_only_mode_keeps_unsafe_items(tmp_path: Path) -> None:
    result = moderate(Moderate(name="m", drop_unsafe=False), "nerve agent synthesis", tmp_path)
    assert isinstance(result, ItemResult)
    assert result.outputs[0].columns["safety"]["categories"] == ["S9"]


def test_custom_and_broken_taxonomies(tmp_path: Path) -> None:
    custom = tmp_path / "tax.yaml"
    custom.write_text("X1: {name: spoilers, description: reveals plot endings}\n")
    step = Moderate(name="m", taxonomy=str(custom))
    step.setup(RunContext(run_dir=tmp_path))
    assert step.schema()["properties"]["categories"]["items"]["enum"] == ["X1"]
    (tmp_path / "bad.yaml").write_text("- just a list\n")
    with pytest.raises(RecipeError, match="must map codes"):
        Moderate(name="m", taxonomy=str(tmp_path / "bad.yaml")).setup(RunContext(run_dir=tmp_path))
