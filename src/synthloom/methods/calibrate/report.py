"""The calibration report: per task and knob level, how often the models solved the items and
how many stayed in the band. Written into the run folder as ``<stem>.json`` (rows) and
``<stem>.md`` (one table per task); ``synthloom run`` prints it after the summary."""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

#: Columns of a report row, in table order.
COLUMNS = ("level", "items", "target_pass_rate", "target_pass_at_k", "strong_pass_at_k",
           "kept", "yield")


def _level_key(level: str) -> tuple[int, float, str]:
    # Numeric levels in numeric order, then the rest as text.
    try:
        return (0, float(level), "")
    except ValueError:
        return (1, 0.0, level)


def band_report(records: list[dict[str, Any]], reasons: list[str | None], step: str,
                band: dict[str, Any]) -> dict[str, Any]:
    """Rows per (task, level) of calibrated records (``reasons[i]`` None: kept), plus a total
    row per task and the drop reasons counted by kind."""
    groups: dict[str, dict[str, list[tuple[dict[str, Any], bool]]]] = defaultdict(
        lambda: defaultdict(list))
    why: dict[str, int] = defaultdict(int)
    for record, reason in zip(records, reasons, strict=True):
        task = str(record.get("calibration_task") or "?")
        groups[task][str(record.get("calibration_level") or "-")].append(
            (record, reason is None))
        if reason is not None:
            why[reason.split(":")[0]] += 1
    tasks: dict[str, list[dict[str, Any]]] = {}
    for task in sorted(groups):
        rows = [_row(level, groups[task][level])
                for level in sorted(groups[task], key=_level_key)]
        if len(rows) > 1:
            rows.append(_row("all", [x for level in groups[task].values() for x in level]))
        tasks[task] = rows
    return {"step": step, "band": band, "tasks": tasks, "dropped_by_reason": dict(why)}


def _row(level: str, items: list[tuple[dict[str, Any], bool]]) -> dict[str, Any]:
    def mean(column: str) -> float | None:
        values = [float(r[column]) for r, _ in items if r.get(column) is not None]
        return round(sum(values) / len(values), 4) if values else None

    kept = sum(k for _, k in items)
    return {"level": level, "items": len(items), "target_pass_rate": mean("target_pass_rate"),
            "target_pass_at_k": mean("target_pass_at_k"),
            "strong_pass_at_k": mean("strong_pass_at_k"), "kept": kept,
            "yield": round(kept / len(items), 4) if items else 0.0}


def markdown(report: dict[str, Any]) -> str:
    """One table per task: level -> pass rates -> kept."""
    lines = [f"# Calibration ({report['step']})", "",
             "band: " + ", ".join(f"{k}={v}" for k, v in report["band"].items()
                                  if k in ("target_above", "target_below", "strong_solves")),
             ""]
    for task, rows in report["tasks"].items():
        lines += [f"## {task}", "", "| " + " | ".join(COLUMNS) + " |",
                  "|" + "---|" * len(COLUMNS)]
        lines += ["| " + " | ".join(_cell(row[c]) for c in COLUMNS) + " |" for row in rows]
        lines.append("")
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def write_report(run_dir: str | Path | None, stem: str, report: dict[str, Any]) -> None:
    """``<stem>.json`` and ``<stem>.md`` in the run folder (each written whole, atomically)."""
    if run_dir is None:
        return
    folder = Path(run_dir)
    folder.mkdir(parents=True, exist_ok=True)
    for suffix, text in ((".json", json.dumps(report, indent=2) + "\n"),
                         (".md", markdown(report))):
        path = folder / f"{stem}{suffix}"
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)


def read_report(run_dir: str | Path, stem: str = "calibration") -> dict[str, Any] | None:
    """The run's report, or None when it has none (or it is unreadable)."""
    try:
        data = json.loads((Path(run_dir) / f"{stem}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and "tasks" in data else None
