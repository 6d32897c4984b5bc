"""Export a run's records to a training format (registry.py: every format and who reads it;
rows.py: the shipped ones) — plus a LLaMA-Factory ``dataset_info.json`` entry and a dataset card.

Several exports may share one ``--out`` folder: each gets its own data file, its own
``dataset_info.json`` entry and its own ``configs:`` entry in the card (``.synthloom-exports.json``
remembers which export wrote which file), so no entry ever points at another export's rows.

A record that lacks a needed column is skipped and counted by reason, never lost without a
word. ``--for TARGET`` checks (or, without ``--format``, chooses) a format the trainer reads as
meant: a trainer that would misread a format silently is refused, not warned.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from itertools import chain, count
from pathlib import Path
from typing import Any

from synthloom.core import jsonio
from synthloom.core.errors import SynthloomError
from synthloom.export.registry import TARGETS, ColumnMap, ExportFormat, Skip, for_target, get_format
from synthloom.export.rows import check_system_column, detect, system_of
from synthloom.export.tooluse import is_tool_record

__all__ = ["ColumnMap", "ExportOptions", "ExportResult", "Skip", "export", "push_to_hub"]

REASONING_MODES = ("auto", "field", "think-tags", "drop")


@dataclass
class ExportOptions:
    #: A registered format's name; "" = ``jsonl``, or with ``target`` the target's format that
    #: fits the records.
    format: str = ""
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
    #: ``--for``: a TARGETS name; a format that target would misread is refused.
    target: str | None = None


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
    return get_format(fmt).reasoning


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
                row = jsonio.loads(line)
            except json.JSONDecodeError as exc:  # orjson's error is a subclass
                raise SynthloomError(f"{path}:{number}: not JSON ({exc.msg})") from None
            if isinstance(row.get("record"), dict) and ("reason" in row or "error_class" in row):
                record = dict(row["record"])
                if "reason" in row:
                    record["_dropped_reason"] = f"{row['step']}: {row['reason']}"
                else:
                    record["_error"] = f"{row['step']}: {row['error_class']}: {row['message']}"
                row = record
            yield row


def resolve_columns(fmt: str, sample: list[dict[str, Any]], given: ColumnMap) -> dict[str, Any]:
    """Concrete column names for ``fmt``; SynthloomError naming the option when not found."""
    spec = get_format(fmt)
    cols = spec.columns(fmt, sample, given) if spec.columns else {}
    if given.system_column:
        check_system_column(sample, given.system_column)
    cols["system"] = given.system
    cols["system_column"] = given.system_column
    return cols


def to_row(record: dict[str, Any], fmt: str, cols: dict[str, Any], mode: str,
           meta: bool) -> dict[str, Any]:
    """One record as one row of ``fmt``; raises Skip with the reason."""
    return get_format(fmt).row(record, cols, mode, meta)


# --- writing ----------------------------------------------------------------------------------


REGISTRY = ".synthloom-exports.json"


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
    # Lazily: a starred generator here would build a million names on every export.
    candidates = chain((name, f"{name}-{fmt}"), (f"{name}-{fmt}-{i}" for i in count(2)))
    key = next(k for k in candidates if k not in taken)
    used = {e["path"] for e in reg.values()} | {str(e.get("file_name")) for e in info.values()}
    spec = get_format(fmt)
    plain = spec.file
    if plain == ".":  # save_to_disk into the folder itself: only into an empty one
        free = not out_dir.is_dir() or not any(out_dir.iterdir())
    else:
        free = plain not in used and not (out_dir / plain).exists() and "." not in used
    path = plain if free else key + spec.suffix
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
    """The ``dataset_info.json`` entry LLaMA-Factory needs to load this export (None: a format
    LLaMA-Factory does not read)."""
    spec = get_format(fmt)
    return spec.llamafactory(file_name, cols, has_system) if spec.llamafactory else None


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
    if options.format:
        get_format(options.format)  # an unknown name fails before anything is read
    if options.target:
        for_target(options.target)
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
    spec = choose_format(options, sample)
    fmt = spec.name
    if options.target == "openai":
        options = replace(options, meta=False)  # OpenAI's chat files hold messages only
    try:
        cols = resolve_columns(fmt, sample, options.columns)
    except SynthloomError as exc:
        other = _other_file(run_dir, replace(options, format=fmt))
        if not other:
            raise
        raise SynthloomError(f"format {fmt}: the run's {other} has the columns it needs: "
                             f"pass --file {other} ({options.file}: {exc})") from None
    if options.target == "openai":
        cols["tool_arguments"] = "text"  # OpenAI's files: arguments as JSON text
    name = _dataset_name(run_dir, options.name)
    key, data_name, clash = plan_layout(out_dir, run_dir, options.file, fmt, name)
    if spec.llamafactory and data_name != "." and \
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
    if spec.caution and not options.target:
        result.warnings.append(spec.caution)
    if not spec.tools and any(is_tool_record(r, "messages") for r in sample):
        result.warnings.append(f"{fmt} has no place for tool calls: the records' calls, results "
                               "and tools are left out; --format messages, sharegpt or hermes "
                               "keep them")
    if clash:
        result.warnings.append(clash)

    spec.write(_rows(run_dir, replace(options, format=fmt, reasoning=result.reasoning), cols,
                     result), result.data_path)

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


def choose_format(options: ExportOptions, sample: list[dict[str, Any]]) -> ExportFormat:
    """The format to write: ``--format`` (refused when ``--for``'s trainer would misread it),
    else the first of the target's formats whose columns the records have, else jsonl."""
    if not options.target:
        return get_format(options.format or "jsonl")
    fits = for_target(options.target)
    if any(is_tool_record(r, "messages") for r in sample):
        fits = [f for f in fits if f.tools]  # a format without calls would lose them
    names = ", ".join(f.name for f in fits)
    if options.format:
        spec = get_format(options.format)
        if options.target not in spec.targets:
            why = f" ({spec.caution})" if spec.caution else ""
            raise SynthloomError(f"--format {spec.name} is not read as meant by "
                                 f"{TARGETS[options.target]}{why}; --for {options.target} "
                                 f"takes: {names}")
        return spec
    for spec in fits:
        try:
            resolve_columns(spec.name, sample, options.columns)
        except SynthloomError:
            continue
        return spec
    raise SynthloomError(f"--for {options.target}: the records have the columns of none of "
                         f"{names} (pass --format and the column options, or --file)")


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
        if system_of(record, cols):
            result.with_system += 1
        yield row


def _size(path: Path) -> int:
    """Bytes of an export's data (a file, or an hf folder's Arrow shards)."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.glob("data-*.arrow"))


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


def hub_token(token_env: str = "HF_TOKEN") -> str:
    token = os.environ.get(token_env)
    if not token:
        raise SynthloomError(f"--push-to-hub needs a Hugging Face token in ${token_env}")
    return token


def push_to_hub(out_dir: Path, fmt: str, repo: str, token_env: str = "HF_TOKEN",
                private: bool = True, data_path: Path | None = None) -> str:
    """Upload an export (``data_path``: its file or hf folder, default the plain names) to the
    Hugging Face Hub (only when asked; needs a token)."""
    from synthloom.export.card import hub_card

    token = hub_token(token_env)
    try:
        import datasets
        from huggingface_hub import HfApi, constants
        from huggingface_hub.errors import HfHubHTTPError
    except ImportError:
        raise SynthloomError('--push-to-hub needs the datasets package: pip install '
                             '"synthloom[hf]"') from None
    data_path = data_path or out_dir / get_format(fmt).file
    if data_path.is_dir():
        dataset = datasets.load_from_disk(str(data_path))
    elif data_path.suffix == ".parquet":
        import pyarrow.parquet as pq

        dataset = datasets.Dataset(pq.read_table(data_path))
    else:
        dataset = _jsonl_dataset(datasets, data_path)
    try:
        dataset.push_to_hub(repo, token=token, private=private)
        card = out_dir / "README.md"
        if card.is_file():
            # The local card's configs name the folder's files (train.jsonl, KEY.parquet); on
            # the Hub the rows are the parquet shards push_to_hub wrote: name those instead.
            text = hub_card(card.read_text(encoding="utf-8"))
            HfApi(token=token).upload_file(
                path_or_fileobj=text.encode("utf-8"), path_in_repo="README.md", repo_id=repo,
                repo_type="dataset")
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
        from synthloom.export.rows import arrow_table

        return datasets.Dataset(arrow_table(rows))
