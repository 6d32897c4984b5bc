"""The export formats, one registration each: name, row writer, file writer, help, readers,
LLaMA-Factory entry. ``synthloom export --format``, its help, the ``read by:`` line, the
dataset card and the table in docs/export.md all come from here.

A format is one decorated row function in any module of ``FORMAT_MODULES``::

    @register_format("verl", help="`prompt` turns, `reward_model.ground_truth`",
                     readers="verl (PPO/GRPO)", columns=rl_columns, write=write_parquet,
                     file="train.parquet", suffix=".parquet")
    def verl_row(record, cols, mode, meta):
        ...  # one record -> one row; raise Skip("why") to skip it (counted)

This module imports nothing from the format modules (they import it), so it stays cheap: the
CLI builds ``--format``'s help from it at start-up.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synthloom.core import jsonio
from synthloom.core.errors import SynthloomError

#: Modules whose import registers formats (a missing one is skipped: a module not written
#: yet). ``tests/unit/test_export_registry.py`` checks that every module of the package that
#: calls ``register_format`` is listed.
FORMAT_MODULES = ("synthloom.export.rows", "synthloom.export.rl",
                  "synthloom.export.triplets")

#: ``--for TARGET``: the trainers a format can be checked against. Each format names the
#: targets that read it as meant (``targets=``); without ``--format`` the first format of the
#: target's list whose columns the records have is chosen (preference data first).
TARGETS: dict[str, str] = {
    "trl": "TRL (SFTTrainer, DPOTrainer)",
    "llamafactory": "LLaMA-Factory (dataset_info.json)",
    "openai": "OpenAI fine-tuning (chat JSONL)",
}


class Skip(Exception):
    """This record cannot become a row of the format (the message is the reason)."""


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


#: ``(record, cols, reasoning mode, meta) -> row``; raises Skip.
RowFn = Callable[[dict[str, Any], dict[str, Any], str, bool], dict[str, Any]]
#: ``(format name, sampled records, the user's mapping) -> cols``; SynthloomError naming the
#: option to pass when a column is not found.
ColumnsFn = Callable[[str, list[dict[str, Any]], ColumnMap], dict[str, Any]]
#: ``(rows, path)``: writes the rows to ``path`` (a file, or a folder for ``file="."``).
WriteFn = Callable[[Iterable[dict[str, Any]], Path], None]
#: ``(file name, cols, any row has a system prompt) -> dataset_info.json entry``.
LlamaFactoryFn = Callable[[str, dict[str, Any], bool], dict[str, Any]]


def write_jsonl(rows: Iterable[dict[str, Any]], path: Path) -> None:
    """One JSON object a line, written to a temporary file and renamed (never half a file)."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as handle:
        handle.writelines(jsonio.dumps_line(row) for row in rows)
    os.replace(tmp, path)


@dataclass(frozen=True)
class ExportFormat:
    name: str
    row: RowFn
    #: What a row holds: the CLI help, the card's "fields" line and the docs table.
    help: str
    #: Which trainer reads it as meant (the CLI's ``read by:`` line, the card, the docs).
    readers: str
    #: How the needed columns are found; None: a raw format (every column kept).
    columns: ColumnsFn | None = None
    write: WriteFn = write_jsonl
    #: The first export into a folder writes this name ("." = the folder itself); a later
    #: one writes KEY + ``suffix``.
    file: str = "train.jsonl"
    suffix: str = ".jsonl"
    #: The LLaMA-Factory ``dataset_info.json`` entry, for the formats it reads.
    llamafactory: LlamaFactoryFn | None = None
    #: ``--for`` targets (TARGETS) that read this format as meant.
    targets: tuple[str, ...] = ()
    #: What ``--reasoning auto`` means for it.
    reasoning: str = "think-tags"
    #: Printed as a warning with every export of it: a trainer that would misread it silently.
    caution: str = ""
    #: Preference data (prompt/chosen/rejected): chosen first for ``--for`` without --format.
    preference: bool = False
    #: Carries tool calls, their results and the offered tools (a raw format keeps every
    #: column): ``--for`` chooses among these for tool records, others warn that they drop them.
    tools: bool = False


_FORMATS: dict[str, ExportFormat] = {}
_loaded = False


def register_format(name: str, **spec: Any) -> Callable[[RowFn], RowFn]:
    """Decorator: register the row function as format ``name`` (the rest as ExportFormat's
    fields). A name registered twice is an error, so one module cannot shadow another's."""

    def decorate(row: RowFn) -> RowFn:
        if name in _FORMATS and _FORMATS[name].row is not row:
            raise SynthloomError(f"export format {name!r} is registered twice "
                                 f"({_FORMATS[name].row.__module__} and {row.__module__})")
        for target in spec.get("targets", ()):
            if target not in TARGETS:
                raise SynthloomError(f"export format {name!r}: unknown target {target!r}; "
                                     f"one of {', '.join(TARGETS)}")
        _FORMATS[name] = ExportFormat(name=name, row=row, **spec)
        return row

    return decorate


def load_formats() -> None:
    global _loaded
    if _loaded:
        return
    for module in FORMAT_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:  # the module exists but an import inside it is missing
                raise
    _loaded = True


def formats() -> dict[str, ExportFormat]:
    """Every registered format by name, in registration order."""
    load_formats()
    return dict(_FORMATS)


def get_format(name: str) -> ExportFormat:
    known = formats()
    if name not in known:
        raise SynthloomError(f"unknown format {name!r}; one of: {', '.join(known)}")
    return known[name]


def format_names() -> list[str]:
    return list(formats())


def for_target(target: str) -> list[ExportFormat]:
    """The formats ``target`` reads as meant, preference formats first."""
    if target not in TARGETS:
        raise SynthloomError(f"--for {target!r}: one of {', '.join(TARGETS)}")
    chosen = [f for f in formats().values() if target in f.targets]
    return sorted(chosen, key=lambda f: not f.preference)


def cli_help() -> str:
    """``--format``'s help: every registered name."""
    return (" | ".join(format_names()) + " (default jsonl, or chosen by --for; docs/export.md: "
            "which trainer reads which)")


def markdown_table() -> str:
    """The docs' table of the shipped formats (docs/export.md holds it; a unit test keeps them
    equal)."""
    lines = ["| format | file | row | read by | `--for` |", "|---|---|---|---|---|"]
    for f in formats().values():
        if not f.row.__module__.startswith("synthloom."):
            continue  # a format registered by a user's or a plugin's module
        file = "the folder (`save_to_disk`)" if f.file == "." else f"`{f.file}`"
        targets = ", ".join(f.targets) or "—"
        lines.append(f"| `{f.name}` | {file} | {f.help} | {f.readers} | {targets} |")
    return "\n".join(lines)
