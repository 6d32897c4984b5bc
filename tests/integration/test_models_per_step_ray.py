"""Models per step on a real local Ray cluster, with the scripted test backend (a test double)
as each named model: each step's actors build the clients of the models that step calls, the
records equal the local run's, and summary.json attributes the actors' calls to each model."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from synthloom.api import RunOptions, run_recipe
from synthloom.core.recipe import Recipe
from tests.support.scripted_backend import ScriptedTestBackend
from tests.unit.test_models_per_step import judge_says, recipe_dict, teacher, write_inputs

ray = pytest.importorskip("ray", reason="ray not installed (extra: ray)")
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR",
             runtime_env={"env_vars": {"PYTHONPATH": os.getcwd()}})
    ray.data.DataContext.get_current().execution_options.preserve_order = True
    yield
    ray.shutdown()


def go(out: Path, folder: Path, **options) -> dict:
    recipe = Recipe.from_dict(recipe_dict(folder))
    return asyncio.run(run_recipe(recipe, out, RunOptions(
        backend=ScriptedTestBackend(teacher, name="teacher"),
        model_for={"judge": ScriptedTestBackend(judge_says("first"), name="judge-a")},
        **options))).to_json()


def lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


@pytest.mark.timeout(600)
def test_named_models_on_ray_match_local(tmp_path: Path) -> None:
    folder = write_inputs(tmp_path)
    local = go(tmp_path / "local", folder)
    on_ray = go(tmp_path / "ray", folder, executor="ray", ray_actors=2)
    assert on_ray["status"] == "ok"
    ray_rows, local_rows = lines(tmp_path / "ray" / "data.jsonl"), lines(
        tmp_path / "local" / "data.jsonl")
    assert [r["_meta"]["id"] for r in ray_rows] == [r["_meta"]["id"] for r in local_rows]
    assert all(r["verdict"].startswith("first verdict") for r in ray_rows)
    assert all(r["_meta"]["model"] == "scripted:teacher" for r in ray_rows)  # polish's
    models = on_ray["models"]
    assert models["judge"]["model"] == "scripted:judge-a"
    assert models["judge"]["calls"] == local["models"]["judge"]["calls"] == 5
    assert models["default"]["calls"] == local["models"]["default"]["calls"] == 10
    assert models["judge"]["prompt_tokens"] == local["models"]["judge"]["prompt_tokens"] > 0
    steps = {s["name"]: s for s in on_ray["steps"]}
    assert steps["judge"]["llm_calls"] == 5 and steps["ask"]["llm_calls"] == 5
