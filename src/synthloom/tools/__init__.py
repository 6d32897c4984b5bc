"""Tool environments behind one interface (issue 24 §2): Python functions (sandboxed or
in process), simulated APIs (a model plays them), MCP servers (stdio), and stateful toys.

Layer: above ``verify`` (the sandbox) and ``llm``/``prompting`` (simulated APIs), below
``methods`` (recipes call tools).
"""

from synthloom.tools.base import DEFAULT_TIMEOUT_S, ToolEnvironment, ToolError, ToolResult
from synthloom.tools.python import FunctionTools, SandboxedPythonTools
from synthloom.tools.schema import function_schema

__all__ = ["DEFAULT_TIMEOUT_S", "FunctionTools", "SandboxedPythonTools", "ToolEnvironment",
           "ToolError", "ToolResult", "function_schema"]
