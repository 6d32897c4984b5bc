"""A function's OpenAI tool schema from its signature and docstring.

Types from annotations (``int`` → integer, ``list[str]`` → array of strings, ``Literal`` →
enum, ``X | None`` → nullable, not required); the description is the docstring's first
paragraph; argument descriptions come from a Google-style ``Args:`` section (``name: text``)
or reST ``:param name: text`` lines. A parameter without a default is required.
"""

from __future__ import annotations

import inspect
import re
import types
import typing
from collections.abc import Callable
from typing import Any, Literal, get_args, get_origin

_SIMPLE = {int: "integer", float: "number", str: "string", bool: "boolean",
           dict: "object", list: "array", type(None): "null"}
_ARG_LINE = re.compile(r"^\s*(?::param\s+)?\*{0,2}(\w+)\s*(?:\([^)]*\))?\s*:\s*(.+)$")


def type_schema(annotation: Any) -> dict[str, Any]:
    """The JSON schema of a Python annotation ({} when it says nothing)."""
    if annotation is inspect.Parameter.empty or annotation is Any:
        return {}
    if annotation in _SIMPLE:
        return {"type": _SIMPLE[annotation]}
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Literal:
        return {"enum": list(args)}
    if origin in (typing.Union, types.UnionType):
        parts = [type_schema(a) for a in args]
        kinds = [p.get("type") for p in parts]
        if all(isinstance(k, str) for k in kinds) and all(set(p) == {"type"} for p in parts):
            return {"type": kinds}
        others = [p for p in parts if p != {"type": "null"}]
        if len(others) == 1 and isinstance(others[0].get("type"), str):  # Optional[list[int]]
            return {**others[0], "type": [others[0]["type"], "null"]}
        return {"anyOf": parts}
    if origin in (list, tuple, set, frozenset):
        items = type_schema(args[0]) if args else {}
        return {"type": "array", **({"items": items} if items else {})}
    if origin is dict:
        values = type_schema(args[1]) if len(args) == 2 else {}
        return {"type": "object", **({"additionalProperties": values} if values else {})}
    return {}


def _doc_parts(doc: str) -> tuple[str, dict[str, str]]:
    """(description, {argument: description}) from a docstring."""
    doc = inspect.cleandoc(doc or "")
    description = doc.split("\n\n")[0].replace("\n", " ").strip()
    args: dict[str, str] = {}
    in_args = False
    for line in doc.splitlines():
        stripped = line.strip()
        if stripped in ("Args:", "Arguments:", "Parameters:"):
            in_args = True
            continue
        if in_args and stripped.endswith(":") and not line.startswith((" ", "\t")):
            in_args = False  # the next section (Returns:, Raises:)
        match = _ARG_LINE.match(line)
        if match and (in_args or stripped.startswith(":param")):
            args[match[1]] = match[2].strip()
    if description.startswith((":param", "Args:")):
        description = ""
    return description, args


def function_schema(fn: Callable[..., Any], name: str | None = None) -> dict[str, Any]:
    """``fn`` as an OpenAI tool: ``{"type": "function", "function": {name, description,
    parameters}}``."""
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # an annotation that does not resolve: fall back to what is written
        hints = {}
    description, arg_docs = _doc_parts(fn.__doc__ or "")
    properties: dict[str, Any] = {}
    required: list[str] = []
    for param in inspect.signature(fn).parameters.values():
        if param.name == "self" or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        prop = type_schema(hints.get(param.name, param.annotation))
        if param.name in arg_docs:
            prop["description"] = arg_docs[param.name]
        if param.default is param.empty:
            required.append(param.name)
        elif param.default is None or isinstance(param.default, (int, float, str, bool)):
            prop["default"] = param.default
        properties[param.name] = prop
    parameters: dict[str, Any] = {"type": "object", "properties": properties,
                                  "required": required, "additionalProperties": False}
    return {"type": "function", "function": {"name": name or fn.__name__,
                                             "description": description,
                                             "parameters": parameters}}
