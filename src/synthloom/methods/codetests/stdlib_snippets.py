"""Seed snippets from the running Python's standard library (OSS-Instruct's real-code seeds).

OSS-Instruct (Magicoder) seeds each problem with a piece of real open-source code. The default
seeds are real code the user already has: top-level functions of pure-Python modules of the
standard library, read with ``ast`` from the running interpreter's own source files (PSF
licence) at run time, so the package ships no third-party code. 3 to 30 lines long, public (no
leading underscore), at most ``PER_MODULE`` per module, in source order: the same Python
version gives the same snippets.
"""

from __future__ import annotations

import ast
import importlib.util
import sys
import sysconfig
from pathlib import Path

MODULES = ["textwrap", "string", "shlex", "fnmatch", "colorsys", "calendar", "statistics",
           "bisect", "heapq", "difflib", "html", "glob", "base64", "quopri", "urllib.parse",
           "ipaddress", "email.utils", "json"]
PER_MODULE = 3
MIN_LINES, MAX_LINES = 3, 30


def module_snippets(module: str) -> list[dict]:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return []
    path = Path(spec.origin)
    source = path.read_text(encoding="utf-8")
    found = []
    for node in ast.parse(source).body:
        if not isinstance(node, ast.FunctionDef) or node.name.startswith("_"):
            continue
        lines = node.end_lineno - node.lineno + 1  # type: ignore[operator]
        if not MIN_LINES <= lines <= MAX_LINES:
            continue
        code = ast.get_source_segment(source, node)
        if code is None:
            continue
        version = ".".join(map(str, sys.version_info[:3]))
        stdlib = Path(sysconfig.get_paths()["stdlib"]).resolve()
        where = path.resolve().relative_to(stdlib).as_posix()
        found.append({
            "code": code, "module": module, "function": node.name,
            "origin": f"CPython {version} Lib/{where} ({node.name}, lines "
                      f"{node.lineno}-{node.end_lineno})",
            "license": "PSF-2.0",
        })
        if len(found) == PER_MODULE:
            break
    return found



def stdlib_snippets() -> list[dict]:
    return [row for module in MODULES for row in module_snippets(module)]
