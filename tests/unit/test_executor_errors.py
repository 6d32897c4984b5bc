"""The per-item error policy (core/batch.py ``item_failure``) is one policy: the same failing
step behaves the same in process, in the process pool and (tests/integration/
test_ray_executor.py) in a Ray actor. A step's exception on one item is that item's failure;
a SynthloomError stops the run."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest

from synthloom.api import RunOptions, run_recipe
from synthloom.core.batch import item_failure
from synthloom.core.context import ItemContext
from synthloom.core.errors import BackendError, BudgetExhausted, SynthloomError
from synthloom.core.recipe import Recipe
from synthloom.core.records import Output
from synthloom.core.steps import MapStep, StepConfig
from synthloom.export.sinks import JsonlSink
from synthloom.sources.files import JsonlRows
from tests.support.runs import read_jsonl


class FlakyConfig(StepConfig):
    #: The ``n`` at which the step raises a SynthloomError (the run must stop).
    fatal_at: int | None = None


class Flaky(MapStep):
    """Fails every third item with a ValueError; raises BackendError at ``fatal_at``."""

    type_name = "test_flaky"
    Config = FlakyConfig

    def process(self, record: dict[str, Any], ctx: ItemContext) -> Output:
        n = int(record["n"])
        if n == self.config.fatal_at:
            raise BackendError(f"the server went away at item {n}")
        if n % 3 == 0:
            raise ValueError(f"no multiples of three: {n}")
        return Output(columns={"half": n / 2, "pid": os.getpid()})


class FlakyInPool(Flaky):
    type_name = "test_flaky_pool"
    cpu_bound = True


def flaky_recipe(tmp_path: Path, step: type[Flaky], n: int = 20, **config: Any) -> Recipe:
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({"n": i}) + "\n" for i in range(1, n + 1)))
    return Recipe(name="flaky", sources=[JsonlRows(name="rows", path=str(rows))],
                  steps=[step(name="flaky", **config)],
                  sinks=[JsonlSink(path="data.jsonl", **{"from": "flaky"})])


def outcome(out: Path, recipe: Recipe, **options: Any) -> dict[str, Any]:
    """What a user sees of a run: status, counts, the failed items, the error raised."""
    error = None
    try:
        asyncio.run(run_recipe(recipe, out, RunOptions(batch_size=4, **options)))
    except SynthloomError as exc:
        error = (type(exc).__name__, str(exc))
    summary = json.loads((out / "summary.json").read_text())
    step = next(s for s in summary["steps"] if s["name"] == "flaky")
    failed_file = out / "failed.jsonl"
    failed = sorted((r["record"]["n"], r["error_class"], r["message"])
                    for r in read_jsonl(failed_file)) if failed_file.exists() else None
    return {"status": summary["status"], "error": error or summary.get("error"),
            "counts": (step["in"], step["out"], step["failed"]), "failed": failed}


def test_one_items_failure_is_data_in_process_and_in_the_pool(tmp_path: Path) -> None:
    here = outcome(tmp_path / "here", flaky_recipe(tmp_path, Flaky))
    pool = outcome(tmp_path / "pool", flaky_recipe(tmp_path, FlakyInPool))
    assert here == pool
    assert here["status"] == "partial" and here["error"] is None
    assert here["counts"] == (20, 14, 6)
    assert here["failed"] == [(n, "ValueError", f"no multiples of three: {n}")
                              for n in (3, 6, 9, 12, 15, 18)]
    pids = {r["pid"] for r in read_jsonl(tmp_path / "pool" / "data.jsonl")}
    assert os.getpid() not in pids  # it did run in the pool


def test_a_synthloom_error_stops_the_run_in_process_and_in_the_pool(tmp_path: Path) -> None:
    """It used to be one item's failure in the pool and fatal in process."""
    here = outcome(tmp_path / "here", flaky_recipe(tmp_path, Flaky, fatal_at=5))
    pool = outcome(tmp_path / "pool", flaky_recipe(tmp_path, FlakyInPool, fatal_at=5))
    assert here["status"] == pool["status"] == "failed"
    assert here["error"] == pool["error"] == ("BackendError", "the server went away at item 5")
    assert not (tmp_path / "pool" / "failed.jsonl").exists()  # a failed run publishes nothing


def test_the_policy_itself() -> None:
    assert item_failure(ValueError("x")).error_class == "ValueError"
    assert item_failure(BudgetExhausted("spent")).error_class == "BudgetExhausted"
    with pytest.raises(BackendError):
        item_failure(BackendError("gone"))
