"""One interface for every kind of tool: list the tools (OpenAI function schemas), call one.

A call never raises for the tool's own trouble: an error, an unknown tool or a timeout comes
back as a :class:`ToolResult` with ``error`` set, which becomes a tool message carrying the
error (what an agent trained on the data should see). ``provenance`` says what answered:
``python`` (executed), ``simulated`` (a model played the API) or ``mcp`` (a server).
"""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from synthloom.core.errors import SynthloomError
from synthloom.llm.toolcalls import function_of, tool_message
from synthloom.llm.types import LLMError, ToolCall

#: Seconds a call may take unless the environment says otherwise.
DEFAULT_TIMEOUT_S = 10.0


@dataclass(slots=True)
class ToolResult:
    """What one call returned (``content``, any JSON value) or why it failed (``error``)."""

    content: Any = None
    error: str | None = None
    seconds: float = 0.0
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None

    def message(self, call: ToolCall) -> dict[str, Any]:
        """The tool message answering ``call`` (an error as ``{"error": ...}``)."""
        return tool_message(call, {"error": self.error} if self.error is not None
                            else self.content)

    def to_json(self) -> dict[str, Any]:
        return {"content": self.content, "error": self.error,
                "seconds": round(self.seconds, 4), "provenance": self.provenance}


class ToolEnvironment(ABC):
    """Tools behind one interface. Subclasses implement ``tools`` and ``_call``; ``call``
    adds the unknown-tool check, the timeout, error capture and timing."""

    #: What answers calls, for provenance ("python", "simulated", "mcp").
    kind: str = "tool"
    timeout_s: float = DEFAULT_TIMEOUT_S

    @abstractmethod
    async def tools(self) -> list[dict[str, Any]]:
        """The tools as OpenAI function schemas (``{"type": "function", "function": ...}``)."""

    @abstractmethod
    async def _call(self, name: str, arguments: dict[str, Any]) -> Any:
        """The result of one call (JSON-able); raise for the tool's errors."""

    def state(self) -> dict[str, Any] | None:
        """The environment's state for verification (stateful environments), else None."""
        return None

    def provenance(self, name: str) -> dict[str, Any]:
        return {"kind": self.kind, "tool": name}

    async def call(self, call: ToolCall) -> ToolResult:
        began = time.perf_counter()
        names = [function_of(t).get("name") for t in await self.tools()]

        def done(content: Any = None, error: str | None = None) -> ToolResult:
            return ToolResult(content, error, time.perf_counter() - began,
                              self.provenance(call.name))

        if call.name not in names:
            return done(error=f"unknown tool {call.name!r}")
        if not isinstance(call.arguments, dict):
            return done(error="arguments must be a JSON object")
        try:
            async with asyncio.timeout(self.timeout_s):
                return done(await self._call(call.name, call.arguments))
        except TimeoutError:
            return done(error=f"tool {call.name!r} timed out after {self.timeout_s:g} s")
        except ToolError as exc:
            return done(error=str(exc))
        except (SynthloomError, LLMError):  # the run's trouble (a simulator's server, the
            raise  # budget), not the tool's: the item fails or the run stops, uncached
        except Exception as exc:  # the tool's own failure: the agent sees it, the run goes on
            return done(error=f"{type(exc).__name__}: {exc}")

    async def call_all(self, calls: list[ToolCall]) -> list[ToolResult]:
        """Parallel calls, in order (a stateful environment runs them one after another)."""
        if self.state() is not None:
            return [await self.call(c) for c in calls]
        return list(await asyncio.gather(*(self.call(c) for c in calls)))

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Stop what the environment started (an MCP server process)."""

    async def __aenter__(self) -> ToolEnvironment:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class ToolError(Exception):
    """A tool's own, expected failure (its message is what the agent sees)."""
