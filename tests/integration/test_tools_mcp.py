"""A real MCP server process over stdio (written here with the official ``mcp`` SDK) behind
``synthloom.tools.mcp.MCPTools``: tools listed with their schemas, calls answered, a tool's
error and a hanging tool coming back as tool messages, and calls checked by the LLM layer's
validator against the listed schemas."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from synthloom.llm.toolcalls import call_errors
from synthloom.llm.types import ToolCall

pytestmark = pytest.mark.integration
pytest.importorskip("mcp", reason='the MCP SDK is not installed (pip install "synthloom[tools]")')

from synthloom.tools.mcp import MCPTools  # noqa: E402 - after the skip

SERVER = '''
import time
try:  # mcp 2.x
    from mcp.server.mcpserver import MCPServer as Server
    from mcp.server.mcpserver.exceptions import ToolError
except ImportError:  # mcp 1.x
    from mcp.server.fastmcp import FastMCP as Server
    from mcp.server.fastmcp.exceptions import ToolError

server = Server("toy-math")


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool()
def shout(text: str) -> str:
    """Upper-case a text."""
    return text.upper() + "!"


@server.tool()
def fail(reason: str) -> str:
    """Always fails (a deliberate tool error: its message reaches the client)."""
    raise ToolError("refused: " + reason)


@server.tool()
def sleepy(seconds: float) -> str:
    """Sleeps."""
    time.sleep(seconds)
    return "awake"


if __name__ == "__main__":
    server.run()
'''


def test_mcp_server_lists_and_answers_tools(tmp_path: Path) -> None:
    script = tmp_path / "toy_server.py"
    script.write_text(SERVER)

    async def scenario() -> dict:
        async with MCPTools(sys.executable, [str(script)], timeout_s=15.0) as env:
            tools = await env.tools()
            add = await env.call(ToolCall("c1", "add", {"a": 2, "b": 40}))
            shout = await env.call(ToolCall("c2", "shout", {"text": "hi"}))
            fail = await env.call(ToolCall("c3", "fail", {"reason": "no"}))
            slow = await env.call(ToolCall("c4", "sleepy", {"seconds": 120}))
            unknown = await env.call(ToolCall("c5", "nope", {}))
            return {"tools": tools, "add": add, "shout": shout, "fail": fail, "slow": slow,
                    "unknown": unknown, "server": env.server_name}

    out = asyncio.run(asyncio.wait_for(scenario(), 200))
    by_name = {t["function"]["name"]: t for t in out["tools"]}
    assert set(by_name) == {"add", "shout", "fail", "sleepy"}
    assert by_name["add"]["function"]["description"] == "Add two integers."
    params = by_name["add"]["function"]["parameters"]
    assert set(params["required"]) == {"a", "b"}
    # The listed schemas validate calls in the LLM layer like any other tools.
    assert call_errors([ToolCall("x", "add", {"a": 1, "b": 2})], out["tools"]) == []
    assert call_errors([ToolCall("x", "add", {"a": "one", "b": 2})], out["tools"])
    assert out["add"].ok and out["add"].content == 42
    assert out["add"].provenance["kind"] == "mcp" and out["server"] == "toy-math"
    assert out["shout"].content == "HI!"
    assert "refused: no" in out["fail"].error
    message = out["fail"].message(ToolCall("c3", "fail", {}))
    assert message["role"] == "tool" and "refused: no" in json.loads(message["content"])["error"]
    assert out["slow"].error == "tool 'sleepy' timed out after 15 s"
    assert out["unknown"].error == "unknown tool 'nope'"
