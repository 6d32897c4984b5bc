"""Recipe templates render in Jinja's immutable sandbox under time and size limits, and sink
paths stay inside the run folder (issue 22, item 10).

The run test uses the scripted test backend (tests/support/scripted_backend.py), a test double.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from synthloom.core.errors import RecipeError, SynthloomError
from synthloom.core.recipe import Recipe
from synthloom.export.sinks import JsonlSink, ParquetSink
from synthloom.prompting import templates
from synthloom.prompting.templates import TemplateLimitError, load_template
from tests.support.runs import read_jsonl, run_scripted
from tests.support.scripted_backend import ScriptedTestBackend

PACKAGE = Path(templates.__file__).resolve().parents[1]
SHIPPED = sorted(PACKAGE.rglob("*.jinja"))


def write(folder: Path, name: str, source: str) -> Path:
    path = folder / name
    path.write_text(source)
    return path


def render(folder: Path, source: str, **variables: Any) -> str:
    return load_template(str(write(folder, "t.jinja", source))).render_text(variables)


def test_globals_do_not_reach_the_environment(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-template-must-not-leak")
    for source in ("{{ cycler.__init__.__globals__.os.environ }}",
                   "{{ lipsum.__globals__['os'].environ }}",
                   "{{ ''.__class__.__mro__[1].__subclasses__() }}"):
        with pytest.raises(TemplateLimitError, match=r"template 't\.jinja'.*unsafe") as err:
            render(tmp_path, source)
        assert "sk-template-must-not-leak" not in str(err.value)


def test_mutating_record_values_is_refused(tmp_path: Path) -> None:
    items = [1, 2]
    with pytest.raises(TemplateLimitError, match="append"):
        render(tmp_path, "{{ items.append(3) }}", items=items)
    assert items == [1, 2]


@pytest.mark.parametrize("source", [
    "{% for i in range(10**8) %}{{ i }}{% endfor %}",
    "{{ 'x' * 10**9 }}",
    "{{ (10 ** 10000) ** 10000 }}",
    "{{ 'x' | center(10**9) }}",
    "{{ '{:>1000000000}'.format(1) }}",
    "{{ '%*d' % (1000000000, 1) }}",
    "{% set ns = namespace(s='x') %}{% for i in range(60) %}{% set ns.s = ns.s ~ ns.s %}"
    "{% endfor %}{{ ns.s | length }}",
    "{{ (['x' * 1000000] * 1000) | join }}",
], ids=["range", "repeat", "power", "center", "format", "percent", "doubling", "join"])
def test_size_bombs_are_refused_before_they_allocate(tmp_path: Path, source: str) -> None:
    with pytest.raises(TemplateLimitError, match=r"template 't\.jinja'"):
        render(tmp_path, source)


def test_a_loop_past_the_deadline_is_stopped(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(templates, "RENDER_TIMEOUT_S", 0.2)
    nested = ("{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}"
              "{% endfor %}")
    with pytest.raises(TemplateLimitError, match=r"template 't\.jinja': rendering took over"):
        render(tmp_path, nested)
    with pytest.raises(TemplateLimitError, match="output over"):
        monkeypatch.setattr(templates, "MAX_RENDER_CHARS", 1000)
        render(tmp_path, "{% for i in items %}{{ i }}{% endfor %}", items=list(range(5000)))


def test_ordinary_templates_still_render(tmp_path: Path) -> None:
    source = ("{% block system %}Be {{ tone | default('brief') }}.{% endblock %}"
              "{% block user %}{% for d in docs %}[{{ loop.index }}] {{ d.title }}: {{ d['text'] }}"
              "{% if not loop.last %}\n{% endif %}{% endfor %}\n{{ tags | join(', ') }} "
              "({{ tags | length }}) {{ '%.2f' % score }} {{ '{}-{}'.format(1, 2) }}"
              "{% for k, v in meta.items() %} {{ k }}={{ v }}{% endfor %}{% endblock %}")
    template = load_template(str(write(tmp_path, "ok.jinja", source)))
    messages = template.render_messages({
        "docs": [{"title": "A", "text": "x"}, {"title": "B", "text": "y"}],
        "tags": ["t1", "t2"], "score": 0.5, "meta": {"k": 1}})
    assert messages == [{"role": "system", "content": "Be brief."},
                        {"role": "user", "content": "[1] A: x\n[2] B: y\nt1, t2 (2) 0.50 1-2 k=1"}]


class Anything(str):
    """A stand-in for any record value: a string that also iterates, indexes, calls and has
    any public attribute, so every branch of a shipped template can render."""

    def __new__(cls, text: str = "value") -> Anything:
        return super().__new__(cls, text)

    def __getattr__(self, name: str) -> Anything:
        if name.startswith("_") or name in ("alters_data", "unsafe_callable"):
            raise AttributeError(name)  # (the sandbox asks these of what a template calls)
        return Anything(name)

    def __getitem__(self, key: Any) -> Anything:  # type: ignore[override]
        return Anything(str(key))

    def __iter__(self):  # type: ignore[override]
        return iter([Anything("a"), Anything("b")])

    def __call__(self, *args: Any, **kwargs: Any) -> Anything:
        return Anything("called")

    def items(self) -> list[tuple[str, Anything]]:
        return [("k", Anything("v"))]

    def __gt__(self, other: Any) -> bool:
        return True

    __ge__ = __lt__ = __le__ = __gt__  # type: ignore[assignment]

    def __add__(self, other: Any) -> Anything:  # type: ignore[override]
        return Anything(f"{self}{other}")

    __radd__ = __sub__ = __rsub__ = __add__

    def __int__(self) -> int:
        return 2

    def __float__(self) -> float:
        return 2.0

    __hash__ = str.__hash__


def test_there_are_shipped_templates() -> None:
    assert len(SHIPPED) > 50


@pytest.mark.parametrize("path", SHIPPED, ids=[str(p.relative_to(PACKAGE)) for p in SHIPPED])
def test_every_shipped_template_loads_and_renders_in_the_sandbox(path: Path) -> None:
    template = load_template(str(path.relative_to(PACKAGE)))
    variables = {name: Anything() for name in template.variables}
    messages = template.render_messages(variables)
    assert messages[-1]["role"] == "user" and messages[-1]["content"]


# --- a run goes on ------------------------------------------------------------------------------


def test_a_hostile_render_is_one_item_s_failure_and_the_run_goes_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(templates, "RENDER_TIMEOUT_S", 0.2)
    write(tmp_path, "count.jinja", "{% for i in range(n) %}{% for j in range(n) %}{% endfor %}"
                                   "{% endfor %}Count to {{ n }}.")
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({"n": n}) + "\n" for n in (2, 99999, 3)))
    (tmp_path / "recipe.yaml").write_text(json.dumps({
        "name": "hostile-template",
        "sources": [{"name": "rows", "type": "jsonl", "path": str(rows)}],
        "steps": [{"name": "ask", "type": "generate", "template": "count.jinja",
                   "output": "answer"}],
    }))
    recipe = Recipe.load(tmp_path / "recipe.yaml")
    out = tmp_path / "run"
    summary = run_scripted(recipe, out, ScriptedTestBackend())
    [ask] = [s for s in summary["steps"] if s["name"] == "ask"]
    assert (ask["in"], ask["out"], ask["failed"]) == (3, 2, 1)
    assert sorted(r["n"] for r in read_jsonl(out / "data.jsonl")) == [2, 3]
    failure = json.dumps(read_jsonl(out / "failed.jsonl"))
    assert "count.jinja" in failure and "rendering took over" in failure


# --- sink paths ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["../../x.jsonl", "/tmp/x.jsonl", "out/../../x.jsonl", ""])
def test_a_sink_path_outside_the_run_folder_is_refused_at_load(tmp_path: Path,
                                                               path: str) -> None:
    raw = {"name": "escape", "sources": [{"name": "rows", "type": "jsonl", "path": "r.jsonl"}],
           "steps": [], "sinks": [{"type": "jsonl", "path": path}]}
    with pytest.raises(RecipeError, match=r"sinks\[0\].*must be a file inside the run folder"):
        Recipe.from_dict(raw, path=tmp_path / "recipe.yaml")


def test_sink_paths_inside_the_run_folder_load() -> None:
    assert JsonlSink(path="exports/sft.jsonl").config.path == "exports/sft.jsonl"


@pytest.mark.parametrize("sink_type", [JsonlSink, ParquetSink])
def test_a_sink_is_refused_at_open_where_its_path_leaves_the_run_folder(
        tmp_path: Path, sink_type: type) -> None:
    run_dir, elsewhere = tmp_path / "run", tmp_path / "elsewhere"
    run_dir.mkdir()
    elsewhere.mkdir()
    (run_dir / "link").symlink_to(elsewhere)  # checked again at open: symlinks are followed
    sink = sink_type(path="link/x.out")
    if sink_type is ParquetSink:
        pytest.importorskip("pyarrow")
    with pytest.raises(SynthloomError, match=r"sink path 'link/x\.out'.*outside the run"):
        sink.open(run_dir)
    assert list(elsewhere.iterdir()) == []
    raw = sink_type(path="ok.out")
    object.__setattr__(raw.config, "path", "../x.out")  # a config built around the validator
    with pytest.raises(SynthloomError, match=r"sink path '\.\./x\.out'.*contains '\.\.'"):
        raw.open(run_dir)
