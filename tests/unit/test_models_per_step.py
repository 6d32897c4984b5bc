"""Models per step (recipe ``models:``, step ``model: NAME``, ``--model-for``), with the
scripted test backend (a test double) standing in for each named model: parsing and
validation, one client per model, the step's own model id in its fingerprint (changing the
judge reruns only the judge and what follows), and per-model accounting in summary.json."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from synthloom.api import RunOptions, run_recipe
from synthloom.core.errors import RecipeError
from synthloom.core.models import ModelSpec, parse_model_for, parse_model_spec
from synthloom.core.recipe import Recipe
from tests.support.scripted_backend import ScriptedTestBackend, last_user_text


def write_inputs(tmp_path: Path, n: int = 5) -> Path:
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(n):
        (docs / f"{i:02d}.txt").write_text(f"Topic {i}\n\nSome text about topic {i}.")
    (tmp_path / "ask.jinja").write_text("Ask about: {{ text }}")
    (tmp_path / "judge.jinja").write_text("Judge: {{ question }}")
    (tmp_path / "polish.jinja").write_text("Polish: {{ verdict }}")
    return tmp_path


def recipe_dict(folder: Path, judge_model: str | None = "judge",
                models: dict[str, Any] | None = None) -> dict[str, Any]:
    judge: dict[str, Any] = {"name": "judge", "type": "generate",
                             "template": str(folder / "judge.jinja"), "output": "verdict"}
    if judge_model is not None:
        judge["model"] = judge_model
    return {
        "name": "two-models",
        "models": models if models is not None else {"judge": "default"},
        "sources": [{"name": "docs", "type": "text_files", "path": str(folder / "docs")}],
        "steps": [
            {"name": "ask", "type": "generate", "template": str(folder / "ask.jinja"),
             "output": "question"},
            judge,
            {"name": "polish", "type": "generate", "template": str(folder / "polish.jinja"),
             "output": "final"},
        ],
    }


def teacher(request, seed) -> str:
    text = last_user_text(request)
    if text.startswith("Ask about"):
        return "What is " + text.split(":", 1)[1].split()[0] + "?"
    return "polished: " + text[:40]


def judge_says(word: str):
    return lambda request, seed: f"{word} verdict on {last_user_text(request)[7:30]}"


def run(recipe: Recipe, out: Path, **options: Any) -> dict[str, Any]:
    return asyncio.run(run_recipe(recipe, out, RunOptions(**options))).to_json()


# --- parsing and validation ----------------------------------------------------------------------


def test_model_specs_parse_from_mapping_string_and_default() -> None:
    spec = parse_model_spec({"backend": "openai:http://127.0.0.1:8001/v1", "model": "qwen",
                             "concurrency": 3, "rpm": 60, "budget_tokens": 1000}, "here")
    assert (spec.backend, spec.model, spec.concurrency, spec.rpm, spec.budget_tokens) == (
        "openai:http://127.0.0.1:8001/v1", "qwen", 3, 60, 1000)
    assert not spec.is_alias
    assert parse_model_spec("reward:/models/rm", "here").backend == "reward:/models/rm"
    assert parse_model_spec("default", "here").is_alias
    assert parse_model_spec(None, "here").is_alias
    # The command line's mapping form (YAML flow mapping).
    cli = parse_model_spec('{backend: "openai:http://h:1/v1", model: m, tpm: 5000}', "cli")
    assert (cli.backend, cli.model, cli.tpm) == ("openai:http://h:1/v1", "m", 5000)
    with pytest.raises(RecipeError, match=r"models\.judge: unknown key 'concurency'"):
        parse_model_spec({"backend": "default", "concurency": 2}, "models.judge")
    with pytest.raises(RecipeError, match="backend must be a spec string"):
        parse_model_spec({"backend": 3}, "models.judge")


def test_model_for_values_are_parsed_and_checked() -> None:
    assert parse_model_for(["judge=openai:http://127.0.0.1:8001/v1", "rm=reward:/m"]) == {
        "judge": "openai:http://127.0.0.1:8001/v1", "rm": "reward:/m"}
    with pytest.raises(RecipeError, match="expected NAME=SPEC"):
        parse_model_for(["judge"])
    with pytest.raises(RecipeError, match="given twice"):
        parse_model_for(["a=x:1", "a=x:2"])


def test_recipe_models_block_is_validated_naming_the_step(tmp_path: Path) -> None:
    folder = write_inputs(tmp_path)
    recipe = Recipe.from_dict(recipe_dict(folder, models={
        "judge": {"backend": "openai:http://127.0.0.1:9/v1", "model": "j", "concurrency": 2}}))
    assert recipe.models["judge"] == ModelSpec(backend="openai:http://127.0.0.1:9/v1",
                                               model="j", concurrency=2)
    assert recipe.models_used() == {"default", "judge"}
    with pytest.raises(RecipeError, match=r"step 'judge' names model 'jduge', which is not "
                                          r"declared under models: \(declared: default, judge"):
        Recipe.from_dict(recipe_dict(folder, judge_model="jduge"))
    # --model-for may add the name a step needs.
    added = Recipe.from_dict(recipe_dict(folder, judge_model="critic"),
                             models={"critic": "openai:http://127.0.0.1:9/v1"})
    assert added.models["critic"].backend == "openai:http://127.0.0.1:9/v1"
    bad = recipe_dict(folder)
    bad["sources"][0]["model"] = "judge"
    with pytest.raises(RecipeError, match="step 'docs' names model 'judge' but does not call"):
        Recipe.from_dict(bad)
    with pytest.raises(RecipeError, match="'default' is the run's own model"):
        Recipe.from_dict(recipe_dict(folder, models={"default": "openai:http://h:1/v1"}))


def test_models_block_takes_params(tmp_path: Path) -> None:
    folder = write_inputs(tmp_path)
    raw = recipe_dict(folder, models={"judge": {"backend": "${judge_backend}"}})
    raw["params"] = {"judge_backend": {"default": "default"}}
    assert Recipe.from_dict(raw).models["judge"].is_alias
    url = "openai:http://127.0.0.1:9/v1"
    assert Recipe.from_dict(raw, overrides={"judge_backend": url}).models["judge"].backend == url


def test_cli_model_for_unknown_step_model_is_one_clear_line(tmp_path: Path) -> None:
    from synthloom.cli import app

    folder = write_inputs(tmp_path)
    path = tmp_path / "r.yaml"
    import yaml

    path.write_text(yaml.safe_dump(recipe_dict(folder, judge_model="critic")))
    result = CliRunner().invoke(app, ["run", str(path), "--out", str(tmp_path / "o"), "--quiet"])
    assert result.exit_code == 2
    assert "step 'judge' names model 'critic'" in result.output
    result = CliRunner().invoke(app, ["run", str(path), "--out", str(tmp_path / "o"), "--quiet",
                                      "--model-for", "critic"])
    assert result.exit_code == 2 and "expected NAME=SPEC" in result.output


# --- one client per model, fingerprints, accounting ----------------------------------------------


def test_each_step_calls_its_own_model_and_summary_counts_per_model(tmp_path: Path) -> None:
    folder = write_inputs(tmp_path)
    default = ScriptedTestBackend(teacher, name="teacher")
    judge = ScriptedTestBackend(judge_says("first"), name="judge-a")
    summary = run(Recipe.from_dict(recipe_dict(folder)), tmp_path / "out", backend=default,
                  model_for={"judge": judge})
    # 5 items: ask + polish on the run's model, judge on its own.
    assert (default.calls, judge.calls) == (10, 5)
    assert all(p.startswith("Judge:") for p in judge.prompts)
    assert not any(p.startswith("Judge:") for p in default.prompts)
    models = summary["models"]
    assert models["default"]["model"] == "scripted:teacher"
    assert models["judge"]["model"] == "scripted:judge-a"
    assert (models["default"]["calls"], models["judge"]["calls"]) == (10, 5)
    assert models["default"]["steps"] == ["ask", "polish"]
    assert models["judge"]["steps"] == ["judge"]
    steps = {s["name"]: s for s in summary["steps"]}
    # The client's tokens of a model equal the steps' tokens on that model.
    assert models["judge"]["prompt_tokens"] == steps["judge"]["prompt_tokens"] > 0
    assert models["judge"]["completion_tokens"] == steps["judge"]["completion_tokens"] > 0
    assert models["default"]["completion_tokens"] == (
        steps["ask"]["completion_tokens"] + steps["polish"]["completion_tokens"])
    rows = [json.loads(x) for x in (tmp_path / "out" / "data.jsonl").read_text().splitlines()]
    assert len(rows) == 5 and all(r["verdict"].startswith("first verdict") for r in rows)
    saved = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert saved["models"]["judge"]["calls"] == 5


def test_changing_the_judge_reruns_only_the_judge_and_what_follows(tmp_path: Path) -> None:
    folder = write_inputs(tmp_path)
    out = tmp_path / "out"
    recipe = recipe_dict(folder)
    first = ScriptedTestBackend(teacher, name="teacher")
    run(Recipe.from_dict(recipe), out, backend=first,
        model_for={"judge": ScriptedTestBackend(judge_says("first"), name="judge-a")})
    # Same run folder, same judge: nothing is called again.
    again = ScriptedTestBackend(teacher, name="teacher")
    same_judge = ScriptedTestBackend(judge_says("first"), name="judge-a")
    run(Recipe.from_dict(recipe), out, backend=again, model_for={"judge": same_judge})
    assert (again.calls, same_judge.calls) == (0, 0)
    # Another judge model: the judge step reruns (new model id in its fingerprint); "ask"
    # (before it) replays from the cache; "polish" reruns because its input changed.
    teacher_b = ScriptedTestBackend(teacher, name="teacher")
    judge_b = ScriptedTestBackend(judge_says("second"), name="judge-b")
    summary = run(Recipe.from_dict(recipe), out, backend=teacher_b, model_for={"judge": judge_b})
    steps = {s["name"]: s for s in summary["steps"]}
    assert judge_b.calls == 5
    assert teacher_b.calls == 5 and all(p.startswith("Polish:") for p in teacher_b.prompts)
    assert (steps["ask"]["cached"], steps["judge"]["cached"], steps["polish"]["cached"]) == (
        5, 0, 0)
    assert summary["models"]["judge"]["model"] == "scripted:judge-b"
    rows = [json.loads(x) for x in (out / "data.jsonl").read_text().splitlines()]
    assert all(r["verdict"].startswith("second verdict") for r in rows)
    assert all(r["_meta"]["model"] == "scripted:teacher" for r in rows)  # polish's provenance


def test_an_alias_of_the_run_model_shares_its_client_and_cache(tmp_path: Path) -> None:
    folder = write_inputs(tmp_path)
    out = tmp_path / "out"
    backend = ScriptedTestBackend(teacher, name="teacher")
    summary = run(Recipe.from_dict(recipe_dict(folder)), out, backend=backend)  # judge: default
    assert backend.calls == 15
    assert summary["models"]["judge"] == {"same_as": "default", "steps": ["judge"]}
    # Without the models block (the judge on the run's model) the fingerprints are the same:
    # an alias changes nothing, so nothing reruns.
    plain = ScriptedTestBackend(teacher, name="teacher")
    summary = run(Recipe.from_dict(recipe_dict(folder, judge_model=None, models={})), out,
                  backend=plain)
    assert plain.calls == 0
    assert "models" not in summary


def test_each_model_has_its_own_concurrency_limit(tmp_path: Path) -> None:
    folder = write_inputs(tmp_path, n=12)
    default = ScriptedTestBackend(teacher, name="teacher", latency_s=0.01)
    judge = ScriptedTestBackend(judge_says("j"), name="judge", latency_s=0.02)
    recipe = Recipe.from_dict(recipe_dict(folder, models={"judge": {"backend": "default"}}))
    recipe.with_models({"judge": {"backend": judge, "concurrency": 1}})
    summary = run(recipe, tmp_path / "out", backend=default, concurrency=6)
    assert judge.max_in_flight == 1
    assert default.max_in_flight > 1
    assert summary["models"]["judge"]["concurrency_limit"] == 1
    assert summary["models"]["default"]["concurrency_limit"] == 6


def test_a_models_token_share_and_the_run_budget(tmp_path: Path) -> None:
    from synthloom.core.errors import BudgetExhausted
    from synthloom.llm.limits import TokenBudget
    from synthloom.llm.models import SharedBudget

    run_budget = TokenBudget(100)
    judge_share, other = SharedBudget(TokenBudget(30), run_budget), SharedBudget(
        TokenBudget(None), run_budget)
    judge_share.add(30)
    other.add(20)
    assert (judge_share.spent, other.spent, run_budget.spent) == (30, 20, 50)
    with pytest.raises(BudgetExhausted):
        judge_share.check()  # its own share is spent
    other.check()  # the run still has tokens
    other.add(50)
    with pytest.raises(BudgetExhausted):
        other.check()  # all models together spent the run's budget
    # In a run: a judge with no share left stops the run cleanly (resumable); the run's own
    # model is not limited by the judge's share.
    folder = write_inputs(tmp_path, n=6)
    default = ScriptedTestBackend(teacher, name="teacher")
    judge = ScriptedTestBackend(judge_says("j"), name="judge")
    recipe = Recipe.from_dict(recipe_dict(folder))
    recipe.with_models({"judge": {"backend": judge, "budget_tokens": 0}})
    summary = run(recipe, tmp_path / "out", backend=default, budget_tokens=100_000)
    assert summary["status"] == "stopped" and summary["stopped_reason"] == "budget_exhausted"
    assert judge.calls == 0 and default.calls == 6  # "ask" ran for every item
    assert {s["name"]: s["failed"] for s in summary["steps"]}["judge"] == 6


def test_report_html_has_a_row_per_model(tmp_path: Path) -> None:
    from synthloom.export.report import build_report

    folder = write_inputs(tmp_path)
    out = tmp_path / "out"
    judge = ScriptedTestBackend(judge_says("j"), name="judge-a")
    run(Recipe.from_dict(recipe_dict(folder)), out,
        backend=ScriptedTestBackend(teacher, name="teacher"), model_for={"judge": judge})
    html = build_report(out)
    assert "<h3>Per model</h3>" in html
    table = html[html.index("<h3>Per model</h3>"):]
    row = table[table.index('<td class="">judge</td>'):]
    row = row[:row.index("</tr>")]
    assert "scripted:judge-a" in row
    summary = json.loads((out / "summary.json").read_text())
    assert f">{summary['models']['judge']['calls']}<" in row
    assert f">{summary['models']['judge']['prompt_tokens']}<" in row


def test_model_for_a_name_nothing_uses_is_an_error(tmp_path: Path) -> None:
    folder = write_inputs(tmp_path)
    with pytest.raises(RecipeError, match=r"--model-for jduge: the recipe declares no model "
                                          r"'jduge' and no step calls one \(models: judge"):
        Recipe.from_dict(recipe_dict(folder), models={"jduge": "openai:http://h:1/v1"})
    recipe = Recipe.from_dict(recipe_dict(folder))
    with pytest.raises(RecipeError, match="--model-for critic: the recipe declares no model"):
        recipe.with_models({"critic": "openai:http://h:1/v1"})
    # --set moves a step to a new name; --model-for then gives that name its backend.
    moved = Recipe.from_dict(recipe_dict(folder), overrides={"polish.model": "critic"},
                             models={"critic": "openai:http://h:1/v1"})
    assert moved.models_used() == {"default", "judge", "critic"}


def test_dataset_card_lists_every_model_that_made_the_data(tmp_path: Path) -> None:
    from synthloom.export.formats import ColumnMap, ExportOptions, export

    folder = write_inputs(tmp_path)
    out = tmp_path / "out"
    run(Recipe.from_dict(recipe_dict(folder)), out,
        backend=ScriptedTestBackend(teacher, name="teacher"),
        model_for={"judge": ScriptedTestBackend(judge_says("j"), name="judge-a")})
    export(out, tmp_path / "x", ExportOptions(format="alpaca", columns=ColumnMap(
        instruction="question", response="final")))
    card = (tmp_path / "x" / "README.md").read_text()
    models = card[card.index("## Models"):]
    # The records name the last step's model; the judge's model made the data too.
    assert "`scripted:teacher`: 5 exported records" in models
    assert "`scripted:judge-a`: named model `judge` (`judge`; 5 calls this run" in models


def test_synthloom_steps_shows_model_only_for_llm_steps() -> None:
    from synthloom.cli import app

    def settings(name: str) -> set[str]:
        result = CliRunner().invoke(app, ["steps", name], env={"COLUMNS": "200"})
        assert result.exit_code == 0
        return {line.split()[0] for line in result.output.splitlines()[1:] if line.strip()}

    assert "model" in settings("generate")
    assert "model" not in settings("filter_length")
