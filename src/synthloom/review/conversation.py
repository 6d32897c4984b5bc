"""A record's conversation as turns for the row page: chat turns (``messages`` /
``conversations``), assistant tool calls (name and arguments) and tool results (which call
they answer), so a reviewer reads a tool-use record (APIGen's, an agent trajectory) as the
exchange it is, not as nested JSON. A record with tool calls but no messages (an APIGen
candidate rejected before execution) shows its request and calls, each marked unexecuted."""

from __future__ import annotations

import json
from typing import Any

SHAREGPT_ROLES = {"human": "user", "gpt": "assistant", "observation": "tool",
                  "function_call": "assistant"}


def _parsed(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False)


def _calls(raw: Any) -> list[dict[str, Any]]:
    """Calls in the OpenAI shape or synthloom's ``{id, name, arguments}``, for display."""
    out = []
    for call in raw if isinstance(raw, list) else []:
        if not isinstance(call, dict):
            continue
        fn = call.get("function") if isinstance(call.get("function"), dict) else call
        out.append({"id": str(call.get("id") or ""), "name": str(fn.get("name") or "?"),
                    "arguments": _text(_parsed(fn.get("arguments")))})
    return out


def _turn(turn: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    role = str(turn.get("role") or SHAREGPT_ROLES.get(str(turn.get("from")), turn.get("from")))
    content = turn.get("content", turn.get("value"))
    out: dict[str, Any] = {"role": role, "content": _text(content), "calls": [],
                           "result_of": None, "reasoning": ""}
    if turn.get("tool_calls"):
        out["calls"] = _calls(turn["tool_calls"])
        names.update({c["id"]: c["name"] for c in out["calls"]})
    elif turn.get("from") == "function_call":  # ShareGPT: the calls are the turn's JSON text
        parsed = _parsed(content)
        out["calls"] = _calls(parsed if isinstance(parsed, list) else [parsed])
        out["content"] = ""
    if role == "tool":
        call_id = str(turn.get("tool_call_id") or "")
        out["result_of"] = " ".join(x for x in (turn.get("name") or names.get(call_id, ""),
                                                call_id and f"({call_id})") if x) or "a call"
        out["content"] = _text(_parsed(content))
    thought = turn.get("reasoning_content") or turn.get("reasoning")
    if isinstance(thought, str):
        out["reasoning"] = thought
    return out


def conversation(record: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The record's turns (role, content, calls, result_of, reasoning), or None when it has
    no conversation to show."""
    for column in ("messages", "conversations"):
        turns = record.get(column)
        if isinstance(turns, list) and turns and all(isinstance(t, dict) for t in turns):
            names: dict[str, str] = {}
            return [_turn(t, names) for t in turns]
    calls = _calls(record.get("tool_calls"))
    request = next((record[k] for k in ("query", "instruction", "question", "prompt")
                    if isinstance(record.get(k), str)), None)
    if not calls or request is None:
        return None
    results = {str(r.get("tool_call_id")): r for r in record.get("tool_results") or []
               if isinstance(r, dict)}
    out = [{"role": "user", "content": request, "calls": [], "result_of": None,
            "reasoning": ""},
           {"role": "assistant", "content": _text(record.get("answer")), "calls": calls,
            "result_of": None, "reasoning": ""}]
    for call in calls:
        got = results.get(call["id"])
        out.append({"role": "tool", "calls": [], "reasoning": "",
                    "result_of": f"{call['name']} ({call['id']})" if call["id"] else call["name"],
                    "content": _text(got.get("content")) if got else "(not executed)"})
    return out
