"""MCP servers over stdio, through the official ``mcp`` SDK (extra ``tools``): list the
server's tools, call them. The server process starts on first use and stops on ``aclose``.

Works with the SDK's 1.x and 2.x field spellings (``inputSchema``/``input_schema``,
``isError``/``is_error``).
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

from synthloom.core.errors import SynthloomError
from synthloom.tools.base import DEFAULT_TIMEOUT_S, ToolEnvironment, ToolError

INSTALL_HINT = 'pip install "synthloom[tools]"'


def _import_mcp() -> Any:
    try:
        import mcp
        import mcp.client.stdio  # noqa: F401 - the stdio transport lives in a submodule
    except ImportError as exc:
        raise SynthloomError(f"MCP tools need the package mcp; run: {INSTALL_HINT}") from exc
    return mcp


def _field(obj: Any, *names: str) -> Any:
    for name in names:
        if hasattr(obj, name):
            return getattr(obj, name)
    return None


class MCPTools(ToolEnvironment):
    """The tools of an MCP server started as ``command args`` (stdio)."""

    kind = "mcp"

    def __init__(self, command: str, args: list[str] | None = None, *,
                 env: dict[str, str] | None = None, cwd: str | None = None,
                 timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.command = command
        self.args = list(args or [])
        self.env = env
        self.cwd = cwd
        self.timeout_s = timeout_s
        self._stack: contextlib.AsyncExitStack | None = None
        self._session: Any = None
        self._tools: list[dict[str, Any]] | None = None
        self.server_name: str | None = None

    async def _connect(self) -> Any:
        if self._session is not None:
            return self._session
        mcp = _import_mcp()
        params = mcp.StdioServerParameters(command=self.command, args=self.args, env=self.env,
                                           cwd=self.cwd)
        stack = contextlib.AsyncExitStack()
        try:
            read, write = await stack.enter_async_context(mcp.client.stdio.stdio_client(params))
            session = await stack.enter_async_context(mcp.ClientSession(read, write))
            info = await session.initialize()
        except BaseException:
            await stack.aclose()
            raise
        server = _field(info, "serverInfo", "server_info")
        self.server_name = getattr(server, "name", None)
        self._stack, self._session = stack, session
        return session

    async def tools(self) -> list[dict[str, Any]]:
        if self._tools is None:
            session = await self._connect()
            listed = await session.list_tools()
            self._tools = [{"type": "function", "function": {
                "name": t.name, "description": t.description or "",
                "parameters": _field(t, "inputSchema", "input_schema")
                or {"type": "object", "properties": {}}}} for t in listed.tools]
        return self._tools

    def provenance(self, name: str) -> dict[str, Any]:
        return {"kind": self.kind, "tool": name, "server": self.server_name,
                "command": " ".join([self.command, *self.args])}

    async def _call(self, name: str, arguments: dict[str, Any]) -> Any:
        session = await self._connect()
        result = await session.call_tool(name, arguments)
        structured = _field(result, "structuredContent", "structured_content")
        texts = [getattr(c, "text", None) for c in result.content]
        text = "\n".join(t for t in texts if isinstance(t, str))
        if _field(result, "isError", "is_error"):
            raise ToolError(text or "the MCP tool reported an error")
        if structured is not None:
            # FastMCP/MCPServer wrap a plain return value as {"result": value}.
            if isinstance(structured, dict) and set(structured) == {"result"}:
                return structured["result"]
            return structured
        try:
            return json.loads(text)
        except ValueError:
            return text

    async def aclose(self) -> None:
        stack, self._stack, self._session = self._stack, None, None
        if stack is not None:
            await stack.aclose()
