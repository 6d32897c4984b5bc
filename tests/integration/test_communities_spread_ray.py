"""semantic_communities above its ``spread_above`` on ``--executor ray`` (a real local
cluster, 2 CPUs): digests, nearest cells and each cell's exact search run in actors, reading
vectors from the embedding cache; the driver fits the cells on a sample and builds the
communities - the same kept and dropped records (ids and reasons) as a local run that holds
every vector."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from synthloom.api import RunOptions, run_recipe
from synthloom.core.recipe import Recipe
from synthloom.quality import spread
from tests.unit.test_communities_spread import near_copy_texts

ray = pytest.importorskip("ray", reason="ray not installed (extra: ray)")
pytestmark = pytest.mark.integration


def run(src: Path, out: Path, spread_above: int, **options: object) -> list[str]:
    recipe = Recipe.from_dict({
        "name": "communities",
        "sources": [{"name": "rows", "type": "jsonl", "path": str(src)}],
        "steps": [{"name": "communities", "type": "semantic_communities",
                   "embedder": "hashing", "ann": "cells", "spread_above": spread_above}],
    })
    summary = asyncio.run(run_recipe(recipe, out, RunOptions(**options))).to_json()
    assert summary["status"] == "ok"
    return [(out / name).read_text() for name in ("data.jsonl", "dropped.jsonl")]


def test_spread_communities_on_ray_match_the_local_run(tmp_path: Path, monkeypatch) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"id": f"r{i:05d}", "text": t}) + "\n"
                           for i, t in enumerate(near_copy_texts(2_400))))
    local = run(src, tmp_path / "local", spread_above=10**9)
    kept, dropped = (text.count("\n") for text in local)
    assert kept + dropped == 2_400 and dropped > 1_000
    searched: list[int] = []
    search = spread.spread_neighbours

    def counted(rows: spread.CachedRows, *args: object) -> object:
        searched.append(len(rows))
        return search(rows, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(spread, "spread_neighbours", counted)
    assert run(src, tmp_path / "spread", spread_above=100) == local  # in process
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR",
             runtime_env={"env_vars": {"PYTHONPATH": os.getcwd()}})
    ray.data.DataContext.get_current().execution_options.preserve_order = True
    try:
        assert run(src, tmp_path / "ray", spread_above=100, executor="ray",
                   ray_actors=2) == local
    finally:
        ray.shutdown()
    assert len(searched) == 2 and searched[0] == searched[1] > 1_000  # distinct rows
