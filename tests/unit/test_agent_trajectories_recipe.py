"""The ``agent-trajectories`` recipe (APIGen-MT) through the engine with the
ScriptedTestBackend (a scripted test double that plays blueprint writer, committee, simulated
user and agent by rules): each stage drops what it should with its stage (an invalid action,
a policy violation, a committee rejection, a trajectory whose final state differs), a kept
trajectory is an executed OpenAI conversation ending in the goal state, and pass^k is
tau-bench's."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from pathlib import Path

import pytest

from synthloom.api import RunOptions, run_recipe
from synthloom.core.recipe import Recipe
from synthloom.llm.types import LLMRequest
from synthloom.methods.agentmt.play import mean_pass_hat_k, pass_hat_k, state_diff
from tests.support.runs import assert_closed, read_jsonl, run_scripted, step
from tests.support.scripted_backend import ScriptedTestBackend

DEPOSIT = {"name": "deposit", "arguments": {"account_id": "A-100", "amount": 50}}
#: One blueprint per case (the case rides in the intent, so every later player can read it).
BLUEPRINTS = {
    "good": [DEPOSIT],
    "flaky": [DEPOSIT],  # the agent gets it right in 2 rollouts of 3
    "wrong": [DEPOSIT],  # the agent always deposits 60: final state differs
    "split": [DEPOSIT],  # the committee's votes follow the judge seeds' parity
    "refused": [DEPOSIT],  # every judge says no
    "policy": [{"name": "transfer", "arguments": {"from_account": "B-200",
                                                  "to_account": "A-100", "amount": 900}}],
    "missing": [{"name": "deposit", "arguments": {"account_id": "Z-999", "amount": 5}}],
    "format": [{"name": "deposit", "arguments": {"account_id": "A-100", "amount": "fifty"}}],
}
CASES = sorted(BLUEPRINTS)
_CASE = re.compile(r"case: (\w+)")
_DRAWN = itertools.count()


def _text(request: LLMRequest) -> str:
    return "\n".join(str(m.get("content")) for m in request.messages or [])


def play(request: LLMRequest, seed: int | None) -> str:
    text = _text(request)
    seed = seed or 0
    if '"intent"' in text:  # the blueprint writer: the cases in turn, each 6 times in 48
        earlier = _CASE.search(text)  # a re-ask after an invalid answer: the same case
        case = earlier[1] if earlier else CASES[next(_DRAWN) % len(CASES)]
        return json.dumps({"intent": f"You are alice. You want to put money in your account "
                                     f"A-100. case: {case}",
                           "actions": BLUEPRINTS[case],
                           "outputs": ["1250"] if BLUEPRINTS[case] == [DEPOSIT] else []})
    if "You review task blueprints" in text:  # a committee member
        case = _CASE.search(text)[1]
        passes = {"refused": False, "split": seed % 2 == 0}.get(case, True)
        return json.dumps({"passes": passes, "reason": "fine" if passes else "unclear"})
    if text.startswith("You are a user interacting with an agent."):  # the simulated user
        if request.messages[-1]["content"] == "Hi! How can I help you today?":
            return f"Hi, please deposit 50 into A-100 (ticket {_CASE.search(text)[1]})."
        return "###STOP###"
    if "customer-service agent" in text:  # the agent (the client's constrained tool path)
        case = re.search(r"ticket (\w+)", text)[1]
        if "Result of the tool call deposit" not in text:
            wrong = case == "wrong" or (case == "flaky" and seed % 3 == 0)
            amount = 60 if wrong else 50
            return json.dumps({"tool_calls": [{"name": "deposit", "arguments": {
                "account_id": "A-100", "amount": amount}}]})
        balance = re.findall(r'"balance": ([\d.]+)', text)[-1]
        return json.dumps({"content": f"Done: your balance is now {balance}."})
    raise AssertionError(f"unexpected request: {text[:300]}")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, list, list, Path]:
    out = tmp_path_factory.mktemp("agentmt")
    recipe = Recipe.load("agent-trajectories", {"count": "48", "environments": "[bank]"})
    summary = run_scripted(recipe, out, ScriptedTestBackend(play, name="agentmt-play"))
    return summary, read_jsonl(out / "data.jsonl"), read_jsonl(out / "dropped.jsonl"), out


def _case(record: dict) -> str:
    if not record["intent"]:  # invalid after the client's repairs: nothing of it is kept
        assert record["reject_stage"] == "format", record
        return "format"
    return _CASE.search(record["intent"])[1]


def test_scripted_backend_each_stage_drops_what_it_should(run) -> None:
    summary, kept, dropped, _ = run
    assert summary["status"] == "ok"
    assert_closed(summary)
    assert len(kept) + len(dropped) == 48 and step(summary, "verified")["dropped"] == len(dropped)
    stages: dict[str, set[str]] = {}
    for row in dropped:
        record = row["record"]
        assert row["reason"].startswith(f"{record['reject_stage']}: "), row["reason"]
        stages.setdefault(_case(record), set()).add(record["reject_stage"])
    reasons = {_case(r["record"]): r["reason"] for r in dropped}
    drawn = [_case(r) for r in kept] + [_case(r["record"]) for r in dropped]
    assert sorted(drawn) == sorted(CASES * 6)
    # The client's validation (the tool union per action) re-asks, then gives up: format.
    assert stages["format"] == {"format"} and "'amount': 'fifty'" in reasons["format"]
    assert reasons["format"].startswith("format: blueprint invalid:")
    assert stages["missing"] == {"execution"} and "no account 'Z-999'" in reasons["missing"]
    assert stages["policy"] == {"policy"} and "policy 2" in reasons["policy"]
    assert stages["refused"] == {"committee"} and reasons["refused"].startswith(
        "committee: 0/3 votes for; unclear")
    assert stages["wrong"] == {"trajectory"}
    assert "0/3 rollouts reached the goal state" in reasons["wrong"]
    assert "final state differs from the blueprint's at accounts.A-100.balance, log" \
        in reasons["wrong"]
    assert {_case(r) for r in kept} <= {"good", "flaky", "split"}
    # Split votes: kept by a strict majority only.
    for row in dropped:
        if _case(row["record"]) == "split":
            assert row["record"]["committee_votes"] == 1
    for record in kept:
        if _case(record) == "split":
            assert record["committee_votes"] == 2


def test_scripted_backend_kept_trajectories_reach_the_goal_state(run) -> None:
    _, kept, _, _ = run
    good = [r for r in kept if _case(r) == "good"]
    assert good
    record = good[0]
    assert record["reject_stage"] is None and record["final_state"] == record["goal_state"]
    assert record["goal_state"]["accounts"]["A-100"]["balance"] == 1250.0
    roles = [m["role"] for m in record["messages"]]
    assert roles == ["system", "user", "assistant", "tool", "assistant"]
    assert "Bank policy" in record["messages"][0]["content"]
    call = record["messages"][2]["tool_calls"][0]
    assert call["function"]["name"] == "deposit"
    assert json.loads(call["function"]["arguments"]) == {"account_id": "A-100", "amount": 50}
    assert record["messages"][3]["tool_call_id"] == call["id"]
    assert "1250" in record["messages"][4]["content"]
    assert {t["function"]["name"] for t in record["tools"]} == {"deposit", "get_balance",
                                                                 "transfer"}


def test_scripted_backend_pass_hat_k_follows_tau_bench(run) -> None:
    _, kept, dropped, out = run
    flaky = [r for r in kept if _case(r) == "flaky"]
    assert flaky
    for record in flaky:  # one rollout in three deposits 60 (seed % 3 == 0)
        assert record["rollout_passes"] == 2 and record["rollout_k"] == 3
        assert record["pass_hat_k"] == pytest.approx({"1": 2 / 3, "2": 1 / 3, "3": 0.0})
        assert [r["success"] for r in record["rollouts"]].count(False) == 1
    assert all(r["pass_hat_k"] == {"1": 1.0, "2": 1.0, "3": 1.0}
               for r in kept if _case(r) == "good")
    report = json.loads((out / "pass_k.json").read_text())
    rolled = [r for r in kept] + [d["record"] for d in dropped
                                  if d["record"].get("rollout_k")]
    assert report["rolled_out"] == len(rolled)
    want = mean_pass_hat_k([(r["rollout_passes"], 3) for r in rolled])
    assert report["pass_hat_k"] == pytest.approx(want)
    assert report["stages"]["kept"] == len(kept) and report["blueprints"] == 48


def test_pass_hat_k_by_hand() -> None:
    assert pass_hat_k(2, 3) == pytest.approx({"1": 2 / 3, "2": 1 / 3, "3": 0.0})
    assert pass_hat_k(0, 2) == {"1": 0.0, "2": 0.0}
    # Two tasks: 3/4 and 1/4 successes: pass^1 = (3/4 + 1/4) / 2, pass^2 = (3/6 + 0) / 2.
    assert mean_pass_hat_k([(3, 4), (1, 4)]) == pytest.approx(
        {"1": 0.5, "2": 0.25, "3": 0.125, "4": 0.0})
    assert mean_pass_hat_k([]) == {}
    assert state_diff({"a": {"b": 1, "c": 2}}, {"a": {"b": 1, "c": 3}, "d": 0}) == ["a.c", "d"]


def test_scripted_backend_user_turns_go_to_the_named_user_model(tmp_path: Path) -> None:
    # The agent and blueprint writer on one scripted backend, the simulated user on another.
    def agent_side(request: LLMRequest, seed: int | None) -> str:
        assert not _text(request).startswith("You are a user"), "user turn on the agent model"
        if '"intent"' in _text(request):
            return json.dumps({"intent": "You are alice. You want to put money in A-100. "
                                         "case: good", "actions": [DEPOSIT],
                               "outputs": ["1250"]})
        return play(request, seed)

    def user_side(request: LLMRequest, seed: int | None) -> str:
        assert _text(request).startswith("You are a user interacting with an agent.")
        return play(request, seed)

    agent = ScriptedTestBackend(agent_side, name="agent")
    user = ScriptedTestBackend(user_side, name="user")
    recipe = Recipe.load("agent-trajectories", {"count": "2", "environments": "[bank]",
                                                "k": "2", "user_model": "user"},
                         models={"user": user})
    options = RunOptions(backend=agent)
    summary = asyncio.run(run_recipe(recipe, tmp_path, options)).to_json()
    assert summary["status"] == "ok"
    kept = read_jsonl(tmp_path / "data.jsonl")
    assert len(kept) == 2 and all(r["rollout_passes"] == 2 for r in kept)
    # Two turns per rollout (the opening, then ###STOP###), two rollouts per blueprint; the
    # rollouts of one blueprint differ by seed, the two blueprints by task.
    assert user.calls == 2 * 2 * 2
