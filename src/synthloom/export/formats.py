"""Export a run's records to training formats: jsonl, parquet, HF datasets, Alpaca, ShareGPT,
OpenAI messages, DPO, TRL's conversational prompt/completion and preference formats — plus a
LLaMA-Factory ``dataset_info.json`` entry and a dataset card.

Several exports may share one ``--out`` folder: each gets its own data file, its own
``dataset_info.json`` entry and its own ``configs:`` entry in the card (``.synthloom-exports.json``
remembers which export wrote which file), so no entry ever points at another export's rows.

Columns are mapped by options or found by name (instruction/response, question/answer,
prompt/chosen/rejected). Reasoning (a ``<column>_reasoning`` column) is kept in its own field,
rendered as ``<think>`` tags, or dropped — only as asked, never merged silently. A record that
lacks a needed column is skipped and counted by reason, never lost without a word.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from synthloom.core.errors import SynthloomError

FORMATS = ("jsonl", "parquet", "hf", "alpaca", "sharegpt", "messages", "dpo",
           "prompt-completion", "dpo-chat")
REASONING_MODES = ("auto", "field", "think-tags", "drop")
CHAT_FORMATS = ("alpaca", "sharegpt", "messages", "dpo", "prompt-completion", "dpo-chat")
RAW_FORMATS = ("jsonl", "parquet", "hf")
PREFERENCE_FORMATS = ("dpo", "dpo-chat")
#: Formats LLaMA-Factory reads (a dataset_info.json entry is written for them).
LLAMAFACTORY_FORMATS = ("alpaca", "sharegpt", "messages", "dpo")
#: Which trainer reads each format as meant (docs/export.md has the same table).
READERS = {
    "jsonl": "no trainer as is: every column; pick a chat format to train",
    "parquet": "no trainer as is: every column; pick a chat format to train",
    "hf": "no trainer as is: every column; pick a chat format to train",
    "alpaca": "LLaMA-Factory (dataset_info.json)",
    "sharegpt": "LLaMA-Factory (dataset_info.json); not TRL: TRL maps no human/gpt roles, "
                "use --format messages or prompt-completion for TRL",
    "messages": "TRL SFTTrainer (conversational) and LLaMA-Factory (dataset_info.json)",
    "dpo": "LLaMA-Factory (ranking: true); TRL only as plain text (no chat template, no "
           "system): use --format dpo-chat for TRL",
    "prompt-completion": "TRL SFTTrainer (conversational prompt-completion: loss on the "
                         "completion only)",
    "dpo-chat": "TRL DPOTrainer (conversational preference: chat template and system applied)",
}

INSTRUCTION_NAMES = ("instruction", "question", "prompt", "query", "problem")
# Generated columns come before the inputs' gold ones: STaR's rationale, the arithmetic
# scratchpad and PoT's program are what a recipe made, ``answer`` is often the input's.
RESPONSE_NAMES = ("response", "rationale", "scratchpad", "program_text", "output", "completion",
                  "solution", "answer")
PROMPT_NAMES = ("prompt", "instruction", "question", "query")
MESSAGES_NAMES = ("messages", "conversations")
ROLE_TO_SHAREGPT = {"system": "system", "user": "human", "assistant": "gpt", "tool": "observation"}
SHAREGPT_TO_ROLE = {v: k for k, v in ROLE_TO_SHAREGPT.items()} | {"function_call": "assistant"}


@dataclass
class ColumnMap:
    """Which record columns feed which fields; None = find by name."""

    instruction: str | None = None
    input: str | None = None
    response: str | None = None
    system: str | None = None
    system_column: str | None = None
    reasoning: str | None = None
    messages: str | None = None
    prompt: str | None = None
    chosen: str | None = None
    rejected: str | None = None


@dataclass
class ExportOptions:
    format: str
    columns: ColumnMap = field(default_factory=ColumnMap)
    #: ``auto``: ``think-tags`` for the chat formats, ``field`` for jsonl/parquet/hf (see
    #: :func:`reasoning_mode`).
    reasoning: str = "auto"
    #: Keep provenance: ``_meta`` in jsonl/parquet/hf, the record ``id`` in chat formats.
    meta: bool = True
    #: The run file to export (``data.jsonl``; any sink file; ``dropped.jsonl`` / ``failed.jsonl``).
    file: str = "data.jsonl"
    #: Dataset name for the card and the LLaMA-Factory entry (default: the recipe's name).
    name: str | None = None
    #: ``accepted`` (or ``rejected`` / ``pending``): only the records with that review
    #: decision (``synthloom review``), the reviewer's edited values applied.
    reviewed: str | None = None
    #: Export even when the run is not complete (interrupted, failed, or still running).
    force: bool = False


@dataclass
class ExportResult:
    out_dir: Path
    data_path: Path
    format: str
    name: str
    rows: int = 0
    read: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    columns: dict[str, Any] = field(default_factory=dict)
    dataset_info: dict[str, Any] | None = None
    card_path: Path | None = None
    #: With ``reviewed``: {"status", "file", "kept", "of", "edited"} for the card and CLI.
    reviewed: dict[str, Any] | None = None
    #: What the CLI prints before the counts: the run is partial, stopped, or forced.
    warnings: list[str] = field(default_factory=list)
    #: The export's name in dataset_info.json and the card's ``configs:`` (``name`` unless
    #: another export in the folder has it).
    key: str = ""
    #: Every export in the folder, this one first: ``{key, format, path}``.
    exports: list[dict[str, Any]] = field(default_factory=list)
    #: The reasoning mode applied (``auto`` resolved).
    reasoning: str = "field"
    #: Rows that carry a system prompt.
    with_system: int = 0
    #: Raw formats: ``text`` was written as ``source_text`` (TRL trains on ``text``).
    renamed_text: bool = False


def reasoning_mode(fmt: str, mode: str) -> str:
    """``auto`` → ``think-tags`` for chat formats: LLaMA-Factory maps no reasoning field (with a
    reasoning template such as qwen3 it trains on an empty ``<think></think>``), and reasoning
    chat templates (Qwen3's) split ``<think>`` out of the content themselves, so TRL sees the
    same thing; a template without reasoning keeps the text rather than dropping it silently.
    ``field`` for the raw formats (the column itself)."""
    if mode != "auto":
        return mode
    return "field" if fmt in RAW_FORMATS else "think-tags"


# --- is the run complete? ---------------------------------------------------------------------


def run_state(run_dir: str | Path) -> tuple[str | None, str | None]:
    """``(refusal, warning)`` about exporting (or reporting on) ``run_dir``'s files now.

    A refusal: a live process holds the folder's lock (a run is writing it), or the last run
    ended ``interrupted`` / ``failed`` (its outputs were not published: data.jsonl, if any, is
    an earlier complete run's). A warning: the last run was ``partial`` or ``stopped``.
    A folder without summary.json (not a synthloom run, or one that never ran) gets neither.
    """
    from synthloom.core.runlock import held_by

    run_dir = Path(run_dir)
    pid = held_by(run_dir)
    if pid is not None:
        who = f"pid {pid}" if pid else "a live process"
        return (f"{run_dir} is in use by a running `synthloom run` ({who}, lock "
                f"{run_dir / '.lock'}): its records are not final; wait for it to finish", None)
    try:
        summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None, None
    status = summary.get("status") if isinstance(summary, dict) else None
    if status in ("interrupted", "failed"):
        why = f" ({summary['error']})" if summary.get("error") else ""
        return (f"{run_dir}: the last run's status is {status!r}{why}; its outputs were not "
                "published (its partial rows are in *.partial files) and data.jsonl, if any, "
                "is an earlier complete run's; rerun the same command to finish it", None)
    if status == "partial":
        return None, (f"status 'partial': {summary.get('failed', '?')} items failed "
                      f"(failed.jsonl); the records that succeeded are exported")
    if status == "stopped":
        return None, (f"status 'stopped' ({summary.get('stopped_reason')}): the run is not "
                      "finished; rerun the same command to continue it")
    return None, None


# --- reading ----------------------------------------------------------------------------------


def read_records(run_dir: Path, file: str = "data.jsonl") -> Iterator[dict[str, Any]]:
    """Records of a run file. Rows of dropped/failed files are unwrapped to their record, with
    the reason (``_dropped_reason``) or the error (``_error``) as a column."""
    path = Path(file) if Path(file).is_absolute() else Path(run_dir) / file
    if not path.is_file():
        raise SynthloomError(f"no {file} in {run_dir} (is it a synthloom run folder?)")
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise SynthloomError(f"{path}:{number}: not JSON ({exc.msg})") from None
            if isinstance(row.get("record"), dict) and ("reason" in row or "error_class" in row):
                record = dict(row["record"])
                if "reason" in row:
                    record["_dropped_reason"] = f"{row['step']}: {row['reason']}"
                else:
                    record["_error"] = f"{row['step']}: {row['error_class']}: {row['message']}"
                row = record
            yield row


def detect(records: list[dict[str, Any]], names: tuple[str, ...], kind: type = str) -> str | None:
    """The first candidate name present (with a value of ``kind``) in the sampled records."""
    for name in names:
        if any(isinstance(r.get(name), kind) for r in records):
            return name
    return None


def resolve_columns(fmt: str, sample: list[dict[str, Any]], given: ColumnMap) -> dict[str, Any]:
    """Concrete column names for ``fmt``; SynthloomError naming the option when not found."""
    cols: dict[str, Any] = {}

    def need(key: str, value: str | None, names: tuple[str, ...], option: str) -> str:
        found = value or detect(sample, names)
        if found is None:
            seen = sorted({k for r in sample for k in r if k != "_meta"})
            raise SynthloomError(f"format {fmt}: no {key} column found (looked for "
                                 f"{', '.join(names)}; columns: {', '.join(seen) or 'none'}); "
                                 f"pass {option}")
        return found

    if fmt in PREFERENCE_FORMATS:
        cols["prompt"] = need("prompt", given.prompt, PROMPT_NAMES, "--prompt-column")
        cols["chosen"] = need("chosen", given.chosen, ("chosen",), "--chosen-column")
        cols["rejected"] = need("rejected", given.rejected, ("rejected",), "--rejected-column")
    elif fmt in CHAT_FORMATS:
        messages = given.messages or (None if given.instruction or given.response
                                      else detect(sample, MESSAGES_NAMES, list))
        if messages and fmt != "alpaca":
            cols["messages"] = messages
        else:
            cols["instruction"] = need("instruction", given.instruction, INSTRUCTION_NAMES,
                                       "--instruction-column")
            cols["response"] = need("response", given.response, RESPONSE_NAMES,
                                    "--response-column")
            cols["input"] = given.input or ("input" if fmt == "alpaca" and
                                            detect(sample, ("input",)) else None)
            cols["reasoning"] = given.reasoning or f"{cols['response']}_reasoning"
    if given.system_column:
        _check_system_column(sample, given.system_column)
    cols["system"] = given.system
    cols["system_column"] = given.system_column
    return cols


# --- rows per format --------------------------------------------------------------------------


class Skip(Exception):
    """This record cannot become a row of the format (the message is the reason)."""


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


def _system(record: dict[str, Any], cols: dict[str, Any]) -> str | None:
    if cols.get("system_column"):
        value = lookup(record, cols["system_column"])
        return value if isinstance(value, str) and value.strip() else None
    return cols.get("system")


def _check_system_column(sample: list[dict[str, Any]], column: str) -> None:
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


def _turns(record: dict[str, Any], column: str) -> list[dict[str, str]]:
    """A messages/conversations column as OpenAI-style turns."""
    value = record.get(column)
    if not isinstance(value, list) or not value:
        raise Skip(f"{column} missing or not a list of turns")
    turns = []
    for turn in value:
        if not isinstance(turn, dict):
            raise Skip(f"{column} has a turn that is not an object")
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
               mode: str) -> list[dict[str, str]]:
    """The record as OpenAI-style turns; reasoning per ``mode`` on the assistant turns."""
    if "messages" in cols:
        turns = _turns(record, cols["messages"])
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
    system = _system(record, cols)
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


def to_row(record: dict[str, Any], fmt: str, cols: dict[str, Any], mode: str,
           meta: bool) -> dict[str, Any]:
    """One record as one row of ``fmt``; raises Skip with the reason."""
    if fmt in RAW_FORMATS:
        return _raw_row(record, mode, meta, cols.get("rename_text", False))
    row: dict[str, Any]
    if fmt == "alpaca":
        response = _text(record, cols["response"])
        thought = _reasoning(record, cols["reasoning"])
        row = {"instruction": _text(record, cols["instruction"]),
               "input": record.get(cols["input"], "") if cols.get("input") else "",
               "output": _think(response, thought, mode)}
        if thought and mode == "field":
            row["reasoning"] = thought
        system = _system(record, cols)
        if system:
            row["system"] = system
    elif fmt == "sharegpt":
        turns = chat_turns(record, cols, mode)
        conversations = []
        for turn in turns:
            entry = {"from": ROLE_TO_SHAREGPT.get(turn["role"], turn["role"]),
                     "value": turn["content"]}
            if "reasoning_content" in turn:
                entry["reasoning_content"] = turn["reasoning_content"]
            conversations.append(entry)
        row = {"conversations": conversations}
    elif fmt == "messages":
        row = {"messages": chat_turns(record, cols, mode)}
    elif fmt == "prompt-completion":
        # TRL's conversational prompt-completion: the chat template is applied and the loss
        # falls on the completion (the last assistant turn) only.
        turns = chat_turns(record, cols, mode)
        if turns[-1]["role"] != "assistant":
            raise Skip("the last turn is not the assistant's")
        row = {"prompt": turns[:-1], "completion": turns[-1:]}
    elif fmt == "dpo-chat":
        # TRL's conversational preference format: prompt, chosen and rejected as message
        # lists, so the chat template and the system prompt apply as in SFT on messages.
        prompt = [{"role": "user", "content": _text(record, cols["prompt"])}]
        system = _system(record, cols)
        if system:
            prompt.insert(0, {"role": "system", "content": system})
        row = {"prompt": prompt}
        for side in ("chosen", "rejected"):
            turn = {"role": "assistant", "content": _text(record, cols[side])}
            thought = _reasoning(record, f"{cols[side]}_reasoning")
            if thought and mode == "field":
                turn["reasoning_content"] = thought
            elif thought and mode == "think-tags":
                turn["content"] = _think(turn["content"], thought, mode)
            row[side] = [turn]
    elif fmt == "dpo":
        row = {"prompt": _text(record, cols["prompt"])}
        for side in ("chosen", "rejected"):
            answer = _text(record, cols[side])
            thought = _reasoning(record, f"{cols[side]}_reasoning")
            row[side] = _think(answer, thought, mode)
            if thought and mode == "field":
                row[f"{side}_reasoning"] = thought
        system = _system(record, cols)
        if system:
            row["system"] = system
    else:
        raise SynthloomError(f"unknown format {fmt!r}; one of: {', '.join(FORMATS)}")
    if meta and isinstance(record.get("_meta"), dict):
        row["id"] = record["_meta"].get("id")
    return row


def _raw_row(record: dict[str, Any], mode: str, meta: bool,
             rename_text: bool = False) -> dict[str, Any]:
    row = {k: v for k, v in record.items() if k != "_meta"}
    if rename_text and "text" in row:
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


# --- writing ----------------------------------------------------------------------------------


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


REGISTRY = ".synthloom-exports.json"
#: The first export into a folder keeps the plain names (``train.jsonl``; an hf export is the
#: folder itself); a later export of another dataset or format gets ``KEY`` + suffix.
PLAIN_FILES = {"parquet": "train.parquet", "hf": "."}
SUFFIXES = {"parquet": ".parquet", "hf": ""}


def _read_registry(out_dir: Path) -> dict[str, dict[str, Any]]:
    """The folder's exports whose data still exists: ``{key: {name, format, path, run, file}}``."""
    try:
        reg = json.loads((out_dir / REGISTRY).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(reg, dict):
        return {}
    return {k: v for k, v in reg.items() if isinstance(v, dict) and isinstance(v.get("path"), str)
            and (out_dir / v["path"]).exists()}


def _llamafactory_info(out_dir: Path) -> dict[str, Any]:
    """The folder's LLaMA-Factory ``dataset_info.json`` ({} when none); an error when the file
    is another tool's (an hf ``save_to_disk`` folder's), which merging would corrupt."""
    path = out_dir / "dataset_info.json"
    if not path.is_file():
        return {}
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        info = None
    if not isinstance(info, dict) or not all(isinstance(v, dict) and "file_name" in v
                                             for v in info.values()):
        raise SynthloomError(f"{path} is not a LLaMA-Factory dataset_info.json (an hf export's "
                             "save_to_disk metadata?): export into another --out")
    return info


def plan_layout(out_dir: Path, run_dir: Path, file: str, fmt: str,
                name: str) -> tuple[str, str, str | None]:
    """``(key, data path relative to out_dir, warning)`` for this export.

    The same run file exported in the same format under the same name replaces its own file;
    anything else gets a file (and key) no other export in the folder uses."""
    reg = _read_registry(out_dir)
    run = str(run_dir.resolve())
    for key, entry in reg.items():
        if (entry.get("name"), entry.get("format"), entry.get("run"), entry.get("file")) == \
                (name, fmt, run, file):
            return key, entry["path"], None
    info = _llamafactory_info(out_dir) if out_dir.is_dir() else {}
    taken = set(reg) | set(info)
    key = next(k for k in (name, f"{name}-{fmt}", *(f"{name}-{fmt}-{i}" for i in range(2, 10**6)))
               if k not in taken)
    used = {e["path"] for e in reg.values()} | {str(e.get("file_name")) for e in info.values()}
    plain = PLAIN_FILES.get(fmt, "train.jsonl")
    if plain == ".":  # save_to_disk into the folder itself: only into an empty one
        free = not out_dir.is_dir() or not any(out_dir.iterdir())
    else:
        free = plain not in used and not (out_dir / plain).exists() and "." not in used
    path = plain if free else key + SUFFIXES.get(fmt, ".jsonl")
    warning = None
    if key != name:
        other = reg.get(name) or {}
        was = (f" ({other.get('format')} export of {other.get('run')})" if other
               else " (in dataset_info.json)")
        warning = (f"{out_dir} already holds an export named {name!r}{was}: this one is "
                   f"{key!r}, in its own file {path} (pass --name to choose)")
    return key, path, warning


def _register(out_dir: Path, key: str, entry: dict[str, Any]) -> list[dict[str, Any]]:
    """Record this export in the folder's registry; every export in it, this one first."""
    reg = _read_registry(out_dir)
    reg[key] = entry
    (out_dir / REGISTRY).write_text(json.dumps(reg, indent=2, ensure_ascii=False) + "\n",
                                    encoding="utf-8")
    return [{"key": key, **entry}] + [{"key": k, **v} for k, v in reg.items() if k != key]


def llamafactory_entry(fmt: str, file_name: str, cols: dict[str, Any],
                       has_system: bool) -> dict[str, Any] | None:
    """The ``dataset_info.json`` entry LLaMA-Factory needs to load this export."""
    if fmt == "alpaca":
        columns = {"prompt": "instruction", "query": "input", "response": "output"}
        if has_system:
            columns["system"] = "system"
        return {"file_name": file_name, "columns": columns}
    if fmt == "dpo":
        columns = {"prompt": "prompt", "chosen": "chosen", "rejected": "rejected"}
        if has_system:
            columns["system"] = "system"
        return {"file_name": file_name, "ranking": True, "columns": columns}
    if fmt == "sharegpt":
        return {"file_name": file_name, "formatting": "sharegpt",
                "columns": {"messages": "conversations"},
                "tags": {"role_tag": "from", "content_tag": "value", "user_tag": "human",
                         "assistant_tag": "gpt", "system_tag": "system",
                         "observation_tag": "observation"}}
    if fmt == "messages":
        return {"file_name": file_name, "formatting": "sharegpt",
                "columns": {"messages": "messages"},
                "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user",
                         "assistant_tag": "assistant", "system_tag": "system",
                         "observation_tag": "tool"}}
    return None


def _dataset_name(run_dir: Path, name: str | None) -> str:
    if name:
        return name
    try:
        return json.loads((run_dir / "summary.json").read_text())["recipe"]
    except (OSError, ValueError, KeyError):
        return run_dir.resolve().name


def export(run_dir: str | Path, out_dir: str | Path, options: ExportOptions,
           card: bool = True) -> ExportResult:
    """Write ``options.format`` into ``out_dir`` (``train.jsonl`` / ``train.parquet`` / an HF
    ``save_to_disk`` folder), the LLaMA-Factory entry, and the dataset card ``README.md``."""
    fmt = options.format
    if fmt not in FORMATS:
        raise SynthloomError(f"unknown format {fmt!r}; one of: {', '.join(FORMATS)}")
    if options.reasoning not in REASONING_MODES:
        raise SynthloomError(f"--reasoning {options.reasoning!r}: one of "
                             f"{', '.join(REASONING_MODES)}")
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    if out_dir.resolve() == run_dir.resolve():
        raise SynthloomError("--out must not be the run folder itself")
    refusal, warning = run_state(run_dir)
    if refusal and not options.force:
        raise SynthloomError(f"{refusal}; or pass --force to export what is there")
    warnings = [w for w in (warning, refusal and f"--force: {refusal}") if w]
    reviewed = _select_reviewed(run_dir, options) if options.reviewed else None
    if reviewed is not None:
        options = replace(options, file=reviewed["file"])
    sample = [r for _, r in zip(range(200), read_records(run_dir, options.file), strict=False)]
    if not sample:
        raise SynthloomError(f"{options.file} in {run_dir} has no records to export")
    if fmt in CHAT_FORMATS:
        try:
            cols = resolve_columns(fmt, sample, options.columns)
        except SynthloomError as exc:
            other = _other_file(run_dir, options)
            if not other:
                raise
            raise SynthloomError(f"format {fmt}: the run's {other} has the columns it needs: "
                                 f"pass --file {other} ({options.file}: {exc})") from None
    else:
        cols = {"rename_text": _rename_text(sample)}
    name = _dataset_name(run_dir, options.name)
    key, data_name, clash = plan_layout(out_dir, run_dir, options.file, fmt, name)
    if fmt in LLAMAFACTORY_FORMATS and data_name != "." and \
            any(e.get("path") == "." for e in _read_registry(out_dir).values()):
        raise SynthloomError(f"{out_dir} is an hf export's save_to_disk folder: LLaMA-Factory's "
                             "dataset_info.json would overwrite its metadata; export into "
                             "another --out")
    out_dir.mkdir(parents=True, exist_ok=True)
    shown = {k: v for k, v in cols.items() if v and k not in ("system", "rename_text")
             and (k != "reasoning" or detect(sample, (v,)))}
    if cols.get("system"):
        shown["system"] = "(fixed text)"
    result = ExportResult(out_dir=out_dir, data_path=out_dir / data_name, format=fmt, name=name,
                          columns=shown, reviewed=reviewed, warnings=warnings, key=key,
                          reasoning=reasoning_mode(fmt, options.reasoning),
                          renamed_text=bool(cols.get("rename_text")))
    if clash:
        result.warnings.append(clash)

    rows = _rows(run_dir, replace(options, reasoning=result.reasoning), cols, result)
    if fmt in ("parquet", "hf"):
        table = arrow_table(list(rows), stable=True)
        if fmt == "parquet":
            import pyarrow.parquet as pq

            tmp = result.data_path.with_name(result.data_path.name + ".tmp")
            pq.write_table(table, tmp)
            os.replace(tmp, result.data_path)
        else:
            _save_hf(table, result.data_path)
    else:
        tmp = result.data_path.with_name(result.data_path.name + ".tmp")
        with tmp.open("w", encoding="utf-8") as handle:
            handle.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        os.replace(tmp, result.data_path)

    if cols.get("system_column") and result.with_system < result.rows:
        result.warnings.append(f"{result.rows - result.with_system} of {result.rows} rows have "
                               f"no system prompt (no text at --system-column "
                               f"{cols['system_column']})")
    entry = llamafactory_entry(fmt, data_name, cols, result.with_system > 0)
    if entry is not None:
        info_path = out_dir / "dataset_info.json"
        info = _llamafactory_info(out_dir)
        info[key] = entry
        info_path.write_text(json.dumps(info, indent=2, ensure_ascii=False) + "\n")
        result.dataset_info = {key: entry}
    result.exports = _register(out_dir, key, {
        "name": name, "format": fmt, "path": data_name, "run": str(run_dir.resolve()),
        "file": options.file, "rows": result.rows, "bytes": _size(result.data_path)})
    if card:
        from synthloom.export.card import write_card

        result.card_path = write_card(run_dir, result, options.file)
    return result


def _select_reviewed(run_dir: Path, options: ExportOptions) -> dict[str, Any]:
    """Write the records with the asked review decision to ``RUN/review/export-STATUS.jsonl``
    (edits applied); the export then reads that file."""
    from synthloom.core.decisions import STATUSES, write_reviewed

    status = options.reviewed or ""
    if status not in STATUSES:
        raise SynthloomError(f"--reviewed {status!r}: one of {', '.join(STATUSES)}")
    if not (run_dir / options.file).is_file():
        raise SynthloomError(f"no {options.file} in {run_dir} (is it a synthloom run folder?)")
    file = f"review/export-{status}.jsonl"
    got = write_reviewed(run_dir, options.file, status, run_dir / file)
    if not got.written:
        raise SynthloomError(
            f"none of the {got.read} records of {run_dir / options.file} is marked {status} in "
            f"{run_dir / 'review' / 'decisions.jsonl'}; review them with `synthloom review "
            f"{run_dir}`")
    return {"status": status, "file": file, "source_file": options.file, "kept": got.written,
            "of": got.read, "edited": got.edited, "bad_lines": got.bad_lines}


def _rows(run_dir: Path, options: ExportOptions, cols: dict[str, Any],
          result: ExportResult) -> Iterator[dict[str, Any]]:
    for record in read_records(run_dir, options.file):
        result.read += 1
        try:
            row = to_row(record, options.format, cols, options.reasoning, options.meta)
        except Skip as exc:
            result.skipped[str(exc)] += 1
            continue
        result.rows += 1
        if _system(record, cols):
            result.with_system += 1
        yield row


def _size(path: Path) -> int:
    """Bytes of an export's data (a file, or an hf folder's Arrow shards)."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.glob("data-*.arrow"))


def _rename_text(sample: list[dict[str, Any]]) -> bool:
    """Raw exports of training records write ``text`` (a source document, or a task's own
    field) as ``source_text``: TRL's SFTTrainer trains on a ``text`` column by default, and it
    is not the training target of an instruction/answer, conversation or preference record."""
    if not any("text" in r for r in sample) or any("source_text" in r for r in sample):
        return False
    pair = detect(sample, INSTRUCTION_NAMES) and detect(sample, RESPONSE_NAMES)
    return bool(pair or detect(sample, MESSAGES_NAMES, list) or detect(sample, ("chosen",)))


def _other_file(run_dir: Path, options: ExportOptions) -> str:
    """When another file of the run (a second sink's) has the columns the format needs, the
    fix is ``--file`` (synthquestions' pairs are in preference.jsonl), not a column option."""
    if options.reviewed:
        return ""
    current = Path(options.file).name
    for path in sorted(run_dir.glob("*.jsonl")):
        if path.name in (current, "dropped.jsonl", "failed.jsonl"):
            continue
        try:
            sample = [r for _, r in zip(range(50), read_records(run_dir, path.name),
                                        strict=False)]
            if sample:
                resolve_columns(options.format, sample, ColumnMap())
        except SynthloomError:
            continue
        if sample:
            return path.name
    return ""


def _save_hf(table: Any, path: Path) -> None:
    try:
        import datasets
    except ImportError:
        raise SynthloomError('the hf format needs the datasets package: pip install '
                             '"synthloom[hf]"') from None
    datasets.disable_progress_bars()  # the CLI prints one line; bars would garble it
    datasets.Dataset(table).save_to_disk(str(path))


def hub_token(token_env: str = "HF_TOKEN") -> str:
    token = os.environ.get(token_env)
    if not token:
        raise SynthloomError(f"--push-to-hub needs a Hugging Face token in ${token_env}")
    return token


def push_to_hub(out_dir: Path, fmt: str, repo: str, token_env: str = "HF_TOKEN",
                private: bool = True, data_path: Path | None = None) -> str:
    """Upload an export (``data_path``: its file or hf folder, default the plain names) to the
    Hugging Face Hub (only when asked; needs a token)."""
    token = hub_token(token_env)
    try:
        import datasets
        from huggingface_hub import HfApi, constants
        from huggingface_hub.errors import HfHubHTTPError
    except ImportError:
        raise SynthloomError('--push-to-hub needs the datasets package: pip install '
                             '"synthloom[hf]"') from None
    data_path = data_path or out_dir / PLAIN_FILES.get(fmt, "train.jsonl")
    if fmt == "hf":
        dataset = datasets.load_from_disk(str(data_path))
    elif fmt == "parquet":
        import pyarrow.parquet as pq

        dataset = datasets.Dataset(pq.read_table(data_path))
    else:
        dataset = _jsonl_dataset(datasets, data_path)
    try:
        dataset.push_to_hub(repo, token=token, private=private)
        card = out_dir / "README.md"
        if card.is_file():
            HfApi(token=token).upload_file(path_or_fileobj=str(card), path_in_repo="README.md",
                                           repo_id=repo, repo_type="dataset")
    except HfHubHTTPError as exc:
        # One line (status, what the Hub said, what to do), not a multi-line HTTP dump.
        status = exc.response.status_code
        said = exc.server_message or str(exc).splitlines()[0]
        hint = f" (check the token in ${token_env})" if status in (401, 403) else ""
        raise SynthloomError(f"push to the Hub dataset {repo} at {constants.ENDPOINT} failed: "
                             f"HTTP {status}: {said.strip()}{hint}; the export in {out_dir} "
                             "is kept") from exc
    return f"{constants.ENDPOINT}/datasets/{repo}"  # HF_ENDPOINT (a mirror) when set


def _jsonl_dataset(datasets: Any, path: Path) -> Any:
    """The rows of a JSONL export as a Dataset whose nested columns stay nested.

    ``Dataset.from_json`` (datasets 5) types a list of turns with differing keys (a sharegpt
    ``gpt`` turn with ``reasoning_content``, a ``human`` one without) as JSON strings, which
    the uploaded parquet then holds; Arrow's inference takes the union of the keys instead.
    A column whose values share no Arrow type is stored as JSON strings, as in parquet exports.
    """
    import pyarrow as pa

    with path.open(encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    try:
        return datasets.Dataset.from_list(rows)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError):
        return datasets.Dataset(arrow_table(rows))
