"""Run notes: facts a user must see about a run's data that no count shows.

A step (or a helper it calls) sets a note in ``RUN_DIR/notes.json``, a mapping key -> text;
``api.run_recipe`` copies the notes into summary.json (``notes``), the CLI prints them in
yellow after the run and report.html shows them on top. Examples: topics and dedup ran on the
lexical hashing fallback instead of sentence embeddings; fewer final records than ``target``.

Each note has one owner (its key) that sets it, or clears it with ``None``, whenever it
computes: a result replayed from the cache keeps the note written when it was computed, which
still describes it.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

NOTES_FILE = "notes.json"
_lock = threading.Lock()


def read_notes(run_dir: str | Path) -> dict[str, str]:
    """The run's notes by key ({} when none or unreadable)."""
    try:
        data = json.loads((Path(run_dir) / NOTES_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def set_note(run_dir: str | Path | None, key: str, text: str | None) -> None:
    """Set (``text``) or clear (``None``) the note ``key``; written whole (atomic rename)."""
    if run_dir is None:
        return
    path = Path(run_dir) / NOTES_FILE
    with _lock:
        notes = read_notes(run_dir)
        if text is None:
            if key not in notes:
                return
            notes.pop(key)
        elif notes.get(key) == text:
            return
        else:
            notes[key] = text
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{NOTES_FILE}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(notes, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        tmp.replace(path)


def step_note_key(step: str) -> str:
    """The key of a note owned by recipe step ``step`` (kept only while the step exists)."""
    return f"step:{step}"


def run_notes(run_dir: str | Path, steps: Any = None) -> list[str]:
    """The notes to show for a run, sorted by key; with ``steps`` (the recipe's step names),
    notes of steps no longer in the recipe are left out."""
    names = set(steps) if steps is not None else None
    out = []
    for key, text in sorted(read_notes(run_dir).items()):
        if names is not None and key.startswith("step:") and key[5:] not in names:
            continue
        out.append(text)
    return out


def attach_notes(run_dir: str | Path, steps: Any = None) -> list[str]:
    """Copy the run's notes into its summary.json (``notes``; removed when there are none).
    Returns them."""
    notes = run_notes(run_dir, steps)
    path = Path(run_dir) / "summary.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return notes
    if not isinstance(data, dict) or data.get("notes", []) == notes:
        return notes
    if notes:
        data["notes"] = notes
    else:
        data.pop("notes", None)
    tmp = path.with_name(f"summary.json.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    return notes
