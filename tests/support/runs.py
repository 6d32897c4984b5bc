"""Run-folder helpers shared by the recipe tests: read JSONL outputs, find a step's counts,
check that every step's accounting closes, run a recipe in-process on a given backend."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from synthloom.api import RunOptions, run_recipe
from synthloom.core.recipe import Recipe


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The rows of a JSONL output; [] when the file was not written."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def step(summary: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in summary["steps"] if s["name"] == name)


def step_closes(s: dict[str, Any]) -> bool:
    """in = done + failed + dropped; done is ``out`` (map/filter), ``expanded`` (expand: inputs
    expanded) or ``kept`` (global: inputs kept)."""
    done = {"expand": s.get("expanded"), "global": s.get("kept")}.get(s["kind"], s["out"])
    return s["in"] == done + s["failed"] + s["dropped"]


def assert_closed(summary: dict[str, Any]) -> None:
    for s in summary["steps"]:
        assert step_closes(s), s


def run_scripted(recipe: Recipe, out: Path, backend: Any, limit: int | None = None
                 ) -> dict[str, Any]:
    """``run_recipe`` in this process on ``backend`` (a scripted test backend); the summary."""
    return asyncio.run(run_recipe(recipe, out, RunOptions(backend=backend, limit=limit))).to_json()
