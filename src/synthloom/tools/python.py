"""Python functions as tools: schemas from signature + docstring, calls executed.

* :class:`SandboxedPythonTools`: the functions of a module's source, each call run in the
  sandbox (``verify/sandbox.py``: its own process, limits, no network, a wall-clock timeout
  that kills it). For libraries whose calls take model-written arguments: a call that loops
  or allocates without end costs one sandboxed process, not the run.
* :class:`FunctionTools`: trusted functions or bound methods called in this process (a
  worker thread, so a timeout returns control; a stateful toy's methods, whose state must
  outlive the call).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import inspect
import json
import threading
from collections.abc import Callable, Iterable
from types import ModuleType
from typing import Any

from synthloom.tools.base import DEFAULT_TIMEOUT_S, ToolEnvironment, ToolError
from synthloom.tools.schema import function_schema
from synthloom.verify.sandbox import SandboxLimits, run_python

#: Marks the result line in the sandboxed program's stdout (a tool may print too).
_MARK = "@@synthloom-tool-result@@ "
_RUNNER = """\
import json, sys
sys.path.insert(0, ".")
import tools_module
args = json.loads({args!r})
try:
    out = {{"ok": getattr(tools_module, {name!r})(**args)}}
except Exception as exc:
    out = {{"error": type(exc).__name__ + ": " + str(exc)}}
print({mark!r} + json.dumps(out, default=str, ensure_ascii=False))
"""


def public_functions(module: ModuleType, names: Iterable[str] | None = None
                     ) -> dict[str, Callable[..., Any]]:
    """The module's own public functions (or ``names``), by name."""
    if names is not None:
        return {n: getattr(module, n) for n in names}
    return {n: f for n, f in vars(module).items()
            if inspect.isfunction(f) and not n.startswith("_")
            and f.__module__ == module.__name__}


async def _in_daemon_thread(fn: Callable[..., Any], arguments: dict[str, Any]) -> Any:
    """``fn(**arguments)`` in a daemon thread of its own: unlike ``asyncio.to_thread``, a
    function still hanging after its timeout keeps neither the loop's shutdown nor the
    interpreter's exit waiting."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()

    def settle(ok: bool, value: Any) -> None:
        if not future.done():
            future.set_result(value) if ok else future.set_exception(value)

    def work() -> None:
        try:
            value, ok = fn(**arguments), True
        except BaseException as exc:  # handed to the awaiting task, which reports it
            value, ok = exc, False
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits any more
            loop.call_soon_threadsafe(settle, ok, value)

    threading.Thread(target=work, daemon=True, name="synthloom-tool").start()
    return await future


class FunctionTools(ToolEnvironment):
    """Functions (or bound methods) called in this process."""

    kind = "python"

    def __init__(self, functions: Iterable[Callable[..., Any]] | dict[str, Callable[..., Any]],
                 *, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        items = functions.items() if isinstance(functions, dict) else \
            ((f.__name__, f) for f in functions)
        self.functions = dict(items)
        self.timeout_s = timeout_s
        self._schemas = [function_schema(f, name) for name, f in self.functions.items()]

    async def tools(self) -> list[dict[str, Any]]:
        return self._schemas

    async def _call(self, name: str, arguments: dict[str, Any]) -> Any:
        # A thread, so that the timeout returns control even when the function hangs (the
        # thread itself cannot be stopped: trusted code only; untrusted code: the sandbox).
        result = await _in_daemon_thread(self.functions[name], arguments)
        return json.loads(json.dumps(result, default=str))  # JSON-able, as a message needs


class SandboxedPythonTools(ToolEnvironment):
    """The public functions of a module, each call in a fresh sandboxed process."""

    kind = "python"

    def __init__(self, module: ModuleType | str, *, names: Iterable[str] | None = None,
                 timeout_s: float = DEFAULT_TIMEOUT_S, limits: SandboxLimits | None = None
                 ) -> None:
        if isinstance(module, str):
            module = importlib.import_module(module)
        self.module_name = module.__name__
        self.source = inspect.getsource(module)
        self.functions = public_functions(module, names)
        self._schemas = [function_schema(f, n) for n, f in self.functions.items()]
        self.limits = limits or SandboxLimits(timeout_s=timeout_s, memory_mb=256)
        # The sandbox kills at limits.timeout_s; this outer guard only covers its own start.
        self.timeout_s = self.limits.timeout_s + 10.0

    async def tools(self) -> list[dict[str, Any]]:
        return self._schemas

    def provenance(self, name: str) -> dict[str, Any]:
        return {"kind": self.kind, "tool": name, "module": self.module_name, "sandbox": True}

    async def _call(self, name: str, arguments: dict[str, Any]) -> Any:
        code = _RUNNER.format(args=json.dumps(arguments), name=name, mark=_MARK)
        result = await run_python(code, self.limits, files={"tools_module.py": self.source})
        if result.status == "timeout":
            raise ToolError(f"tool {name!r} timed out after {self.limits.timeout_s:g} s")
        for line in reversed(result.stdout.splitlines()):
            if line.startswith(_MARK):
                out = json.loads(line[len(_MARK):])
                if "error" in out:
                    raise ToolError(out["error"])
                return out["ok"]
        reason = result.reason or (result.stderr.strip().splitlines() or ["no result"])[-1]
        raise ToolError(f"tool {name!r} failed ({result.status}): {reason}")
