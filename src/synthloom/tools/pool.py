"""A pool of APIs without code (ToolACE's API pool), played by a model (``SimulatedAPI``).

A pool is a JSON file ``{"apis": [...]}`` (or the list alone); each API is an OpenAI function
(``name``, ``description``, ``parameters``: a JSON schema of an object) plus ``domain`` (the
group it is sampled in), ``returns`` (optional: the JSON schema its result must satisfy) and
``examples`` (``[{"arguments": {...}, "result": ...}]``, shown to the simulator).

Loading checks what ToolACE's rule layer checks of an API definition: a name, a description,
valid parameter and result schemas, and examples whose arguments and results satisfy them
(an example that breaks its own API would teach the simulator to break it too).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from synthloom.llm.structured import validate

_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


@dataclass(frozen=True, slots=True)
class PoolAPI:
    """One simulated API: its domain, OpenAI tool schema, result schema and examples."""

    domain: str
    tool: dict[str, Any]
    returns: dict[str, Any] | None = None
    examples: list[dict[str, Any]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return str(self.tool["function"]["name"])


class PoolError(ValueError):
    """The pool file is not a valid API pool (the message names the API and the problem)."""


def load_api_pool(path: str | Path) -> list[PoolAPI]:
    """The APIs of a pool file, checked (``PoolError`` on the first problem)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise PoolError(f"API pool {path}: {exc}") from exc
    entries = data.get("apis") if isinstance(data, dict) else data
    if not isinstance(entries, list) or not entries:
        raise PoolError(f"API pool {path}: expected a non-empty list of APIs under 'apis'")
    apis = [parse_api(entry, f"API pool {path}, API {i}") for i, entry in enumerate(entries)]
    names = [a.name for a in apis]
    if dupes := sorted({n for n in names if names.count(n) > 1}):
        raise PoolError(f"API pool {path}: duplicate API names {dupes}")
    return apis


def parse_api(entry: Any, where: str) -> PoolAPI:
    """One checked pool entry."""
    if not isinstance(entry, dict):
        raise PoolError(f"{where}: not a JSON object")
    name, description = entry.get("name"), entry.get("description")
    if not isinstance(name, str) or not name or set(name) - _NAME_CHARS:
        raise PoolError(f"{where}: 'name' must be letters, digits, '_' or '-': {name!r}")
    where = f"{where} ({name})"
    if not isinstance(description, str) or not description.strip():
        raise PoolError(f"{where}: no 'description'")
    if not isinstance(entry.get("domain"), str) or not entry["domain"]:
        raise PoolError(f"{where}: no 'domain'")
    parameters = entry.get("parameters", {"type": "object", "properties": {}})
    if not isinstance(parameters, dict) or parameters.get("type") != "object":
        raise PoolError(f"{where}: 'parameters' must be a JSON schema of type object")
    returns = entry.get("returns")
    for label, schema in (("parameters", parameters), ("returns", returns)):
        if schema is None:
            continue
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as exc:
            raise PoolError(f"{where}: '{label}' is not a valid JSON schema: "
                            f"{exc.message}") from exc
    examples = entry.get("examples") or []
    for i, example in enumerate(examples):
        if not isinstance(example, dict) or "arguments" not in example or "result" not in example:
            raise PoolError(f"{where}: example {i} needs 'arguments' and 'result'")
        problems = validate(example["arguments"], parameters)
        if returns is not None:
            problems += validate(example["result"], returns)
        if problems:
            raise PoolError(f"{where}: example {i} breaks its own schemas: {problems[0]}")
    tool = {"type": "function", "function": {"name": name, "description": description,
                                             "parameters": parameters}}
    return PoolAPI(str(entry["domain"]), tool, returns, list(examples))
