"""Stateful toy environments: small Python classes whose methods marked ``@tool`` are the
tools, whose ``state()`` is compared to verify an episode (APIGen-MT: a trajectory is kept
when the final state equals the blueprint's), and whose ``policy`` is the document an agent
must follow (the methods enforce it: a violating call is a tool error)."""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable
from typing import Any

from synthloom.tools.base import ToolEnvironment
from synthloom.tools.schema import function_schema

_TOOL_FLAG = "__synthloom_tool__"


def tool(method: Callable[..., Any]) -> Callable[..., Any]:
    """Mark a method of a :class:`StatefulEnvironment` as a tool."""
    setattr(method, _TOOL_FLAG, True)
    return method


class StatefulEnvironment(ToolEnvironment):
    """A toy world: ``initial_state()`` builds its data, ``@tool`` methods act on it."""

    kind = "python"
    #: The rules an agent must follow (the tools refuse calls that break them).
    policy: str = ""
    name: str = "env"

    def __init__(self, state: dict[str, Any] | None = None) -> None:
        self.data: dict[str, Any] = copy.deepcopy(state) if state is not None \
            else self.initial_state()
        self._methods = {n: m for n, m in inspect.getmembers(self, inspect.ismethod)
                         if getattr(m, _TOOL_FLAG, False)}
        self._schemas = [function_schema(m, n) for n, m in sorted(self._methods.items())]

    @property
    def schemas(self) -> list[dict[str, Any]]:
        """The tools' OpenAI schemas (what ``tools()`` returns, without awaiting)."""
        return self._schemas

    def initial_state(self) -> dict[str, Any]:
        return {}

    def state(self) -> dict[str, Any]:
        return copy.deepcopy(self.data)

    def reset(self, state: dict[str, Any] | None = None) -> None:
        self.data = copy.deepcopy(state) if state is not None else self.initial_state()

    def provenance(self, name: str) -> dict[str, Any]:
        return {"kind": self.kind, "tool": name, "environment": self.name}

    async def tools(self) -> list[dict[str, Any]]:
        return self._schemas

    async def _call(self, name: str, arguments: dict[str, Any]) -> Any:
        # Synchronous, in order: a stateful world's calls must not interleave.
        return self._methods[name](**arguments)
