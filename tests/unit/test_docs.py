"""Docs held by tests: every shipped recipe and step type is documented, the counts in
docs/architecture.md are the code's, every `synthloom ...` command in a code block names real
commands and options (and `synthloom run RECIPE --set k=v` loads with those settings), and the
Python code blocks of docs/ run where they are self-contained (the others: their imports)."""

from __future__ import annotations

import ast
import builtins
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from synthloom.cli import app
from synthloom.core.recipe import Recipe, packaged_recipes
from synthloom.core.registry import step_types

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)


def blocks(lang: set[str]) -> list[tuple[str, str]]:
    """(where, code) of each fenced block whose language is in ``lang``."""
    found = []
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            if match.group(1) in lang:
                line = text[:match.start()].count("\n") + 1
                found.append((f"{path.relative_to(ROOT)}:{line}", match.group(2)))
    return found


# --- recipes, step types, counts ------------------------------------------------------------


def test_every_shipped_recipe_is_in_recipes_md() -> None:
    text = (ROOT / "docs" / "recipes.md").read_text(encoding="utf-8")
    missing = [name for name in packaged_recipes() if f"`{name}`" not in text]
    assert not missing, f"docs/recipes.md does not name: {missing}"


def test_steps_md_lists_exactly_the_registered_step_types() -> None:
    text = (ROOT / "docs" / "steps.md").read_text(encoding="utf-8")
    listed = {m.group(1): m.group(2) for m in re.finditer(r"^\| `([^`]+)` \| (\w+) \|", text, re.M)}
    # Shipped types only: tests register their own (tests.support.steps) in this process.
    registered = {name: str(cls.kind) for name, cls in step_types().items()
                  if cls.__module__.startswith("synthloom.")}
    assert listed == registered, (
        "docs/steps.md is out of date: regenerate its table with `synthloom steps --markdown` "
        f"(missing: {sorted(set(registered) - set(listed))}, "
        f"gone: {sorted(set(listed) - set(registered))})")


def test_steps_markdown_is_the_cli_output() -> None:
    result = CliRunner().invoke(app, ["steps", "--markdown"])
    assert result.exit_code == 0
    rows = [line for line in result.output.splitlines() if line.startswith("| `")]
    assert len(rows) == len(step_types())
    assert "| `generate` | map | yes | The generic LLM steps" in result.output


def test_architecture_counts_are_the_codes() -> None:
    from synthloom.verify.logic import TASKS

    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    recipes = re.search(r"YAML recipes shipped with the package \((\d+);", text)
    assert recipes and int(recipes.group(1)) == len(packaged_recipes())
    tasks = re.search(r"logic/ \((\d+) tasks", text)
    assert tasks and int(tasks.group(1)) == len(TASKS)


# --- shell commands ---------------------------------------------------------------------------


def commands() -> list[tuple[str, list[str]]]:
    """Each `synthloom ...` line of a shell code block, continuation lines joined, as tokens
    (up to a pipe or a `|` between alternatives)."""
    found = []
    for where, code in blocks({"bash", "sh", "console", ""}):
        for line in code.replace("\\\n", " ").splitlines():
            start = line.find("synthloom ")
            before = line[:start].strip()
            if start < 0 or not (before in ("", "$") or before.endswith("&&")):
                continue  # not a command: prose in a text block ("made by `synthloom review`")
            tokens = shlex.split(line[start:], comments=True)[1:]
            if "|" in tokens:
                tokens = tokens[:tokens.index("|")]
            found.append((where, tokens))
    return found


COMMANDS = commands()


def test_the_docs_show_commands() -> None:
    assert len(COMMANDS) >= 40
    assert sum(tokens[:1] == ["run"] for _, tokens in COMMANDS) >= 20


def resolve(tokens: list[str]) -> tuple[Any, list[str], list[str]]:
    """The (sub)command the tokens name, its path, and the tokens after it (typer's own click
    objects: a group has ``commands``)."""
    command = typer.main.get_command(app)
    path: list[str] = []
    rest = list(tokens)
    while getattr(command, "commands", None) and rest and not rest[0].startswith("-"):
        name = rest.pop(0)
        sub = command.commands.get(name)
        assert sub is not None, f"no command `synthloom {' '.join([*path, name])}`"
        command, path = sub, [*path, name]
    return command, path, rest


@pytest.mark.parametrize(("where", "tokens"), COMMANDS,
                         ids=[f"{w}:{' '.join(t[:2])}" for w, t in COMMANDS])
def test_a_documented_command_names_real_commands_and_options(where: str,
                                                              tokens: list[str]) -> None:
    command, path, rest = resolve(tokens)
    options = {opt for param in command.params for opt in [*param.opts, *param.secondary_opts]}
    options.add("--help")
    for token in rest:
        option = token.strip("[]").split("=")[0]
        if option.startswith("--"):
            assert option in options, (
                f"{where}: `synthloom {' '.join(path)}` has no option {option} "
                f"(options: {sorted(options)})")


def set_values(rest: list[str]) -> dict[str, str]:
    """``--set k=v`` pairs, optional brackets removed, the first of ``a|b`` alternatives."""
    overrides = {}
    for option, value in zip(rest, rest[1:], strict=False):
        if option.strip("[") == "--set":
            while value.endswith("]") and value.count("]") > value.count("["):
                value = value[:-1]  # the bracket closing "[--set k=v]"
            key, _, text = value.partition("=")
            overrides[key] = text.split("|")[0]
    return overrides


RUNS = [(w, t) for w, t in COMMANDS if t[:1] == ["run"] and len(t) > 1 and not t[1].isupper()]


@pytest.mark.parametrize(("where", "tokens"), RUNS,
                         ids=[f"{w}:{' '.join(t[:2])}" for w, t in RUNS])
def test_a_documented_run_loads_with_its_settings(where: str, tokens: list[str]) -> None:
    """`synthloom run RECIPE --set k=v ...` names a shipped recipe and real parameters or step
    settings, with values the steps accept."""
    name = tokens[1]
    assert name in packaged_recipes(), f"{where}: no shipped recipe {name!r}"
    Recipe.load(name, set_values(tokens[2:]))


# --- Python blocks ----------------------------------------------------------------------------


def free_names(tree: ast.Module) -> set[str]:
    """Names a block loads but never binds (nor are builtins): it is not self-contained."""
    bound = set(dir(builtins))
    loaded = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (loaded if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, ast.alias):
            bound.add((node.asname or node.name).split(".")[0])
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
    return loaded - bound


PYTHON = blocks({"python", "py"})


@pytest.mark.parametrize(("where", "code"), PYTHON, ids=[w for w, _ in PYTHON])
def test_a_python_block_runs_or_at_least_imports(where: str, code: str, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # A block fenced as Python must be Python (a sketch is fenced as text); top-level await
    # parses, as in a notebook.
    tree = compile(code, where, "exec", flags=ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    monkeypatch.chdir(tmp_path)  # blocks write their runs here
    namespace: dict[str, Any] = {"__name__": "docs_block"}
    imports = ast.Module(body=[n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)],
                         type_ignores=[])
    exec(compile(imports, where, "exec"), namespace)  # the names a block imports exist
    if where.startswith("README") or free_names(tree):
        return  # README's blocks call a model server; others use names defined elsewhere
    exec(compile(tree, where, "exec"), namespace)


def test_extending_md_example_is_self_contained_so_it_runs() -> None:
    examples = [ast.parse(code) for w, code in PYTHON if w.startswith("docs/extending.md")]
    assert examples and all(not free_names(tree) for tree in examples)
