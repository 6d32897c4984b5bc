"""Recipe loading: YAML and Python build the same graph; bad recipes fail before any LLM call."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from synthloom.core.context import RunContext
from synthloom.core.errors import RecipeError
from synthloom.core.fingerprint import stable_hash
from synthloom.core.recipe import Recipe, packaged_recipes
from synthloom.methods.generate import Generate
from synthloom.quality.filters import LengthFilter
from synthloom.sources.files import TextFiles

BASE = {
    "name": "t",
    "params": {"docs": {"default": "pkg:data/quickstart"}, "words": {"default": 3}},
    "sources": [{"name": "d", "type": "text_files", "path": "${docs}"}],
    "steps": [
        {
            "name": "g",
            "type": "generate",
            "template": "quickstart/prompts/response.jinja",
            "temperature": 0.5,
        },
        {"name": "f", "type": "filter_length", "column": "text", "min_words": "${words}"},
    ],
}


def load(data: dict, **overrides: str) -> Recipe:
    return Recipe.from_dict(data, overrides=overrides)


def test_params_substitute_with_their_type_and_overrides_apply() -> None:
    recipe = load(BASE, words="7", **{"g.temperature": "0.1"})
    assert recipe.steps[1].config.min_words == 7
    assert recipe.steps[0].config.temperature == 0.1
    assert recipe.inputs_of(recipe.steps[1]) == "g" and recipe.inputs_of(recipe.steps[0]) == "d"


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["steps"][0].update(tempreature=1), "unknown key 'tempreature'"),
        (lambda d: d["steps"][0].update(temperature="hot"), "temperature"),
        (lambda d: d["steps"][0].update(type="nope"), "unknown step type 'nope'"),
        (lambda d: d.update(extra_top=1), "unknown key 'extra_top'"),
        (lambda d: d["steps"][1].update(input="missing"), "reads 'missing'"),
        (lambda d: d["steps"][1].update(name="g"), "two nodes are named 'g'"),
        (lambda d: d["steps"][0].update(template="${undeclared}"), "undeclared"),
        (lambda d: d["sources"][0].update(type="generate"), "'generate' is a map step"),
    ],
)
def test_bad_recipes_name_the_step_and_the_cause(mutate, message: str) -> None:
    data = yaml.safe_load(yaml.safe_dump(BASE))
    mutate(data)
    with pytest.raises(RecipeError) as info:
        load(data)
    assert message in str(info.value)


def test_unknown_set_key_is_an_error() -> None:
    with pytest.raises(RecipeError, match="no such parameter"):
        load(BASE, nope="1")
    with pytest.raises(RecipeError, match="unknown step"):
        load(BASE, **{"zz.temperature": "1"})


def test_python_api_builds_the_same_graph_as_yaml(tmp_path: Path) -> None:
    from_yaml = load(BASE)
    built = Recipe(
        name="t",
        sources=[TextFiles(name="d", path="pkg:data/quickstart")],
        steps=[
            Generate(name="g", template="quickstart/prompts/response.jinja", temperature=0.5),
            LengthFilter(name="f", column="text", min_words=3),
        ],
    )
    ctx = RunContext(run_dir=tmp_path)
    for a, b in zip(from_yaml.nodes, built.nodes, strict=True):
        a.setup(ctx)
        b.setup(ctx)
        assert a.fingerprint(ctx) == b.fingerprint(ctx)


def test_fingerprint_and_item_keys_follow_what_the_step_reads(tmp_path: Path) -> None:
    ctx = RunContext(run_dir=tmp_path)
    gen = Generate(name="g", template="quickstart/prompts/response.jinja")
    gen.setup(ctx)
    fp = gen.fingerprint(ctx)
    record = {"instruction": "Say hi", "other": 1, "_meta": {"id": "x"}}
    key = gen.item_key(fp, record, "")
    assert key == gen.item_key(fp, {**record, "other": 2}, "")  # unread column
    assert key != gen.item_key(fp, {**record, "instruction": "Say bye"}, "")
    renamed = Generate(name="other_name", template="quickstart/prompts/response.jinja")
    renamed.setup(ctx)
    assert renamed.fingerprint(ctx) == fp  # wiring is not computation
    hotter = Generate(name="g", template="quickstart/prompts/response.jinja", temperature=0.9)
    hotter.setup(ctx)
    assert hotter.fingerprint(ctx) != fp
    assert RunContext(run_dir=tmp_path, seed=1).seed != ctx.seed
    assert gen.fingerprint(RunContext(run_dir=tmp_path, seed=1)) != fp
    assert stable_hash({"a": 1, "b": 2}) == stable_hash({"b": 2, "a": 1})


def test_shipped_recipes_load() -> None:
    shipped = packaged_recipes()
    assert "quickstart" in shipped and "synthquestions" in shipped
    for name, path in shipped.items():
        spec = yaml.safe_load(path.read_text())
        required = [k for k, v in spec.get("params", {}).items() if v.get("required")]
        if required:  # must name what is missing, before any work
            with pytest.raises(RecipeError, match=f"--set {required[0]}="):
                Recipe.load(name)
        else:
            assert Recipe.load(name).nodes, name


def test_required_params_are_reported() -> None:
    data = yaml.safe_load(yaml.safe_dump(BASE))
    data["params"]["docs"] = {"required": True, "help": "folder of documents"}
    with pytest.raises(RecipeError, match=r"needs: --set docs=\.\.\. \(folder of documents\)"):
        load(data)
    assert load(data, docs="pkg:data/quickstart").sources[0].config.path == "pkg:data/quickstart"
