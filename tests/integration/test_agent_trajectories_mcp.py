"""MCP-served tools in a recipe run: the ``agent-trajectories`` recipe with ``mcp:`` naming a
real MCP server process (stdio, written here with the official ``mcp`` SDK). The agent step
(a scripted test backend plays blueprint writer, committee, user and agent) sees the server's
tool beside the bank's, calls it through the server, and the kept trajectory holds the call,
the server's answer and the tool's schema; the bank's final state still decides."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import pytest

from synthloom.core.recipe import Recipe
from synthloom.llm.types import LLMRequest
from tests.support.runs import assert_closed, read_jsonl, run_scripted
from tests.support.scripted_backend import ScriptedTestBackend

pytestmark = pytest.mark.integration
pytest.importorskip("mcp", reason='the MCP SDK is not installed (pip install "synthloom[tools]")')

SERVER = '''
try:  # mcp 2.x
    from mcp.server.mcpserver import MCPServer as Server
except ImportError:  # mcp 1.x
    from mcp.server.fastmcp import FastMCP as Server

server = Server("fees")


@server.tool()
def deposit_fee(amount: float) -> dict:
    """The fee the bank charges on a deposit of this amount."""
    return {"amount": amount, "fee": round(amount * 0.02, 2), "server": "fees-mcp"}


if __name__ == "__main__":
    server.run()
'''

DEPOSIT = {"name": "deposit", "arguments": {"account_id": "A-100", "amount": 50}}


def play(request: LLMRequest, seed: int | None) -> str:
    text = "\n".join(str(m.get("content")) for m in request.messages or [])
    if '"intent"' in text:
        return json.dumps({"intent": "You are alice. You want to deposit 50 into A-100 and "
                                     "know the fee first.", "actions": [DEPOSIT],
                           "outputs": ["1250"]})
    if "You review task blueprints" in text:
        return json.dumps({"passes": True, "reason": "fine"})
    if text.startswith("You are a user interacting with an agent."):
        if request.messages[-1]["content"] == "Hi! How can I help you today?":
            return "What is the fee on a 50 deposit to A-100? Then please deposit it."
        return "###STOP###"
    if "customer-service agent" in text:
        if "Result of the tool call deposit_fee" not in text:
            return json.dumps({"tool_calls": [{"name": "deposit_fee",
                                               "arguments": {"amount": 50}}]})
        if "Result of the tool call deposit:" not in text:
            return json.dumps({"tool_calls": [DEPOSIT]})
        return json.dumps({"content": "The fee was 1.0; your balance is now 1250.0."})
    raise AssertionError(f"unexpected request: {text[:300]}")


def test_agent_step_calls_a_real_mcp_server(tmp_path: Path) -> None:
    script = tmp_path / "fees_server.py"
    script.write_text(SERVER)
    command = shlex.join([sys.executable, str(script)])
    recipe = Recipe.load("agent-trajectories", {
        "count": "2", "environments": "[bank]", "k": "1", "judges": "1", "mcp": command})
    out = tmp_path / "run"
    summary = run_scripted(recipe, out, ScriptedTestBackend(play, name="mcp-agent"))
    assert summary["status"] == "ok"
    assert_closed(summary)
    kept = read_jsonl(out / "data.jsonl")
    assert len(kept) == 2, read_jsonl(out / "dropped.jsonl")
    record = kept[0]
    names = {t["function"]["name"] for t in record["tools"]}
    assert names == {"deposit", "get_balance", "transfer", "deposit_fee"}
    fee_schema = next(t for t in record["tools"] if t["function"]["name"] == "deposit_fee")
    assert "amount" in fee_schema["function"]["parameters"]["properties"]
    roles = [m["role"] for m in record["messages"]]
    assert roles == ["system", "user", "assistant", "tool", "assistant", "tool", "assistant"]
    fee_call = record["messages"][2]["tool_calls"][0]
    assert fee_call["function"]["name"] == "deposit_fee"
    fee_result = record["messages"][3]
    assert fee_result["tool_call_id"] == fee_call["id"]
    # The server's own answer (computed in the server process), not a simulation.
    assert json.loads(fee_result["content"]) == {"amount": 50, "fee": 1.0, "server": "fees-mcp"}
    assert record["final_state"] == record["goal_state"]
    assert record["final_state"]["accounts"]["A-100"]["balance"] == 1250.0
