"""A small executable API library (APIGen's API pool): math, units, dates, text (each a
self-contained module whose public functions are tools, run in the sandbox) and the stateful
toys (store, bank, calendar: a fresh world per episode, run in process)."""

from __future__ import annotations

import importlib
from typing import Any

from synthloom.tools.base import ToolEnvironment
from synthloom.tools.envs import ENVIRONMENTS
from synthloom.tools.python import FunctionTools, SandboxedPythonTools, public_functions
from synthloom.tools.schema import function_schema

#: Domain -> module, as ``SandboxedPythonTools`` takes it.
LIBRARY = {
    "math": "synthloom.tools.library.mathtools",
    "units": "synthloom.tools.library.units",
    "dates": "synthloom.tools.library.dates",
    "text": "synthloom.tools.library.text",
}
#: Every domain: the function modules and the stateful toys.
DOMAINS = (*LIBRARY, *ENVIRONMENTS)


def domain_tools(domain: str) -> list[dict[str, Any]]:
    """The OpenAI schemas of a domain's tools (synchronous: no environment is started)."""
    if domain in LIBRARY:
        module = importlib.import_module(LIBRARY[domain])
        return [function_schema(f, n) for n, f in public_functions(module).items()]
    if domain in ENVIRONMENTS:
        return ENVIRONMENTS[domain]().schemas
    raise KeyError(f"unknown tool domain {domain!r}; known: {', '.join(DOMAINS)}")


def domain_environment(domain: str, *, sandbox: bool = True, timeout_s: float = 10.0
                       ) -> ToolEnvironment:
    """A fresh environment for a domain (a stateful toy starts from its initial state)."""
    if domain in ENVIRONMENTS:
        return ENVIRONMENTS[domain]()
    if domain not in LIBRARY:
        raise KeyError(f"unknown tool domain {domain!r}; known: {', '.join(DOMAINS)}")
    if sandbox:
        return SandboxedPythonTools(LIBRARY[domain], timeout_s=timeout_s)
    module = importlib.import_module(LIBRARY[domain])
    return FunctionTools(public_functions(module), timeout_s=timeout_s)
