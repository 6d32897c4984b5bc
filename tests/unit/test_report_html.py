"""The run report from a real run folder (judge, score filter, a failing step and a dedup barrier
on the ScriptedTestBackend, a test double): self-contained HTML with embedded plots, the funnel,
grouped drop reasons, failures, duplicates, scores, diversity, cost and provenance."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from synthloom.api import RunOptions, run_recipe
from synthloom.cli import app
from synthloom.core.recipe import Recipe
from synthloom.export import plots
from synthloom.export.report import build_report, diversity, reason_group, write_report
from synthloom.quality.judges import RUBRICS, FilterScore, JudgeRubric
from synthloom.sources.files import JsonlRows
from tests.support.scripted_backend import ScriptedTestBackend
from tests.support.steps import ExactDedup, UpperInPool
from tests.unit.test_judges_rubric import judged_text, quoted

INSTRUCTIONS = ["Explain how tides work in two paragraphs",
                "Write a haiku about autumn leaves falling",
                "Explain how tides work in two paragraphs",  # a duplicate
                "hi",
                "Say hi now",
                "boom",  # the pool step fails on it
                "List three uses of a paperclip in an office"]


def responder(request, seed) -> str:
    instruction = quoted(judged_text(request))[0]
    words = len(instruction.split())
    return json.dumps({c: {"analysis": f"{words} words", "score": int(i < words // 2)}
                       for i, c in enumerate(RUBRICS["arena7"].criteria)})


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("report")
    source = tmp / "rows.jsonl"
    # A row number keeps the source from merging the duplicate; the dedup step finds it.
    source.write_text("".join(json.dumps({"instruction": t, "text": t, "row": i}) + "\n"
                              for i, t in enumerate(INSTRUCTIONS)))
    recipe = Recipe(name="report-test", sources=[JsonlRows(name="rows", path=str(source))],
                    steps=[UpperInPool(name="upper", column="instruction"),
                           ExactDedup(name="dedup"),
                           JudgeRubric(name="judge", rubric="arena7"),
                           FilterScore(name="good", min_total=2)])
    asyncio.run(run_recipe(recipe, tmp / "run", RunOptions(backend=ScriptedTestBackend(
        responder))))
    return tmp / "run"


def test_report_is_self_contained_with_embedded_images(run_dir: Path) -> None:
    pytest.importorskip("matplotlib", reason="matplotlib not installed (extra: report)")
    path = write_report(run_dir)
    text = path.read_text()
    assert path == run_dir / "report.html"
    assert len(re.findall(r'<img alt="[^"]*" src="data:image/png;base64,[A-Za-z0-9+/=]{200,}"',
                          text)) >= 4
    assert "http://" not in text and "https://" not in text and "<script" not in text


def test_report_sections_match_the_run(run_dir: Path) -> None:
    summary = json.loads((run_dir / "summary.json").read_text())
    text = build_report(run_dir, price_per_1k=2.0, sample=2)
    for step in summary["steps"]:
        cells = [step["name"], step["kind"], step["in"], step["out"], step["failed"],
                 step["dropped"]]
        row = "".join(f'<td class="{"n" if i > 1 else ""}">{c}</td>'
                      for i, c in enumerate(cells))
        assert row in text, step["name"]
    # Grouped drop reasons: the two score drops share one group with count 2.
    good = [s for s in summary["steps"] if s["name"] == "good"][0]
    assert good["dropped"] == 2
    assert ('<td class="">good</td><td class="">total #/# (specificity=#, domain_knowledge=#, '
            "complexity=#, problem_solving=#, creativity=#, technical_accuracy=#, "
            'real_world_application=#) &lt; min_total #</td><td class="n">2</td>') in text
    assert '<td class="">upper</td><td class="">ValueError</td><td class="n">1</td>' in text
    assert '<td class="">dedup</td><td class="n">1</td>' in text  # duplicates found
    tokens = summary["prompt_tokens"] + summary["completion_tokens"]
    assert f"estimated cost <b>{tokens / 1000 * 2.0:.4f}</b> at 2 per 1k tokens" in text
    assert "mean score per criterion" in text and "distinct_2" in text and "mtld" in text
    first = json.loads((run_dir / "data.jsonl").read_text().splitlines()[0])
    assert f"<h3>{first['_meta']['id']}</h3>" in text
    assert "Sample records (2 of " in text and "&quot;template_hash&quot;" in text


def test_svg_fallback_without_matplotlib(run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plots, "_pyplot", lambda: None)
    text = build_report(run_dir)
    assert "data:image/png" not in text
    assert text.count("<svg") >= 4 and "items per step: passed / failed / dropped" in text


def test_reason_groups_and_diversity() -> None:
    assert reason_group("exact duplicate of 3f2a9c0d1e2b4a5f (similarity=1.00)") == \
        "exact duplicate of <id> (similarity=#)"
    assert reason_group("instruction has 2 words (< 4)") == reason_group(
        "instruction has 3 words (< 4)")
    assert reason_group("refusal pattern 'Sorry' in response") == \
        "refusal pattern '…' in response"
    metrics = diversity(["a b c d", "a b c d"])
    assert metrics["distinct_1"] == pytest.approx(0.5) and metrics["distinct_2"] == \
        pytest.approx(0.5)


def test_cli_report(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    done = CliRunner().invoke(app, ["report", str(run_dir), "--out", str(out),
                                    "--price-per-1k", "0.5"])
    assert done.exit_code == 0, done.output
    assert out.is_file() and "at 0.5 per 1k tokens" in out.read_text()
    done = CliRunner().invoke(app, ["report", str(tmp_path)])
    assert done.exit_code == 2 and "no summary.json" in done.output


def test_throughput_over_time_from_call_finish_times(run_dir: Path, tmp_path: Path) -> None:
    import shutil
    import sqlite3

    chart = ('alt="completion tokens per second over time"',
             "<title>completion tokens per second over time</title>")
    text = build_report(run_dir)  # the client records when each call finished
    assert "needs call finish times" not in text and any(c in text for c in chart)
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    with sqlite3.connect(copy / "run.db") as conn:  # a cache written before finish times
        rows = conn.execute("SELECT key, value FROM llm_cache").fetchall()
        for key, value in rows:
            call = json.loads(value)
            call.pop("finished_at", None)
            conn.execute("UPDATE llm_cache SET value = ? WHERE key = ?", (json.dumps(call), key))
    assert "needs call finish times" in build_report(copy)
