"""Tool-use records as training turns: the OpenAI conversation (assistant ``tool_calls``,
``tool`` results, ``tools``) and its ShareGPT (``function_call`` / ``observation``) and Hermes
(``<tool_call>`` / ``<tool_response>`` text) renderings, plus readers that parse each export
back into calls (the round-trip tests use them; so can a user checking an export).

A tool record is one with a ``tools`` list (the functions offered) or tool calls: an APIGen
record (``messages``: request, assistant calls, results; ``tool_calls``, ``tool_results``) or an
agent trajectory (``messages`` in the OpenAI shape). Records without messages are rebuilt from
their columns: user request → assistant calls → results → a final answer when there is one.

Arguments: HF chat templates (Qwen2.5, Llama 3.1, LFM2) and LLaMA-Factory need a JSON object
(a string would be encoded twice), OpenAI's fine-tuning files need JSON text; ``as_text``
picks the second.
"""

from __future__ import annotations

import json
import re
from typing import Any

TOOL_NAMES = ("tools",)
#: A column with the final answer after the tool results (rebuilt conversations only).
FINAL_NAMES = ("final_answer", "final_response")


class BadTurns(ValueError):
    """The turns cannot be rendered (the message is the reason, for a counted skip)."""


def parse_json(value: Any) -> Any:
    """JSON text parsed (the text itself when it is not JSON); anything else as is."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def is_tool_turns(turns: Any) -> bool:
    return isinstance(turns, list) and any(
        isinstance(t, dict) and (t.get("tool_calls") or t.get("role") == "tool") for t in turns)


def is_tool_record(record: dict[str, Any], messages: str | None = None) -> bool:
    """The record offers tools or holds tool calls (in its messages or a column)."""
    if isinstance(record.get("tools"), list) and record["tools"]:
        return True
    if messages and is_tool_turns(record.get(messages)):
        return True
    return bool(isinstance(record.get("tool_calls"), list) and record["tool_calls"])


def tools_of(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The offered tools as OpenAI tools (``{"type": "function", "function": {...}}``)."""
    tools = parse_json(record.get("tools"))
    if not isinstance(tools, list):
        return []
    return [t if isinstance(t, dict) and t.get("type") == "function" and "function" in t
            else {"type": "function", "function": t} for t in tools if isinstance(t, dict)]


def _call(call: Any, index: int, as_text: bool) -> dict[str, Any]:
    """One call in the OpenAI shape, from that shape or synthloom's ``{id, name, arguments}``."""
    if not isinstance(call, dict):
        raise BadTurns("a tool call is not an object")
    fn = call.get("function") if isinstance(call.get("function"), dict) else call
    name = fn.get("name")
    if not isinstance(name, str) or not name:
        raise BadTurns("a tool call has no name")
    args = parse_json(fn.get("arguments"))
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise BadTurns(f"tool call {name}: arguments are not a JSON object")
    return {"id": str(call.get("id") or f"call_{index}"), "type": "function",
            "function": {"name": name,
                         "arguments": json.dumps(args, ensure_ascii=False) if as_text else args}}


def _content(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def normalize_turn(turn: dict[str, Any], as_text: bool = False) -> dict[str, Any]:
    """An assistant turn with calls or a tool result in the OpenAI shape (content as text, ""
    for none; a result names its call and tool). Other turns are returned as they are."""
    role = turn.get("role")
    if role == "assistant" and turn.get("tool_calls"):
        out: dict[str, Any] = {"role": "assistant", "content": _content(turn.get("content")),
                               "tool_calls": [_call(c, i, as_text)
                                              for i, c in enumerate(turn["tool_calls"])]}
    elif role == "tool":
        out = {"role": "tool", "tool_call_id": str(turn.get("tool_call_id") or ""),
               "name": str(turn.get("name") or ""), "content": _content(turn.get("content"))}
    else:
        return turn
    for key in ("reasoning_content", "reasoning"):
        if isinstance(turn.get(key), str) and turn[key].strip():
            out["reasoning_content"] = turn[key]
    return out


def turns_from_columns(record: dict[str, Any], instruction: str) -> list[dict[str, Any]]:
    """The conversation of a record without messages: request, assistant calls (with the text
    the model gave beside them), results matched to their calls, the final answer if any."""
    request = record.get(instruction)
    if not isinstance(request, str) or not request.strip():
        raise BadTurns(f"{instruction} missing or empty")
    calls = record.get("tool_calls") or []
    turns: list[dict[str, Any]] = [{"role": "user", "content": request}]
    answer = record.get("answer")
    if calls:
        turns.append({"role": "assistant", "content": _content(answer),
                      "tool_calls": [_call(c, i, False) for i, c in enumerate(calls)]})
        results = {str(r.get("tool_call_id")): r for r in record.get("tool_results") or []
                   if isinstance(r, dict)}
        for call in turns[-1]["tool_calls"]:
            got = results.get(call["id"])
            if got is None:
                raise BadTurns(f"tool call {call['function']['name']} has no result "
                               "(not executed)")
            turns.append({"role": "tool", "tool_call_id": call["id"],
                          "name": call["function"]["name"], "content": _content(got["content"])})
        final = next((record[k] for k in FINAL_NAMES if isinstance(record.get(k), str)
                      and record[k].strip()), None)
        if final:
            turns.append({"role": "assistant", "content": final})
    elif isinstance(answer, str) and answer.strip():  # no call (irrelevance): the words
        turns.append({"role": "assistant", "content": answer})
    else:
        raise BadTurns("no tool call and no answer")
    return turns


# --- ShareGPT (LLaMA-Factory): function_call / observation turns -------------------------------


def sharegpt_turns(turns: list[dict[str, Any]]) -> list[dict[str, str]]:
    """OpenAI turns as LLaMA-Factory's ShareGPT: the calls of one assistant turn are one
    ``function_call`` turn (``{"name", "arguments"}``, a list for parallel calls), the results
    after it one ``observation`` (a JSON list when there are several). LLaMA-Factory reads
    human/observation and gpt/function_call turns alternating and trains on the last, so
    results after the last call (APIGen's records end there) are left out. Text the model gave
    beside its calls has no place in a function_call turn and is left out too."""
    out: list[dict[str, str]] = []
    results: list[Any] = []

    def flush() -> None:
        if results:
            value = results[0] if len(results) == 1 else json.dumps(
                [parse_json(r) for r in results], ensure_ascii=False)
            out.append({"from": "observation", "value": value})
            results.clear()

    for turn in turns:
        role = turn["role"]
        if role == "tool":
            results.append(turn["content"])
            continue
        flush()
        if role == "assistant" and turn.get("tool_calls"):
            calls = [{"name": c["function"]["name"],
                      "arguments": parse_json(c["function"]["arguments"])}
                     for c in turn["tool_calls"]]
            value = json.dumps(calls[0] if len(calls) == 1 else calls, ensure_ascii=False)
            if turn["content"].startswith("<think>"):  # LLaMA-Factory splits its thought_words
                value = turn["content"].split("</think>", 1)[0] + "</think>\n\n" + value
            out.append({"from": "function_call", "value": value})
        else:
            tag = {"system": "system", "user": "human", "assistant": "gpt"}.get(role)
            if tag is None:
                raise BadTurns(f"a turn with role {role!r}")
            out.append({"from": tag, "value": turn["content"]})
    body = out[1:] if out and out[0]["from"] == "system" else out
    for i, turn in enumerate(body):
        allowed = ("human", "observation") if i % 2 == 0 else ("gpt", "function_call")
        if turn["from"] not in allowed:
            raise BadTurns(f"turn {i + 1} is {turn['from']}, LLaMA-Factory expects one of "
                           f"{'/'.join(allowed)} there")
    if not body or len(body) % 2:
        raise BadTurns("the conversation does not end with the model's turn")
    return out


# --- Hermes: <tool_call> / <tool_response> text --------------------------------------------------

HERMES_SYSTEM = (
    "You are a function calling AI model. You are provided with function signatures within "
    "<tools></tools> XML tags. You may call one or more functions to assist with the user "
    "query. Don't make assumptions about what values to plug into functions.\n<tools>\n"
    "{tools}\n</tools>\nFor each function call return a json object with function name and "
    "arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n"
    '{{"name": <function-name>, "arguments": <args-dict>}}\n</tool_call>')
TOOL_CALL = re.compile(r"<tool_call>\s*(.*?)\s*</tool_call>", re.DOTALL)
TOOL_RESPONSE = re.compile(r"<tool_response>\s*(.*?)\s*</tool_response>", re.DOTALL)


def hermes_turns(turns: list[dict[str, Any]], tools: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Plain-text turns in the Hermes function-calling style (NousResearch's Hermes 2 Pro
    format, which Qwen's templates also use): the tool signatures in the system turn, each
    call a ``<tool_call>{json}</tool_call>`` line of the assistant's text, each result a
    ``tool`` turn ``<tool_response>{json}</tool_response>`` (several results of one step in one
    turn)."""
    listing = "\n".join(json.dumps(t["function"], ensure_ascii=False) for t in tools)
    out: list[dict[str, str]] = []
    system = HERMES_SYSTEM.format(tools=listing) if tools else ""
    for turn in turns:
        role, content = turn["role"], turn["content"]
        if role == "system":
            system = f"{content}\n\n{system}" if system else content
        elif role == "tool":
            block = "<tool_response>\n" + json.dumps(
                {"name": turn.get("name") or "", "content": parse_json(content)},
                ensure_ascii=False) + "\n</tool_response>"
            if out and out[-1]["role"] == "tool":
                out[-1]["content"] += "\n" + block
            else:
                out.append({"role": "tool", "content": block})
        elif role == "assistant" and turn.get("tool_calls"):
            blocks = ["<tool_call>\n" + json.dumps(
                {"name": c["function"]["name"],
                 "arguments": parse_json(c["function"]["arguments"])},
                ensure_ascii=False) + "\n</tool_call>" for c in turn["tool_calls"]]
            text = "\n".join(([content] if content else []) + blocks)
            out.append({"role": "assistant", "content": text})
        else:
            out.append({"role": role, "content": content})
    return ([{"role": "system", "content": system}] if system else []) + out


# --- reading exports back -----------------------------------------------------------------------

Call = tuple[str, Any]


def calls_in_messages(messages: list[dict[str, Any]]) -> list[Call]:
    """``(name, arguments)`` of every call in an OpenAI ``messages`` row, in order."""
    return [(c["function"]["name"], parse_json(c["function"]["arguments"]))
            for m in messages for c in m.get("tool_calls") or []]


def calls_in_sharegpt(conversations: list[dict[str, Any]]) -> list[Call]:
    out: list[Call] = []
    for turn in conversations:
        if turn.get("from") == "function_call":
            value = str(turn["value"]).split("</think>")[-1]
            calls = json.loads(value)
            out += [(c["name"], c["arguments"])
                    for c in (calls if isinstance(calls, list) else [calls])]
    return out


def calls_in_hermes(messages: list[dict[str, Any]]) -> list[Call]:
    out: list[Call] = []
    for m in messages:
        if m.get("role") == "assistant":
            for block in TOOL_CALL.findall(str(m.get("content") or "")):
                call = json.loads(block)
                out.append((call["name"], call["arguments"]))
    return out


def results_in_hermes(messages: list[dict[str, Any]]) -> list[Any]:
    return [json.loads(b)["content"] for m in messages if m.get("role") == "tool"
            for b in TOOL_RESPONSE.findall(str(m.get("content") or ""))]
