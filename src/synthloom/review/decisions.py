"""Review decisions: ``RUN/review/decisions.jsonl``, append-only, the last line of a record
id wins. Decisions live beside the records, never in them; they survive restarts."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

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
            for number, raw in enumerate(self.path.read_bytes().splitlines(), start=1):
                if not raw.strip():
                    continue
                try:
                    row = orjson.loads(raw)
                    d = Decision(**row)
                except (orjson.JSONDecodeError, TypeError) as exc:
                    # A torn last line (a kill mid-write) must not hide the other decisions.
                    self.bad_lines.append(f"{self.path}:{number}: {exc}")
                    continue
                self.by_id[d.id] = d

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


def write_reviewed(run_dir: str | Path, file: str, status: str, out: Path) -> tuple[int, int]:
    """Write the records of ``file`` whose decision is ``status`` (edits applied) to ``out``;
    returns (written, read)."""
    decisions = Decisions(run_dir)
    written = read = 0
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    with (Path(run_dir) / file).open("rb") as src, tmp.open("wb") as dst:
        for raw in src:
            if not raw.strip():
                continue
            read += 1
            record = orjson.loads(raw)
            d = decisions.get((record.get("_meta") or {}).get("id", ""))
            if d is None or d.status != status:
                continue
            dst.write(orjson.dumps(apply_edits(record, d)) + b"\n")
            written += 1
    os.replace(tmp, out)
    return written, read


def resample_targets(run_dir: str | Path) -> dict[tuple[str, str], int]:
    """``RUN/review/resample.json``: (step, input record id) -> sample bump, applied by the
    executor to every run of this folder so regenerated items stay regenerated."""
    path = Path(run_dir) / "review" / "resample.json"
    if not path.is_file():
        return {}
    data = orjson.loads(path.read_bytes())
    return {(r["step"], r["parent"]): int(r["bump"]) for r in data}


def mark_rejected_for_regeneration(run_dir: str | Path) -> list[Decision]:
    """Bump the sample of every rejected record's producing item (once per decision) and
    persist it; returns the decisions it bumped."""
    run_dir = Path(run_dir)
    decisions = Decisions(run_dir)
    targets = resample_targets(run_dir)
    done_path = run_dir / "review" / "regenerated.json"
    done = set(orjson.loads(done_path.read_bytes())) if done_path.is_file() else set()
    bumped = []
    for d in decisions.by_id.values():
        if d.status != "rejected" or not d.step or not d.parent or d.id in done:
            continue
        targets[(d.step, d.parent)] = targets.get((d.step, d.parent), 0) + 1
        done.add(d.id)
        bumped.append(d)
    (run_dir / "review").mkdir(parents=True, exist_ok=True)
    rows = [{"step": s, "parent": p, "bump": b} for (s, p), b in sorted(targets.items())]
    _write_atomic(run_dir / "review" / "resample.json", orjson.dumps(rows))
    _write_atomic(done_path, orjson.dumps(sorted(done)))
    return bumped


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
