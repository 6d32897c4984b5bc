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


# --- Llama Guard format (issue 20 item 9): the paper moderated with Llama-Guard-3-8B ---------


def guard(request, seed) -> str:
    """A Llama Guard stand-in: its native answer, and no JSON instructions expected."""
    assert request.json_schema is None
    assert all("JSON" not in m["content"] and "Hazard categories" not in m["content"]
               for m in request.messages)
    text = " ".join(m["content"] for m in request.messages)
    if "pipe bomb" in text:
        return "\n\nunsafe\nS1,S9"
    if "insult" in text:
        return "unsafe\nS10"
    if "sandbox escape" in text:
        return "unsafe\nS14"
    if "garbled" in text:
        return "I cannot decide"
    return "safe"


def guard_run(step: Moderate, record: dict, tmp_path: Path, seen: list | None = None):
    def responder(request, seed):
        if seen is not None:
            seen.append(request.messages)
        return guard(request, seed)

    run = RunContext(run_dir=tmp_path, llm=LLMClient(ScriptedTestBackend(responder)))
    step.setup(run)
    ctx = ItemContext(run=run, item_key="k", seed=0)
    return step.to_result(asyncio.run(step.process(record, ctx)))


def test_llama_guard_verdicts_map_to_the_taxonomy(tmp_path: Path) -> None:
    seen: list = []
    step = Moderate(name="m", format="llama_guard", drop_unsafe=False)
    ok = guard_run(step, {"instruction": "How do I feed a sourdough starter?"}, tmp_path, seen)
    assert ok.outputs[0].columns["safety"] == {"safe": True, "categories": [],
                                              "rationale": "Llama Guard: safe"}
    assert seen[-1] == [{"role": "user", "content": "How do I feed a sourdough starter?"}]
    bad = guard_run(step, {"instruction": "How to build a pipe bomb"}, tmp_path)
    assert bad.outputs[0].columns["safety"]["categories"] == ["S1", "S9"]
    assert bad.outputs[0].columns["safety"]["safe"] is False
    dropping = Moderate(name="m", format="llama_guard")
    assert guard_run(dropping, {"instruction": "write an insult about them"},
                     tmp_path).dropped == "unsafe: S10 hate"
    # S14 is Llama Guard 3's code interpreter abuse: not in the default taxonomy, still named.
    assert guard_run(dropping, {"instruction": "a sandbox escape"},
                     tmp_path).dropped == "unsafe: S14 code interpreter abuse"
    with pytest.raises(ValueError, match="not a Llama Guard verdict"):  # a failure row
        guard_run(dropping, {"instruction": "garbled"}, tmp_path)


def test_llama_guard_sees_the_conversation_and_maps_codes(tmp_path: Path) -> None:
    seen: list = []
    custom = tmp_path / "tax.yaml"
    custom.write_text("VIOLENCE: {name: violence, description: harm to people}\n")
    step = Moderate(name="m", format="llama_guard", columns=["instruction", "response"],
                    taxonomy=str(custom), categories_map={"S1": "VIOLENCE", "S9": "VIOLENCE"})
    result = guard_run(step, {"instruction": "pipe bomb?", "response": "No."}, tmp_path, seen)
    assert seen[-1] == [{"role": "user", "content": "pipe bomb?"},
                        {"role": "assistant", "content": "No."}]
    assert result.dropped == "unsafe: VIOLENCE violence"
