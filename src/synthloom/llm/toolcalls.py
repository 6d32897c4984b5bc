"""Tool calls in the LLM layer: messages that carry them, their validation, and the
constrained path for backends without native tools.

Messages use the OpenAI chat shape, which servers with native tools read as is:
an assistant turn ``{"role": "assistant", "content": None, "tool_calls": [{"id", "type":
"function", "function": {"name", "arguments": "<JSON text>"}}]}`` and a result
``{"role": "tool", "tool_call_id", "name", "content"}``.

Without native tools (the embedded llama.cpp model, a server told ``tools=constrained``) the
model answers one JSON object of the union ``{"tool_calls": [{"name", "arguments"}, ...]} |
{"content": "..."}`` built from the tool schemas: grammar-constrained where the backend
enforces schemas, and in every case validated, repaired and re-asked by the client like any
structured output. Tool turns are written into the conversation as plain text for it.
"""

from __future__ import annotations

import json
from typing import Any

from synthloom.llm.structured import extract_json, validate
from synthloom.llm.types import ToolCall

TOOLS_PROMPT = (
    "You can call these tools (JSON Schema of each tool's arguments given):\n{listing}\n"
    'To call tools, answer {{"tool_calls": [{{"name": TOOL, "arguments": {{...}}}}]}} '
    "(several calls in the list when several are needed). "
    '{no_call}'
)
NO_CALL_ALLOWED = 'When no tool fits, answer {"content": YOUR_ANSWER} instead.'
CALL_REQUIRED = "You must call a tool."
REPAIR_CALLS = ("Your previous tool calls are not valid. Problems:\n{errors}\n"
                "Call the tools again with corrected names and arguments.")


# --- tool schemas -------------------------------------------------------------------------------


def function_of(tool: dict[str, Any]) -> dict[str, Any]:
    """The ``function`` part of an OpenAI tool (a bare function schema is accepted too)."""
    return tool.get("function", tool) if isinstance(tool, dict) else {}


def tool_names(tools: list[dict[str, Any]]) -> list[str]:
    return [str(function_of(t).get("name")) for t in tools]


def parameters_of(tool: dict[str, Any]) -> dict[str, Any]:
    params = function_of(tool).get("parameters")
    return params if isinstance(params, dict) else {"type": "object", "properties": {}}


def forced_name(tool_choice: Any) -> str | None:
    """The one tool ``tool_choice`` names, else None."""
    if isinstance(tool_choice, dict):
        name = function_of(tool_choice).get("name")
        return str(name) if name else None
    return None


def allowed_tools(tools: list[dict[str, Any]], tool_choice: Any) -> list[dict[str, Any]]:
    name = forced_name(tool_choice)
    if name is None:
        return list(tools)
    chosen = [t for t in tools if function_of(t).get("name") == name]
    if not chosen:
        raise ValueError(f"tool_choice names {name!r}, which is not among the tools "
                         f"({', '.join(tool_names(tools))})")
    return chosen


def must_call(tool_choice: Any) -> bool:
    return tool_choice == "required" or forced_name(tool_choice) is not None


#: Most calls in one constrained answer: the grammar's bound on a small model that repeats
#: calls until its token cap (seen with SmolLM2-135M: eleven calls, then cut off).
MAX_CALLS = 8


def union_schema(tools: list[dict[str, Any]], tool_choice: Any = None,
                 max_calls: int = MAX_CALLS) -> dict[str, Any]:
    """The JSON schema of one answer: up to ``max_calls`` calls of the allowed tools, or
    (unless a call is required) plain content."""
    calls = [{
        "type": "object",
        "properties": {"name": {"const": function_of(t).get("name")},
                       "arguments": parameters_of(t)},
        "required": ["name", "arguments"],
    } for t in allowed_tools(tools, tool_choice)]
    call_branch = {
        "type": "object",
        "properties": {"tool_calls": {"type": "array", "minItems": 1, "maxItems": max_calls,
                                      "items": calls[0] if len(calls) == 1 else {"anyOf": calls}}},
        "required": ["tool_calls"],
    }
    if must_call(tool_choice):
        return call_branch
    content_branch = {"type": "object", "properties": {"content": {"type": "string"}},
                      "required": ["content"]}
    return {"anyOf": [call_branch, content_branch]}


def tools_prompt(tools: list[dict[str, Any]], tool_choice: Any = None) -> str:
    listing = "\n".join(
        f"- {function_of(t).get('name')}: {function_of(t).get('description') or ''} "
        f"{json.dumps(parameters_of(t), separators=(',', ':'), ensure_ascii=False)}"
        for t in allowed_tools(tools, tool_choice))
    return TOOLS_PROMPT.format(
        listing=listing, no_call=CALL_REQUIRED if must_call(tool_choice) else NO_CALL_ALLOWED)


# --- messages -----------------------------------------------------------------------------------


def assistant_message(calls: list[ToolCall], content: str | None = None) -> dict[str, Any]:
    """The assistant turn that made ``calls`` (OpenAI shape: arguments as JSON text)."""
    return {"role": "assistant", "content": content, "tool_calls": [
        {"id": c.id, "type": "function",
         "function": {"name": c.name, "arguments": json.dumps(c.arguments, ensure_ascii=False)}}
        for c in calls]}


def tool_message(call: ToolCall, content: Any) -> dict[str, Any]:
    """A tool's result (or error text) answering ``call``."""
    text = content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)
    return {"role": "tool", "tool_call_id": call.id, "name": call.name, "content": text}


def parse_arguments(raw: Any) -> Any:
    """Arguments as a JSON value; the raw text when it is not JSON (validation reports it)."""
    if not isinstance(raw, str):
        return raw
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def calls_in_message(message: dict[str, Any]) -> list[ToolCall]:
    out = []
    for i, call in enumerate(message.get("tool_calls") or []):
        fn = call.get("function") or {}
        out.append(ToolCall(id=str(call.get("id") or f"call_{i}"), name=str(fn.get("name")),
                            arguments=parse_arguments(fn.get("arguments"))))
    return out


def as_text_messages(messages: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The conversation for a model without native tools: assistant calls as the JSON it
    would answer, tool results as user turns naming the call. Plain turns are unchanged."""
    out: list[dict[str, str]] = []
    names: dict[str, str] = {}
    for m in messages:
        if m.get("tool_calls"):
            calls = calls_in_message(m)
            names.update({c.id: c.name for c in calls})
            body = json.dumps({"tool_calls": [{"name": c.name, "arguments": c.arguments}
                                              for c in calls]}, ensure_ascii=False)
            prefix = f"{m['content']}\n" if m.get("content") else ""
            out.append({"role": "assistant", "content": prefix + body})
        elif m.get("role") == "tool":
            name = m.get("name") or names.get(str(m.get("tool_call_id")), "tool")
            out.append({"role": "user",
                        "content": f"Result of the tool call {name}:\n{m.get('content') or ''}"})
        else:
            out.append({"role": str(m.get("role")), "content": str(m.get("content") or "")})
    return out


def with_tools_prompt(messages: list[dict[str, str]], prompt: str) -> list[dict[str, str]]:
    """The tool listing in the system turn (added, or appended to the one there)."""
    if messages and messages[0].get("role") == "system":
        first = {"role": "system", "content": f"{messages[0]['content']}\n\n{prompt}"}
        return [first, *messages[1:]]
    return [{"role": "system", "content": prompt}, *messages]


def repair_calls_messages(messages: list[dict[str, Any]], calls: list[ToolCall], text: str,
                          errors: list[str]) -> list[dict[str, Any]]:
    """Re-ask a server with native tools: its bad calls shown as text, then the problems."""
    shown = json.dumps([{"name": c.name, "arguments": c.arguments} for c in calls],
                       ensure_ascii=False)
    listed = "\n".join(f"- {e}" for e in errors)
    return [*messages, {"role": "assistant", "content": f"{text}\n{shown}".strip()},
            {"role": "user", "content": REPAIR_CALLS.format(errors=listed)}]


# --- validation ---------------------------------------------------------------------------------


def call_errors(calls: list[ToolCall], tools: list[dict[str, Any]],
                tool_choice: Any = None, max_calls: int | None = None) -> list[str]:
    """Why ``calls`` are malformed: an unknown (or not allowed) tool, arguments that are not
    a JSON object or fail the tool's schema. [] when every call is valid."""
    allowed = {function_of(t).get("name"): t for t in allowed_tools(tools, tool_choice)}
    errors: list[str] = []
    for i, call in enumerate(calls):
        where = f"$.tool_calls[{i}]"
        tool = allowed.get(call.name)
        if tool is None:
            errors.append(f"{where}.name: unknown tool {call.name!r}; "
                          f"the tools are {', '.join(map(str, allowed))}")
            continue
        if not isinstance(call.arguments, dict):
            errors.append(f"{where}.arguments: not a JSON object: {str(call.arguments)[:80]!r}")
            continue
        errors += [f"{where}.arguments{e[1:]}" for e in validate(call.arguments,
                                                                   parameters_of(tool))]
    if not calls and must_call(tool_choice):
        errors.append("$.tool_calls: a tool call is required")
    if max_calls is not None and len(calls) > max_calls:
        errors.append(f"$.tool_calls: {len(calls)} calls, at most {max_calls} allowed")
    return errors


def parse_tool_answer(text: str, tools: list[dict[str, Any]], tool_choice: Any,
                      make_id: Any, max_calls: int | None = None
                      ) -> tuple[list[ToolCall] | None, str, list[str]]:
    """(calls or None, content, errors) from a constrained answer. ``make_id(i)`` names the
    i-th call (deterministic: from the request's cache key)."""
    try:
        value = extract_json(text)
    except ValueError as exc:
        return None, "", [str(exc)]
    if isinstance(value, list):  # small models answer the list of calls bare
        value = {"tool_calls": value}
    if not isinstance(value, dict):
        return None, "", ["$: expected an object with tool_calls or content"]
    if "tool_calls" in value:
        raw = value["tool_calls"]
        if isinstance(raw, dict):
            raw = [raw]
        if not isinstance(raw, list) or not raw:
            return None, "", ["$.tool_calls: expected a non-empty list of calls"]
        calls, errors = [], []
        for i, item in enumerate(raw):
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                errors.append(f"$.tool_calls[{i}]: expected {{\"name\", \"arguments\"}}")
                continue
            calls.append(ToolCall(id=make_id(i), name=item["name"],
                                  arguments=parse_arguments(item.get("arguments", {}))))
        errors += call_errors(calls, tools, tool_choice, max_calls)
        return calls, str(value.get("content") or ""), errors
    if isinstance(value.get("content"), str):
        if must_call(tool_choice):
            return None, value["content"], ["$.tool_calls: a tool call is required"]
        return None, value["content"], []
    return None, "", ["$: expected an object with tool_calls or content"]
