"""The parse cache on ``--executor ray`` (a real local cluster, 2 CPUs): read tasks fill the
run's ``parsed_documents.db`` together, and a Ray run, cold or warm, writes the same records
and failure lines as a local run without the cache."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from pathlib import Path

import pytest

from synthloom.api import RunOptions, run_recipe
from synthloom.core.recipe import Recipe
from synthloom.sources.documents import Documents
from synthloom.sources.parse_cache import DB_NAME
from tests.unit.test_parse_cache import corpus  # noqa: F401 - the fixture

ray = pytest.importorskip("ray", reason="ray not installed (extra: ray)")
pytestmark = pytest.mark.integration


def run(corpus_dir: Path, out: Path, executor: str, **config: object) -> dict[str, bytes]:
    recipe = Recipe(name="read", sources=[Documents(name="docs", path=str(corpus_dir),
                                                    **config)])
    asyncio.run(run_recipe(recipe, out, RunOptions(executor=executor)))
    return {name: (out / name).read_bytes() for name in ("data.jsonl", "failed.jsonl")}


def test_ray_read_tasks_share_the_cache(corpus: Path, tmp_path: Path) -> None:  # noqa: F811
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR",
             runtime_env={"env_vars": {"PYTHONPATH": os.getcwd()}})
    try:
        local = run(corpus, tmp_path / "local", "local", cache=False)
        assert run(corpus, tmp_path / "ray", "ray") == local  # cold: tasks parse and write
        db = sqlite3.connect(tmp_path / "ray" / DB_NAME)
        assert db.execute("SELECT count(*) FROM parsed").fetchone()[0] == 8
        version = db.execute("PRAGMA data_version").fetchone()[0]
        assert run(corpus, tmp_path / "ray", "ray") == local  # warm
        # No task committed a row (a parsed file is always written): every file was a hit.
        assert db.execute("PRAGMA data_version").fetchone()[0] == version
        db.close()
    finally:
        ray.shutdown()
