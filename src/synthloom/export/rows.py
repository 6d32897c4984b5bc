"""The shipped export formats: raw (jsonl, parquet, hf), chat (alpaca, sharegpt, messages,
prompt-completion) and preference (dpo, dpo-chat), each one ``@register_format`` (see
registry.py; docs/export.md has the table this module's registrations make).

Columns are mapped by options or found by name (instruction/response, question/answer,
prompt/chosen/rejected). Reasoning (a ``<column>_reasoning`` column) is kept in its own field,
rendered as ``<think>`` tags, or dropped — only as asked, never merged silently.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from synthloom.core import jsonio
from synthloom.core.errors import SynthloomError
from synthloom.export.registry import ColumnMap, Skip, register_format
from synthloom.export.tooluse import (
    BadTurns,
    hermes_turns,
    is_tool_record,
    is_tool_turns,
    normalize_turn,
    sharegpt_turns,
    tools_of,
    turns_from_columns,
)

INSTRUCTION_NAMES = ("instruction", "question", "prompt", "query", "problem")
# Generated columns come before the inputs' gold ones: STaR's rationale, the arithmetic
# scratchpad and PoT's program are what a recipe made, ``answer`` is often the input's.
RESPONSE_NAMES = ("response", "rationale", "scratchpad", "program_text", "output", "completion",
                  "solution", "answer")
PROMPT_NAMES = ("prompt", "instruction", "question", "query")
MESSAGES_NAMES = ("messages", "conversations")
ROLE_TO_SHAREGPT = {"system": "system", "user": "human", "assistant": "gpt", "tool": "observation"}
SHAREGPT_TO_ROLE = {v: k for k, v in ROLE_TO_SHAREGPT.items()} | {"function_call": "assistant"}


def detect(records: list[dict[str, Any]], names: tuple[str, ...], kind: type = str) -> str | None:
    """The first candidate name present (with a value of ``kind``) in the sampled records."""
    for name in names:
        if any(isinstance(r.get(name), kind) for r in records):
            return name
    return None


# --- finding the columns ----------------------------------------------------------------------


def _need(fmt: str, sample: list[dict[str, Any]], key: str, value: str | None,
          names: tuple[str, ...], option: str) -> str:
    found = value or detect(sample, names)
    if found is None:
        seen = sorted({k for r in sample for k in r if k != "_meta"})
        raise SynthloomError(f"format {fmt}: no {key} column found (looked for "
                             f"{', '.join(names)}; columns: {', '.join(seen) or 'none'}); "
                             f"pass {option}")
    return found


def pair_columns(fmt: str, sample: list[dict[str, Any]], given: ColumnMap) -> dict[str, Any]:
    """An instruction and a response column (and Alpaca's ``input``, the reasoning column)."""
    cols: dict[str, Any] = {
        "instruction": _need(fmt, sample, "instruction", given.instruction, INSTRUCTION_NAMES,
                             "--instruction-column"),
        "response": _need(fmt, sample, "response", given.response, RESPONSE_NAMES,
                          "--response-column")}
    cols["input"] = given.input or ("input" if fmt == "alpaca" and detect(sample, ("input",))
                                    else None)
    cols["reasoning"] = given.reasoning or f"{cols['response']}_reasoning"
    return cols


def chat_columns(fmt: str, sample: list[dict[str, Any]], given: ColumnMap) -> dict[str, Any]:
    """A messages/conversations list column when there is one (and no instruction/response
    was named), else an instruction/response pair."""
    messages = given.messages or (None if given.instruction or given.response
                                  else detect(sample, MESSAGES_NAMES, list))
    cols = {"messages": messages} if messages else pair_columns(fmt, sample, given)
    # Tool records (APIGen's, agent trajectories): the turns keep their calls and results, the
    # rows get the offered tools.
    cols["tools"] = "tools" if any(is_tool_record(r, messages) for r in sample) else None
    return cols


def preference_columns(fmt: str, sample: list[dict[str, Any]],
                       given: ColumnMap) -> dict[str, Any]:
    return {"prompt": _need(fmt, sample, "prompt", given.prompt, PROMPT_NAMES, "--prompt-column"),
            "chosen": _need(fmt, sample, "chosen", given.chosen, ("chosen",), "--chosen-column"),
            "rejected": _need(fmt, sample, "rejected", given.rejected, ("rejected",),
                              "--rejected-column")}


# --- rows -------------------------------------------------------------------------------------


def _text(record: dict[str, Any], column: str) -> str:
    value = record.get(column)
    if not isinstance(value, str) or not value.strip():
        raise Skip(f"{column} missing or empty")
    return value


def _think(answer: str, reasoning: str | None, mode: str) -> str:
    if mode == "think-tags" and reasoning:
        return f"<think>\n{reasoning.strip()}\n</think>\n\n{answer}"
    return answer


def _reasoning(record: dict[str, Any], column: str | None) -> str | None:
    value = record.get(column) if column else None
    return value if isinstance(value, str) and value.strip() else None


def lookup(record: dict[str, Any], path: str) -> Any:
    """``record[path]``, or a dotted path into nested objects (``system_prompt.text``)."""
    if path in record:
        return record[path]
    value: Any = record
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def system_of(record: dict[str, Any], cols: dict[str, Any]) -> str | None:
    if cols.get("system_column"):
        value = lookup(record, cols["system_column"])
        return value if isinstance(value, str) and value.strip() else None
    return cols.get("system")


def check_system_column(sample: list[dict[str, Any]], column: str) -> None:
    """A --system-column that names no text is an error, not an empty system prompt: a missing
    column would still be mapped in dataset_info.json (LLaMA-Factory: KeyError), an object
    (Orca's ``system_prompt``) would drop every system prompt."""
    values = [lookup(r, column) for r in sample]
    if any(isinstance(v, str) and v.strip() for v in values):
        return
    objects = [v for v in values if isinstance(v, dict)]
    if objects:
        keys = sorted({k for o in objects for k, v in o.items() if isinstance(v, str)})
        example = f"{column}.{keys[0]}" if keys else f"{column}.KEY"
        raise SynthloomError(f"--system-column {column}: it holds an object, not text (keys: "
                             f"{', '.join(sorted({k for o in objects for k in o})) or 'none'});"
                             f" name the text inside with a dotted path, e.g. --system-column "
                             f"{example}")
    seen = sorted({k for r in sample for k in r if k != "_meta"})
    raise SynthloomError(f"--system-column {column}: no text there in the first {len(sample)} "
                         f"records (columns: {', '.join(seen) or 'none'})")


def _turns(record: dict[str, Any], column: str) -> list[dict[str, Any]]:
    """A messages/conversations column as OpenAI-style turns (tool calls and results in the
    OpenAI shape, arguments as objects)."""
    value = record.get(column)
    if not isinstance(value, list) or not value:
        raise Skip(f"{column} missing or not a list of turns")
    turns = []
    for turn in value:
        if not isinstance(turn, dict):
            raise Skip(f"{column} has a turn that is not an object")
        if turn.get("tool_calls") or turn.get("role") == "tool":
            try:
                turns.append(normalize_turn(turn))
            except BadTurns as exc:
                raise Skip(f"{column}: {exc}") from None
            continue
        role = turn.get("role") or SHAREGPT_TO_ROLE.get(str(turn.get("from")))
        content = turn.get("content", turn.get("value"))
        if role is None or not isinstance(content, str):
            raise Skip(f"{column} has a turn without role/content")
        out = {"role": role, "content": content}
        thought = turn.get("reasoning_content") or turn.get("reasoning")
        if isinstance(thought, str) and thought.strip():
            out["reasoning_content"] = thought
        turns.append(out)
    return turns


def chat_turns(record: dict[str, Any], cols: dict[str, Any],
               mode: str) -> list[dict[str, Any]]:
    """The record as OpenAI-style turns; reasoning per ``mode`` on the assistant turns."""
    if cols.get("messages"):
        turns = _turns(record, cols["messages"])
    elif cols.get("tools") and record.get("tool_calls"):
        try:
            turns = turns_from_columns(record, cols["instruction"])
        except BadTurns as exc:
            raise Skip(str(exc)) from None
    else:
        user = _text(record, cols["instruction"])
        extra = record.get(cols["input"]) if cols.get("input") else None
        if isinstance(extra, str) and extra.strip():
            user = f"{user}\n\n{extra}"
        turns = [{"role": "user", "content": user},
                 {"role": "assistant", "content": _text(record, cols["response"])}]
        thought = _reasoning(record, cols.get("reasoning"))
        if thought:
            turns[-1]["reasoning_content"] = thought
    system = system_of(record, cols)
    if system and turns[0]["role"] != "system":
        turns.insert(0, {"role": "system", "content": system})
    for turn in turns:
        thought = turn.pop("reasoning_content", None)
        if turn["role"] == "assistant" and thought:
            if mode == "field":
                turn["reasoning_content"] = thought
            else:
                turn["content"] = _think(turn["content"], thought, mode)
    return turns




def _turns_column(values: list[Any]) -> bool:
    """Every value a list of chat turns (``role``/``content`` or ``from``/``value`` text)."""
    return all(isinstance(v, list) and all(
        isinstance(t, dict) and all(isinstance(x, str) for x in t.values())
        and ({"role", "content"} <= set(t) or {"from", "value"} <= set(t)) for t in v)
        for v in values if v is not None)


def arrow_table(rows: list[dict[str, Any]], stable: bool = False) -> Any:
    """A pyarrow Table over the union of the rows' keys. ``_meta`` and any column whose values
    do not share one Arrow type are stored as JSON strings (so every row fits).

    ``stable``: a column's type must not depend on which rows were exported (two exports of one
    recipe concatenate): every nested column but chat turns is a JSON string, a column with no
    value is a string column."""
    try:
        import pyarrow as pa
    except ImportError:
        raise SynthloomError('parquet and hf exports need pyarrow: pip install '
                             '"synthloom[parquet]"') from None
    names: dict[str, None] = {}
    for row in rows:
        names.update(dict.fromkeys(row))
    arrays = {}
    for name in names:
        values = [row.get(name) for row in rows]
        try:
            if name == "_meta":
                raise TypeError("provenance is stored as JSON")
            if stable and any(isinstance(v, list | dict) for v in values) and \
                    not _turns_column(values):
                raise TypeError("nested values are stored as JSON")
            arrays[name] = pa.array(values)
            if stable and arrays[name].type == pa.null():
                arrays[name] = pa.array(values, type=pa.string())
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
            arrays[name] = pa.array([None if v is None else json.dumps(v, ensure_ascii=False)
                                     for v in values], type=pa.string())
    return pa.table(arrays)


# --- raw formats: every column, one type per column -------------------------------------------


def raw_columns(fmt: str, sample: list[dict[str, Any]], given: ColumnMap) -> dict[str, Any]:
    return {"rename_text": rename_text(sample)}


def rename_text(sample: list[dict[str, Any]]) -> bool:
    """Raw exports of training records write ``text`` (a source document, or a task's own
    field) as ``source_text``: TRL's SFTTrainer trains on a ``text`` column by default, and it
    is not the training target of an instruction/answer, conversation or preference record."""
    if not any("text" in r for r in sample) or any("source_text" in r for r in sample):
        return False
    pair = detect(sample, INSTRUCTION_NAMES) and detect(sample, RESPONSE_NAMES)
    return bool(pair or detect(sample, MESSAGES_NAMES, list) or detect(sample, ("chosen",)))


RAW_HELP = "every column; `_meta` and nested columns (but chat turns) as JSON strings"
RAW_READERS = "no trainer as is: every column; pick a chat format to train"


def raw_row(record: dict[str, Any], cols: dict[str, Any], mode: str,
            meta: bool) -> dict[str, Any]:
    row = {k: v for k, v in record.items() if k != "_meta"}
    if cols.get("rename_text") and "text" in row:
        row["source_text"] = row.pop("text")
    if mode != "field":
        for key in [k for k in row if k.endswith("_reasoning")]:
            base = key[: -len("_reasoning")]
            thought = row.pop(key)
            if mode == "think-tags" and isinstance(row.get(base), str):
                row[base] = _think(row[base], thought if isinstance(thought, str) else None,
                                   mode)
    if meta and "_meta" in record:
        row["_meta"] = record["_meta"]
    return row


def _is_turns(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(
        isinstance(t, dict) and all(isinstance(x, str) for x in t.values())
        and ({"role", "content"} <= set(t) or {"from", "value"} <= set(t)) for t in value)


def _kind(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return "turns" if isinstance(value, list) else type(value).__name__


def write_stable_jsonl(rows: Iterable[dict[str, Any]], path: Path) -> None:
    """JSONL whose columns each have one Arrow type whatever rows were exported (the parquet
    rule): ``_meta`` and nested values other than chat turns are JSON strings, and a column
    whose values still differ in kind (text in one row, a number in another) is text in every
    row. ``datasets`` 4.0 refuses a column that changes type (ArrowInvalid), and two exports of
    one recipe with different rows must concatenate."""
    tmp = path.with_name(path.name + ".tmp")
    kinds: dict[str, set[str]] = {}
    with tmp.open("wb") as handle:
        for row in rows:
            # Nested values as json.dumps text, the same strings as the parquet export's.
            row = {k: v if k != "_meta" and (not isinstance(v, list | dict) or _is_turns(v))
                   else json.dumps(v, ensure_ascii=False) for k, v in row.items()}
            for key, value in row.items():
                kind = _kind(value)
                if kind:
                    kinds.setdefault(key, set()).add(kind)
            handle.write(jsonio.dumps_line(row))
    mixed = {k for k, seen in kinds.items() if len(seen) > 1}
    if mixed:  # rare: a second pass makes those columns text
        fixed = path.with_name(path.name + ".tmp2")
        with tmp.open("rb") as src, fixed.open("wb") as dst:
            for line in src:
                row = jsonio.loads(line)
                for key in mixed & row.keys():
                    value = row[key]
                    if value is not None and not isinstance(value, str):
                        row[key] = json.dumps(value, ensure_ascii=False)
                dst.write(jsonio.dumps_line(row))
        os.replace(fixed, tmp)
    os.replace(tmp, path)


def write_parquet(rows: Iterable[dict[str, Any]], path: Path) -> None:
    import pyarrow.parquet as pq

    table = arrow_table(list(rows), stable=True)
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def write_hf(rows: Iterable[dict[str, Any]], path: Path) -> None:
    table = arrow_table(list(rows), stable=True)
    try:
        import datasets
    except ImportError:
        raise SynthloomError('the hf format needs the datasets package: pip install '
                             '"synthloom[hf]"') from None
    datasets.disable_progress_bars()  # the CLI prints one line; bars would garble it
    datasets.Dataset(table).save_to_disk(str(path))


register_format("jsonl", columns=raw_columns, tools=True, write=write_stable_jsonl, help=RAW_HELP,
                readers=RAW_READERS, reasoning="field")(raw_row)
register_format("parquet", columns=raw_columns, tools=True, write=write_parquet, help=RAW_HELP,
                readers=RAW_READERS, reasoning="field", file="train.parquet",
                suffix=".parquet")(raw_row)
register_format("hf", columns=raw_columns, tools=True, write=write_hf, reasoning="field", file=".",
                suffix="", help=RAW_HELP + "; load with `datasets.load_from_disk(FOLDER)`",
                readers=RAW_READERS)(raw_row)


# --- chat and preference formats -----------------------------------------------------------

def with_id(row: dict[str, Any], record: dict[str, Any], meta: bool) -> dict[str, Any]:
    """Chat formats carry the record ``id`` (provenance) unless ``--no-meta``."""
    if meta and isinstance(record.get("_meta"), dict):
        row["id"] = record["_meta"].get("id")
    return row


@register_format(
    "alpaca", columns=pair_columns, targets=("llamafactory",),
    help="`instruction`, `input`, `output` (+ `system`, `reasoning` when present)",
    readers="LLaMA-Factory (dataset_info.json)",
    llamafactory=lambda file, cols, system: {"file_name": file, "columns": {
        "prompt": "instruction", "query": "input", "response": "output",
        **({"system": "system"} if system else {})}})
def alpaca_row(record: dict[str, Any], cols: dict[str, Any], mode: str,
               meta: bool) -> dict[str, Any]:
    response = _text(record, cols["response"])
    thought = _reasoning(record, cols["reasoning"])
    row = {"instruction": _text(record, cols["instruction"]),
           "input": record.get(cols["input"], "") if cols.get("input") else "",
           "output": _think(response, thought, mode)}
    if thought and mode == "field":
        row["reasoning"] = thought
    system = system_of(record, cols)
    if system:
        row["system"] = system
    return with_id(row, record, meta)


SHAREGPT_TAGS = {"role_tag": "from", "content_tag": "value", "user_tag": "human",
                 "assistant_tag": "gpt", "system_tag": "system", "observation_tag": "observation"}
MESSAGES_TAGS = {"role_tag": "role", "content_tag": "content", "user_tag": "user",
                 "assistant_tag": "assistant", "system_tag": "system", "observation_tag": "tool"}
#: LLaMA-Factory's tag for the model's calls (its default; named so the entry says it).
FUNCTION_TAG = {"function_tag": "function_call"}


def _with_tools(row: dict[str, Any], record: dict[str, Any], cols: dict[str, Any],
                as_text: bool = False) -> dict[str, Any]:
    """The offered tools as the row's ``tools`` column (JSON text for LLaMA-Factory, which
    ``json.loads`` it), when the export is of tool records and this one offers any."""
    tools = tools_of(record) if cols.get("tools") else []
    if tools:
        row["tools"] = json.dumps(tools, ensure_ascii=False) if as_text else tools
    return row


def _sharegpt_entry(file: str, cols: dict[str, Any], system: bool) -> dict[str, Any]:
    entry: dict[str, Any] = {"file_name": file, "formatting": "sharegpt",
                             "columns": {"messages": "conversations"}, "tags": SHAREGPT_TAGS}
    if cols.get("tools"):
        entry["columns"]["tools"] = "tools"
        entry["tags"] = SHAREGPT_TAGS | FUNCTION_TAG
    return entry


@register_format(
    "sharegpt", columns=chat_columns, targets=("llamafactory",), tools=True,
    help="`conversations: [{from: system/human/gpt, value}]`; tool records: `function_call` / "
         "`observation` turns and a `tools` column (JSON text)",
    readers="LLaMA-Factory only (dataset_info.json); not TRL: TRL maps no human/gpt roles, "
            "use --format messages or prompt-completion for TRL",
    caution="sharegpt is for LLaMA-Factory: TRL maps no human/gpt roles (with a Qwen-style "
            "template each example trains as the default system prompt alone); for TRL use "
            "--format messages, prompt-completion or dpo-chat (or --for trl)",
    llamafactory=_sharegpt_entry)
def sharegpt_row(record: dict[str, Any], cols: dict[str, Any], mode: str,
                 meta: bool) -> dict[str, Any]:
    turns = chat_turns(record, cols, mode)
    if cols.get("tools") or is_tool_turns(turns):
        try:
            conversations: list[dict[str, Any]] = sharegpt_turns(turns)
        except BadTurns as exc:
            raise Skip(str(exc)) from None
        return with_id(_with_tools({"conversations": conversations}, record, cols, True),
                       record, meta)
    conversations = []
    for turn in turns:
        entry = {"from": ROLE_TO_SHAREGPT.get(turn["role"], turn["role"]),
                 "value": turn["content"]}
        if "reasoning_content" in turn:
            entry["reasoning_content"] = turn["reasoning_content"]
        conversations.append(entry)
    return with_id({"conversations": conversations}, record, meta)


def _messages_entry(file: str, cols: dict[str, Any], system: bool) -> dict[str, Any]:
    if cols.get("tools"):
        # LLaMA-Factory's sharegpt reader sees no tool_calls; its openai reader does.
        return {"file_name": file, "formatting": "openai",
                "columns": {"messages": "messages", "tools": "tools"},
                "tags": MESSAGES_TAGS | FUNCTION_TAG}
    return {"file_name": file, "formatting": "sharegpt", "columns": {"messages": "messages"},
            "tags": MESSAGES_TAGS}


def _arguments_as_text(turns: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """OpenAI's fine-tuning files: arguments as JSON text, no empty content beside calls, a
    result answers its call by id alone (the chat API's tool message has no ``name``)."""
    out = []
    for turn in turns:
        if turn["role"] == "tool":
            turn = {k: v for k, v in turn.items() if k != "name"}
        if turn.get("tool_calls"):
            turn = {**turn, "tool_calls": [
                {**c, "function": {**c["function"], "arguments": json.dumps(
                    c["function"]["arguments"], ensure_ascii=False)}}
                for c in turn["tool_calls"]]}
            if not turn["content"]:
                del turn["content"]
        out.append(turn)
    return out


@register_format(
    "messages", columns=chat_columns, targets=("trl", "llamafactory", "openai"), tools=True,
    help="`messages: [{role, content}]` (OpenAI); tool records: assistant `tool_calls`, "
         "`tool` turns and a `tools` column",
    readers="TRL SFTTrainer (conversational), LLaMA-Factory (dataset_info.json), OpenAI "
            "fine-tuning",
    llamafactory=_messages_entry)
def messages_row(record: dict[str, Any], cols: dict[str, Any], mode: str,
                 meta: bool) -> dict[str, Any]:
    turns = chat_turns(record, cols, mode)
    if cols.get("tool_arguments") == "text":
        turns = _arguments_as_text(turns)
    return with_id(_with_tools({"messages": turns}, record, cols), record, meta)


@register_format(
    "prompt-completion", columns=chat_columns, targets=("trl",), tools=True,
    help="`prompt: [turns]`, `completion: [{role: assistant, ...}]` (message lists)",
    readers="TRL SFTTrainer (conversational prompt-completion: loss on the completion only)")
def prompt_completion_row(record: dict[str, Any], cols: dict[str, Any], mode: str,
                          meta: bool) -> dict[str, Any]:
    # TRL's conversational prompt-completion: the chat template is applied and the loss falls
    # on the completion (the last assistant turn) only.
    turns = chat_turns(record, cols, mode)
    while cols.get("tools") and len(turns) > 1 and turns[-1]["role"] == "tool":
        turns = turns[:-1]  # results after the last call are no completion (APIGen ends so)
    if turns[-1]["role"] != "assistant":
        raise Skip("the last turn is not the assistant's")
    return with_id(_with_tools({"prompt": turns[:-1], "completion": turns[-1:]}, record, cols),
                   record, meta)


@register_format(
    "hermes", columns=chat_columns, targets=("trl",), tools=True,
    help="`messages` as plain text: tools in the system turn, `<tool_call>{json}</tool_call>` "
         "in the assistant's text, `<tool_response>` in `tool` turns",
    readers="TRL SFTTrainer with a chat template without tool support (Hermes 2 Pro / ChatML "
            "style; the calls are text)")
def hermes_row(record: dict[str, Any], cols: dict[str, Any], mode: str,
               meta: bool) -> dict[str, Any]:
    return with_id({"messages": hermes_turns(chat_turns(record, cols, mode), tools_of(record))},
                   record, meta)


@register_format(
    "dpo", columns=preference_columns, targets=("llamafactory",), preference=True,
    help="`prompt`, `chosen`, `rejected` as text (+ `system`)",
    readers="LLaMA-Factory (ranking: true); TRL only as plain text (no chat template, no "
            "system): use --format dpo-chat for TRL",
    caution="dpo is plain text: TRL's DPOTrainer would apply no chat template and no system "
            "prompt (unlike SFT on messages); for TRL use --format dpo-chat (or --for trl)",
    llamafactory=lambda file, cols, system: {"file_name": file, "ranking": True, "columns": {
        "prompt": "prompt", "chosen": "chosen", "rejected": "rejected",
        **({"system": "system"} if system else {})}})
def dpo_row(record: dict[str, Any], cols: dict[str, Any], mode: str,
            meta: bool) -> dict[str, Any]:
    row: dict[str, Any] = {"prompt": _text(record, cols["prompt"])}
    for side in ("chosen", "rejected"):
        answer = _text(record, cols[side])
        thought = _reasoning(record, f"{cols[side]}_reasoning")
        row[side] = _think(answer, thought, mode)
        if thought and mode == "field":
            row[f"{side}_reasoning"] = thought
    system = system_of(record, cols)
    if system:
        row["system"] = system
    return with_id(row, record, meta)


@register_format(
    "dpo-chat", columns=preference_columns, targets=("trl",), preference=True,
    help="`prompt`, `chosen`, `rejected` as message lists",
    readers="TRL DPOTrainer (conversational preference: chat template and system applied)")
def dpo_chat_row(record: dict[str, Any], cols: dict[str, Any], mode: str,
                 meta: bool) -> dict[str, Any]:
    # TRL's conversational preference format: prompt, chosen and rejected as message lists, so
    # the chat template and the system prompt apply as in SFT on messages.
    prompt = [{"role": "user", "content": _text(record, cols["prompt"])}]
    system = system_of(record, cols)
    if system:
        prompt.insert(0, {"role": "system", "content": system})
    row: dict[str, Any] = {"prompt": prompt}
    for side in ("chosen", "rejected"):
        turn = {"role": "assistant", "content": _text(record, cols[side])}
        thought = _reasoning(record, f"{cols[side]}_reasoning")
        if thought and mode == "field":
            turn["reasoning_content"] = thought
        elif thought and mode == "think-tags":
            turn["content"] = _think(turn["content"], thought, mode)
        row[side] = [turn]
    return with_id(row, record, meta)

