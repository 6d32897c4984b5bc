"""Run-folder helpers shared by the recipe tests: read JSONL outputs, find a step's counts,
check that every step's accounting closes, run a recipe in-process on a given backend."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from synthloom.api import RunOptions, run_recipe
from synthloom.core.accounting import StepStats
from synthloom.core.recipe import Recipe


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The rows of a JSONL file (the one reader of the tests); [] when it was not written."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def step(summary: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in summary["steps"] if s["name"] == name)


def step_closes(s: dict[str, Any]) -> bool:
    """A summary.json step's accounting closes, by core's own rule (``StepStats.closes``):
    in = done + failed + dropped, done being ``out`` (map/filter), ``expanded`` (expand: inputs
    that produced outputs) or ``kept`` (global: inputs kept; ``out`` may differ when a step
    merges records); sources and sinks have no inputs to account for."""
    return StepStats(name=s["name"], kind=s["kind"], in_=s["in"], out=s["out"],
                     failed=s["failed"], dropped=s["dropped"], expanded=s.get("expanded", 0),
                     kept=s.get("kept", 0)).closes()


def assert_closed(summary: dict[str, Any]) -> None:
    """Every step of a run's summary (``RunSummary.to_json()`` / summary.json) closes."""
    for s in summary["steps"]:
        assert step_closes(s), s


def run_scripted(recipe: Recipe, out: Path, backend: Any, limit: int | None = None
                 ) -> dict[str, Any]:
    """``run_recipe`` in this process on ``backend`` (a scripted test backend); the summary."""
    return asyncio.run(run_recipe(recipe, out, RunOptions(backend=backend, limit=limit))).to_json()
