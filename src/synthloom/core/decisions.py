"""Review decisions: ``RUN/review/decisions.jsonl``, append-only, the last line of a record
id wins. Decisions live beside the records, never in them; they survive restarts.

Written by the review app, read by ``export --reviewed`` and ``run --regenerate rejected``:
a run-folder file like the store's, so it sits in core, below review and export both."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from synthloom.core.jsonio import BadLine, read_jsonl

STATUSES = ("accepted", "rejected", "pending")


@dataclass
class Decision:
    id: str
    status: str
    note: str = ""
    #: column -> edited value (applied on ``export --reviewed accepted``).
    edits: dict[str, Any] = field(default_factory=dict)
    at: float = 0.0
    #: Where the record was produced: the step and its input's id (``--regenerate``).
    step: str | None = None
    parent: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "status": self.status, "note": self.note, "edits": self.edits,
                "at": self.at, "step": self.step, "parent": self.parent}


class Decisions:
    """All decisions of a run folder (one line per action: small, kept in memory)."""

    def __init__(self, run_dir: str | Path) -> None:
        self.path = Path(run_dir) / "review" / "decisions.jsonl"
        self.by_id: dict[str, Decision] = {}
        self.bad_lines: list[str] = []
        if self.path.is_file():
            # A torn last line (a kill mid-write) must not hide the other decisions.
            bad: list[BadLine] = []
            for number, row in read_jsonl(self.path, bad=bad, objects=True):
                try:
                    d = Decision(**row)
                except TypeError as exc:
                    self.bad_lines.append(f"{self.path}:{number}: {exc}")
                    continue
                self.by_id[d.id] = d
            self.bad_lines += [str(b) for b in bad]

    def get(self, record_id: str) -> Decision | None:
        return self.by_id.get(record_id)

    def decide(self, record: dict[str, Any], status: str, note: str = "",
               edits: dict[str, Any] | None = None) -> Decision:
        if status not in STATUSES:
            raise ValueError(f"decision {status!r}: one of {', '.join(STATUSES)}")
        meta = record.get("_meta") or {}
        parents = meta.get("parents") or [None]
        d = Decision(id=meta["id"], status=status, note=note, edits=dict(edits or {}),
                     at=time.time(), step=meta.get("step"), parent=parents[0])
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("ab") as handle:
            handle.write(orjson.dumps(d.to_json()) + b"\n")
            handle.flush()
            os.fsync(handle.fileno())
        self.by_id[d.id] = d
        return d

    def ids(self, status: str) -> list[str]:
        return [i for i, d in self.by_id.items() if d.status == status]

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(STATUSES, 0)
        for d in self.by_id.values():
            out[d.status] = out.get(d.status, 0) + 1
        return out


def apply_edits(record: dict[str, Any], decision: Decision) -> dict[str, Any]:
    """The record with the reviewer's edited values (provenance says it was edited)."""
    if not decision.edits:
        return record
    out = {**record, **decision.edits}
    meta = dict(record.get("_meta") or {})
    meta["edited"] = sorted(decision.edits)
    out["_meta"] = meta
    return out


@dataclass
class Reviewed:
    """What ``write_reviewed`` wrote: rows kept, rows read, kept rows with edits applied, and
    lines of the run file that were not JSON records (named, not exported)."""

    written: int = 0
    read: int = 0
    edited: int = 0
    bad_lines: list[str] = field(default_factory=list)


def write_reviewed(run_dir: str | Path, file: str, status: str, out: Path) -> Reviewed:
    """Write the records of ``file`` whose decision is ``status`` (edits applied) to ``out``.
    ``pending`` also takes the records nobody has decided on."""
    if status not in STATUSES:
        raise ValueError(f"reviewed {status!r}: one of {', '.join(STATUSES)}")
    decisions = Decisions(run_dir)
    result = Reviewed()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    bad: list[BadLine] = []
    with tmp.open("wb") as dst:
        for _, record in read_jsonl(Path(run_dir) / file, bad=bad, objects=True):
            result.read += 1
            meta = record.get("_meta")
            d = decisions.get(meta.get("id", "") if isinstance(meta, dict) else "")
            if (d.status if d else "pending") != status:
                continue
            if d is not None and d.edits:
                result.edited += 1
                record = apply_edits(record, d)
            dst.write(orjson.dumps(record) + b"\n")
            result.written += 1
    result.read += len(bad)
    result.bad_lines += [f"{file}:{b.line}: not a JSON record ({b.message})" for b in bad]
    os.replace(tmp, out)
    return result


def _resample_rows(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "review" / "resample.json"
    return orjson.loads(path.read_bytes()) if path.is_file() else []


def resample_targets(run_dir: str | Path) -> dict[tuple[str, str], int]:
    """``RUN/review/resample.json``: (step, input record id) -> sample bump, applied by the
    executor to every run of this folder so regenerated items stay regenerated."""
    return {(r["step"], r["parent"]): int(r["bump"]) for r in _resample_rows(Path(run_dir))}


@dataclass
class Regeneration:
    """What ``--regenerate rejected`` did: the decisions whose items get new samples now, and
    those it could not regenerate, each with the reason."""

    bumped: list[Decision] = field(default_factory=list)
    skipped: list[tuple[Decision, str]] = field(default_factory=list)
    #: Rejected decisions regenerated by an earlier run (their record is gone from the sink).
    earlier: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"items": len(self.bumped), "earlier": self.earlier,
                "skipped": [{"id": d.id, "step": d.step, "reason": why}
                            for d, why in self.skipped]}


def mark_rejected_for_regeneration(run_dir: str | Path,
                                   per_item_steps: set[str] | None = None) -> Regeneration:
    """Bump the sample of every rejected record's producing item (once per decision) and
    persist it in ``RUN/review/resample.json``.

    ``per_item_steps``: the recipe's steps that run item by item (map / expand / filter); a
    record made by a whole-dataset step, or by a step the recipe no longer has, cannot be
    regenerated alone and is reported as skipped (not silently ignored)."""
    run_dir = Path(run_dir)
    decisions = Decisions(run_dir)
    # One file holds the bumps and the decisions they answer, written atomically: a kill
    # cannot leave a decision bumped twice, or marked done without its bump.
    rows = {(r["step"], r["parent"]): r for r in _resample_rows(run_dir)}
    done = {i for r in rows.values() for i in r.get("decisions", [])}
    result = Regeneration()
    this_pass: set[tuple[str, str]] = set()
    for d in decisions.by_id.values():
        if d.status != "rejected":
            continue
        if d.id in done:
            result.earlier += 1
            continue
        if not d.step or not d.parent:
            result.skipped.append((d, "the record names no producing step or parent"))
            continue
        if per_item_steps is not None and d.step not in per_item_steps:
            result.skipped.append((d, f"step {d.step!r} is not an item-by-item step of the "
                                      "recipe (a whole-dataset step, a source, or renamed)"))
            continue
        row = rows.setdefault((d.step, d.parent), {"step": d.step, "parent": d.parent,
                                                   "bump": 0, "decisions": []})
        if (d.step, d.parent) not in this_pass:  # siblings of one item: one new sample
            row["bump"] += 1
            this_pass.add((d.step, d.parent))
        row["decisions"] = [*row.get("decisions", []), d.id]
        done.add(d.id)
        result.bumped.append(d)
    if result.bumped:
        (run_dir / "review").mkdir(parents=True, exist_ok=True)
        _write_atomic(run_dir / "review" / "resample.json",
                      orjson.dumps([rows[k] for k in sorted(rows)], option=orjson.OPT_INDENT_2))
    return result


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
