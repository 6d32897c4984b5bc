"""Decontamination against evaluation sets in JSONL and Parquet (hand-made rows)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from synthloom.api import RunOptions, run_recipe
from synthloom.core.context import RunContext
from synthloom.core.errors import RecipeError
from synthloom.core.recipe import Recipe
from synthloom.quality.decontam import Decontaminate

QUESTION = ("A baker sells 48 loaves on Monday and twice as many on Tuesday, then gives away a "
            "third of all the loaves to a shelter. How many loaves does the baker have left?")


def make_step(tmp_path: Path, **kw) -> Decontaminate:
    bench = tmp_path / "bench.jsonl"
    bench.write_text(json.dumps({"question": QUESTION, "answer": "96"}) + "\n"
                     + json.dumps({"question": "Too short to index."}) + "\n")
    step = Decontaminate(name="decon", column="text",
                         benchmarks={"bakery": {"path": str(bench)}}, **kw)
    step.setup(RunContext(run_dir=tmp_path))
    return step


def test_planted_13gram_is_found_with_benchmark_row_and_span(tmp_path: Path) -> None:
    step = make_step(tmp_path)
    words = QUESTION.split()
    planted = "Here is a fun one. " + " ".join(words[3:16]) + " Explain your reasoning."
    reason = step.check(planted)
    assert reason is not None
    assert "'bakery'" in reason and "bench.jsonl:1" in reason and "13-word overlap" in reason
    assert '"' + " ".join(words[3:16]) + '"' in reason  # the record's own text span
    # Case and punctuation do not hide a match; 12 words are not enough.
    assert step.check(" ".join(words[3:16]).upper().replace(" ", ", ")) is not None
    assert step.check("Here is a fun one. " + " ".join(words[3:15]) + " Explain.") is None
    assert step.check("Completely unrelated text about rivers and mountains " * 3) is None


def test_ngram_size_is_configurable_and_longest_run_is_reported(tmp_path: Path) -> None:
    step = make_step(tmp_path, ngram=8)
    words = QUESTION.split()
    assert step.check("So: " + " ".join(words[:8]) + ".") is not None
    reason = step.check(QUESTION)
    assert reason is not None and f"{len(words)}-word overlap" in reason


def test_parquet_benchmark_and_recipe_drops(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow", reason="Parquet needs synthloom[parquet]")
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"problem": [QUESTION]}), tmp_path / "eval.parquet")
    rows = [{"text": "Tell me a story about a lighthouse keeper and a storm."},
            {"text": "Solve: " + QUESTION}]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    recipe = Recipe.from_dict({
        "name": "decon",
        "sources": [{"name": "rows", "type": "jsonl", "path": str(tmp_path / "in.jsonl")}],
        "steps": [{"name": "clean", "type": "decontaminate", "benchmarks": {
            "myeval": {"path": str(tmp_path / "eval.parquet"), "column": "problem"}}}],
    })
    out = tmp_path / "out"
    asyncio.run(run_recipe(recipe, out, RunOptions()))
    kept = [json.loads(x) for x in (out / "data.jsonl").read_text().splitlines()]
    dropped = [json.loads(x) for x in (out / "dropped.jsonl").read_text().splitlines()]
    assert [r["text"][:4] for r in kept] == ["Tell"]
    assert "text: contaminated" in dropped[0]["reason"] and "'myeval'" in dropped[0]["reason"]


def test_bad_benchmark_config_is_a_recipe_error(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="file not found"):
        Decontaminate(name="d", benchmarks={"x": str(tmp_path / "nope.jsonl")}).setup(
            RunContext(run_dir=tmp_path))
    (tmp_path / "b.jsonl").write_text(json.dumps({"other": "x"}) + "\n")
    with pytest.raises(RecipeError, match="no row"):
        Decontaminate(name="d", benchmarks={"x": str(tmp_path / "b.jsonl")}).setup(
            RunContext(run_dir=tmp_path))
