"""`synthloom run`'s model options are RunModelOptions' fields (declared once): every flag
reaches api.RunOptions and llm.models.RunModels with its value and its default."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import synthloom.api as api
from synthloom.cli import app
from synthloom.core.errors import SynthloomError
from synthloom.core.models import RunModelOptions
from synthloom.core.recipe import Recipe
from synthloom.llm.models import RunModels


def _options_of(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, *flags: str) -> api.RunOptions:
    seen: list[api.RunOptions] = []

    async def capture(recipe: Any, out: Any, options: api.RunOptions) -> Any:
        seen.append(options)
        raise SynthloomError("captured")  # stop before any model is built

    monkeypatch.setattr(api, "run_recipe", capture)
    result = CliRunner().invoke(app, ["run", "quickstart", "--out", str(tmp_path), *flags])
    assert "captured" in result.output, result.output
    return seen[0]


def test_every_model_flag_reaches_run_options_and_run_models(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    options = _options_of(
        monkeypatch, tmp_path, "--backend", "openai:http://127.0.0.1:9/v1", "--model", "m",
        "--api-key-env", "MY_KEY", "--concurrency", "3", "--rpm", "60", "--tpm", "9000",
        "--budget-tokens", "500", "--limit", "2")
    expected = {"backend": "openai:http://127.0.0.1:9/v1", "model": "m", "api_key_env": "MY_KEY",
                "concurrency": 3, "rpm": 60.0, "tpm": 9000.0, "budget_tokens": 500}
    assert options.model_options() == expected and options.limit == 2
    models = options.run_models(Recipe.load("quickstart"))
    assert isinstance(models, RunModels) and models.model_options() == expected


def test_defaults_are_the_declared_ones(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    options = _options_of(monkeypatch, tmp_path)
    assert options.model_options() == RunModelOptions().model_options()
    assert options.api_key_env == "OPENAI_API_KEY"


def test_help_lists_each_declared_option_with_its_help() -> None:
    text = " ".join(CliRunner().invoke(app, ["run", "--help"], env={"COLUMNS": "300"})
                    .output.split())
    for f in dataclasses.fields(RunModelOptions):
        assert f"--{f.name.replace('_', '-')}" in text
        assert " ".join(f.metadata["help"].split()) in text
