"""Step types from outside the package: ``type: module:Class`` in a recipe (a module on the path
or next to the recipe) and entry points of installed packages (group ``synthloom.steps``); a bad
``type:`` is one RecipeError naming the recipe, the step and the cause."""

from __future__ import annotations

import os
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from synthloom.core import registry
from synthloom.core.errors import RecipeError
from synthloom.core.recipe import Recipe
from tests.support.runs import assert_closed, read_jsonl, run_scripted, step
from tests.support.scripted_backend import ScriptedTestBackend

STEPS_MODULE = '''
import os
from typing import Any

from synthloom.core.steps import FilterStep, MapStep, StepConfig


class ShoutConfig(StepConfig):
    column: str = "text"


class Shout(MapStep):
    """Upper-cases a column, in the process pool (cpu_bound): the workers import this module."""

    cpu_bound = True
    Config = ShoutConfig

    def reads(self) -> list[str]:
        return [self.config.column]

    def process(self, record: dict[str, Any], ctx: Any) -> dict[str, Any]:
        return {"shout": record[self.config.column].upper(), "pid": os.getpid()}


class NoBoom(FilterStep):
    type_name = "no_boom"

    def reads(self) -> list[str]:
        return ["shout"]

    def process(self, record: dict[str, Any], ctx: Any) -> str | None:
        return "boom" if "BOOM" in record["shout"] else None


class NotAStep:
    pass
'''

RECIPE = '''
name: outside
sources:
  - {name: rows, type: rows, path: rows.jsonl}
steps:
  - {name: shout, type: "{module}:Shout"}
  - {name: keep, type: {module}:NoBoom}
'''


@pytest.fixture
def clean_imports() -> Iterator[None]:
    """Undo what loading a recipe's module does to sys.path and sys.modules."""
    path, modules = list(sys.path), set(sys.modules)
    yield
    sys.path[:] = path
    for name in set(sys.modules) - modules:
        del sys.modules[name]


def write_recipe(folder: Path, module: str, steps: str = RECIPE) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{module}.py").write_text(textwrap.dedent(STEPS_MODULE))
    (folder / "rows.jsonl").write_text('{"text": "hello"}\n{"text": "boom"}\n{"text": "x"}\n')
    recipe = folder / "outside.yaml"
    recipe.write_text(steps.replace("{module}", module))
    return recipe


def test_a_step_next_to_the_recipe_runs_end_to_end(tmp_path: Path, clean_imports: None,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    recipe_path = write_recipe(tmp_path / "recipe", "outside_steps_e2e")
    monkeypatch.chdir(tmp_path)  # not the recipe's folder: the module is found next to it
    recipe = Recipe.load(recipe_path)
    assert recipe.steps[0].type_name == "outside_steps_e2e:Shout"  # its fingerprint's name
    summary = run_scripted(recipe, tmp_path / "out", ScriptedTestBackend())
    assert summary["status"] == "ok", summary
    assert_closed(summary)
    assert step(summary, "keep")["dropped"] == 1
    rows = read_jsonl(tmp_path / "out" / "data.jsonl")
    assert [r["shout"] for r in rows] == ["HELLO", "X"]
    assert os.getpid() not in {r["pid"] for r in rows}  # a pool worker imported the module
    assert str((tmp_path / "recipe").resolve()) in registry.module_folders()


def test_a_module_on_the_path_wins_and_sinks_resolve_too(tmp_path: Path,
                                                         clean_imports: None) -> None:
    (tmp_path / "outside_on_path.py").write_text(
        "from synthloom.export.sinks import JsonlSink\n\nclass MySink(JsonlSink):\n    pass\n")
    sys.path.insert(0, str(tmp_path))
    recipe = Recipe.from_dict({
        "name": "t", "sources": [{"name": "d", "type": "text_files", "path": "pkg:data/quickstart"}],
        "sinks": [{"type": "outside_on_path:MySink", "path": "x.jsonl"}]})
    assert type(recipe.sinks[0]).__name__ == "MySink"


@pytest.mark.parametrize(
    ("type_", "cause"),
    [
        ("outside_missing_mod:Shout", "no module named 'outside_missing_mod' on the Python path "
                                      "nor in the recipe's folder"),
        ("{module}:Nope", "has no attribute 'Nope'"),
        ("{module}:NotAStep", "is not a subclass of synthloom.core.steps.Step"),
        ("{module}:StepConfig", "is not a subclass"),
        ("{module}:", "expected module:Class"),
        ("no_such_type", "unknown step type 'no_such_type'"),
    ],
)
def test_a_bad_type_is_one_error_naming_recipe_step_and_cause(
        tmp_path: Path, clean_imports: None, type_: str, cause: str) -> None:
    module = f"outside_bad_{abs(hash(type_))}"
    recipe = write_recipe(tmp_path, module, RECIPE.replace('"{module}:Shout"', f'"{type_}"'))
    with pytest.raises(RecipeError) as info:
        Recipe.load(recipe)
    message = str(info.value)
    assert str(recipe) in message and "steps[0] (shout)" in message and cause in message
    assert "\n" not in message


def test_an_import_error_inside_the_module_is_the_cause(tmp_path: Path,
                                                        clean_imports: None) -> None:
    recipe = write_recipe(tmp_path, "outside_broken")
    (tmp_path / "outside_broken.py").write_text("import outside_not_installed_dep\n")
    with pytest.raises(RecipeError, match=r"importing outside_broken from .* failed: "
                                          r"ModuleNotFoundError: .*outside_not_installed_dep"):
        Recipe.load(recipe)


def test_an_abstract_step_is_refused(tmp_path: Path, clean_imports: None) -> None:
    (tmp_path / "outside_abstract.py").write_text(
        "from synthloom.core.steps import MapStep\n\nclass Half(MapStep):\n    pass\n")
    recipe = write_recipe(tmp_path, "outside_abstract_steps",
                          RECIPE.replace('"{module}:Shout"', '"outside_abstract:Half"'))
    with pytest.raises(RecipeError, match="Half is abstract"):
        Recipe.load(recipe)


# --- entry points -----------------------------------------------------------------------------


def make_dist(site: Path, entry_points: str, module: str, source: str) -> None:
    """A tiny installed distribution: ``*.dist-info`` with METADATA and entry_points.txt, which
    importlib.metadata finds on sys.path like any pip-installed package."""
    info = site / "outside_plugin-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: outside-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))
    (site / f"{module}.py").write_text(textwrap.dedent(source))


@pytest.fixture
def fresh_registry(monkeypatch: pytest.MonkeyPatch, clean_imports: None) -> None:
    registry.load_builtins()
    monkeypatch.setattr(registry, "_STEPS", dict(registry._STEPS))
    monkeypatch.setattr(registry, "_SINKS", dict(registry._SINKS))
    monkeypatch.setattr(registry, "_BROKEN", {})
    monkeypatch.setattr(registry, "_plugins_loaded", False)


def test_an_entry_point_registers_a_step_type(tmp_path: Path, fresh_registry: None) -> None:
    make_dist(tmp_path, """
        [synthloom.steps]
        shout_plugin = outside_plugin_mod:Shout
        generate = outside_plugin_mod:Shout
        broken_plugin = outside_plugin_mod:Missing
        """, "outside_plugin_mod", STEPS_MODULE)
    sys.path.insert(0, str(tmp_path))
    cls = registry.step_type("shout_plugin")
    assert cls.__name__ == "Shout" and cls.type_name == "shout_plugin"
    assert registry.step_type("generate").__module__ == "synthloom.methods.generate"  # kept
    assert "shout_plugin" in registry.step_types()
    recipe = Recipe.from_dict({
        "name": "t", "sources": [{"name": "d", "type": "text_files", "path": "pkg:data/quickstart"}],
        "steps": [{"name": "s", "type": "shout_plugin"}]})
    assert type(recipe.steps[0]) is cls
    with pytest.raises(RecipeError, match=r"steps\[0\] \(s\): step type 'broken_plugin': entry "
                                          r"point broken_plugin = outside_plugin_mod:Missing"):
        Recipe.from_dict({
            "name": "t", "sources": [{"name": "d", "type": "text_files", "path": "x"}],
            "steps": [{"name": "s", "type": "broken_plugin"}]})
    with pytest.raises(RecipeError, match="entry points that failed to load: broken_plugin"):
        registry.step_type("nope")


def test_an_entry_point_may_name_a_module_that_registers(tmp_path: Path,
                                                         fresh_registry: None) -> None:
    make_dist(tmp_path, """
        [synthloom.steps]
        outside_mod_plugin = outside_registering_mod
        """, "outside_registering_mod", """
        from synthloom.core.registry import register_step
        from synthloom.core.steps import MapStep

        @register_step
        class Echo(MapStep):
            type_name = "outside_echo"

            def process(self, record, ctx):
                return {}
        """)
    sys.path.insert(0, str(tmp_path))
    assert registry.step_type("outside_echo").__name__ == "Echo"
