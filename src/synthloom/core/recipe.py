"""Recipes: a graph of sources, steps and sinks, from YAML or built in Python.

YAML shape::

    name: quickstart
    description: one line shown by `synthloom recipes`
    seed: 0
    params:
      docs: {default: "pkg:data/quickstart", help: "folder of .txt/.md files"}
    models:                                 # optional: named models, each its own client
      judge: {backend: "openai:http://127.0.0.1:8001/v1", model: qwen2.5-7b, concurrency: 4}
    sources:
      - {name: documents, type: text_files, path: "${docs}"}
    steps:
      - {name: instruction, type: generate, template: quickstart/instruction.jinja, ...}
      - {name: score, type: judge_rubric, model: judge}    # default: the run's model
    sinks:
      - {type: jsonl, path: data.jsonl}      # from: last step unless named

``${param}`` is replaced by the parameter's value (kept typed when it is the whole string).
``--set name=value`` overrides a parameter; ``--set step.key=value`` (dotted) overrides a key of
a step's config.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from synthloom.core.errors import RecipeError
from synthloom.core.models import DEFAULT_MODEL, ModelSpec, parse_model_spec
from synthloom.core.registry import resolve_sink_type, resolve_step_type, sink_type
from synthloom.core.steps import Sink, SourceStep, Step, StepKind

PARAM_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
PACKAGE_RECIPES = "synthloom.recipes"


class ParamSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    default: Any = None
    help: str = ""
    #: The run cannot start without it (``--set name=value``).
    required: bool = False


class RecipeFile(BaseModel):
    """The YAML document, validated (unknown top-level keys are errors)."""

    model_config = ConfigDict(extra="forbid")
    name: str
    description: str = ""
    version: int = 1
    seed: int = 0
    params: dict[str, ParamSpec] = {}
    #: Named models (``core/models.py``): {name: spec mapping | backend string | "default"}.
    models: dict[str, Any] = {}
    sources: list[dict[str, Any]]
    steps: list[dict[str, Any]] = []
    sinks: list[dict[str, Any]] = []


@dataclass
class Recipe:
    name: str
    sources: list[SourceStep]
    steps: list[Step] = field(default_factory=list)
    sinks: list[Sink] = field(default_factory=list)
    description: str = ""
    seed: int = 0
    path: Path | None = None
    params: dict[str, Any] = field(default_factory=dict)
    #: Named models steps may call (``model: NAME``); ``default`` is always the run's model.
    models: dict[str, ModelSpec] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.sinks:
            self.sinks = [sink_type("jsonl")(path="data.jsonl")]
        self.models = {name: parse_model_spec(spec, f"recipe {self.name}: models.{name}")
                       for name, spec in self.models.items()}
        self.validate_graph()

    def with_models(self, overrides: dict[str, Any]) -> Recipe:
        """``--model-for``: replace (or add) named models, then check the steps again."""
        called = {n for step in self.nodes for n in step.model_names()}
        for name, spec in overrides.items():
            _check_override(name, self.models, called)
            self.models[name] = parse_model_spec(spec, f"--model-for {name}")
        self.validate_models()
        return self

    def models_used(self) -> set[str]:
        """Every model name an LLM step calls (``default`` for steps naming none)."""
        names: set[str] = set()
        for step in self.steps:
            if getattr(step, "uses_llm", False):
                names.update(step.model_names() or [DEFAULT_MODEL])
        return names

    def validate_models(self) -> None:
        if DEFAULT_MODEL in self.models:
            raise RecipeError(f"recipe {self.name}: models: {DEFAULT_MODEL!r} is the run's own "
                              "model; set it with --backend/--model, or pick another name")
        declared = {DEFAULT_MODEL, *self.models}
        for step in self.nodes:
            names = step.model_names()
            if names and not getattr(step, "uses_llm", False):
                raise RecipeError(
                    f"recipe {self.name}: step {step.name!r} names model {names[0]!r} but "
                    f"does not call an LLM (type {step.type_name})")
            for name in names:
                if name not in declared:
                    known = ", ".join(sorted(declared))
                    raise RecipeError(
                        f"recipe {self.name}: step {step.name!r} names model {name!r}, which "
                        f"is not declared under models: (declared: {known}; add it there or "
                        f"give --model-for {name}=SPEC)")

    @property
    def nodes(self) -> list[Step]:
        return [*self.sources, *self.steps]

    def inputs_of(self, step: Step) -> str | None:
        """The node a step reads from: its ``input`` or the node just before it."""
        if step.kind is StepKind.SOURCE:
            return None
        if step.config.input:
            return step.config.input
        index = self.steps.index(step)
        return self.steps[index - 1].name if index else self.sources[-1].name

    def sink_input(self, sink: Sink) -> str:
        return sink.config.input or self.nodes[-1].name

    def validate_graph(self) -> None:
        if not self.sources:
            raise RecipeError(f"recipe {self.name}: needs at least one source")
        seen: set[str] = set()
        for node in self.nodes:
            if node.name in seen:
                raise RecipeError(f"recipe {self.name}: two nodes are named {node.name!r}")
            wanted = [self.inputs_of(node), *node.config.context]
            for name in filter(None, wanted):
                if name not in seen:
                    raise RecipeError(
                        f"recipe {self.name}: step {node.name!r} reads {name!r}, which is not "
                        "an earlier source or step"
                    )
            seen.add(node.name)
        for sink in self.sinks:
            if self.sink_input(sink) not in seen:
                raise RecipeError(
                    f"recipe {self.name}: sink {sink.config.path!r} reads unknown node "
                    f"{self.sink_input(sink)!r}"
                )
        self.validate_models()

    # --- loading ---------------------------------------------------------------------------------

    @classmethod
    def load(cls, name_or_path: str | Path, overrides: dict[str, str] | None = None,
             models: dict[str, Any] | None = None) -> Recipe:
        """``models``: ``--model-for`` specs, replacing or adding named models."""
        path = find_recipe(name_or_path)
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise RecipeError(f"recipe {path}: not valid YAML: {exc}") from None
        return cls.from_dict(raw, path=path, overrides=overrides, models=models)

    @classmethod
    def from_dict(cls, raw: Any, *, path: Path | None = None,
                  overrides: dict[str, str] | None = None,
                  models: dict[str, Any] | None = None) -> Recipe:
        where = str(path) if path else "<dict>"
        if not isinstance(raw, dict):
            raise RecipeError(f"recipe {where}: expected a mapping at the top level")
        try:
            spec = RecipeFile.model_validate(raw)
        except ValidationError as exc:
            raise RecipeError(f"recipe {where}: {_describe(exc)}") from None
        params = {k: v.default for k, v in spec.params.items()}
        step_overrides: dict[str, dict[str, Any]] = {}
        for key, text in (overrides or {}).items():
            value = yaml.safe_load(text) if isinstance(text, str) else text
            if "." in key:
                step_name, _, dotted = key.partition(".")
                step_overrides.setdefault(step_name, {})[dotted] = value
            elif key in params:
                params[key] = value
            else:
                known = ", ".join(sorted(params)) or "none"
                raise RecipeError(
                    f"recipe {where}: --set {key}: no such parameter (known: {known}; "
                    "use step.key=value to set a step's option)"
                )
        missing = [k for k, v in spec.params.items() if v.required and params[k] is None]
        if missing:
            hints = "; ".join(f"--set {k}=... ({spec.params[k].help or 'no help'})"
                              for k in missing)
            raise RecipeError(f"recipe {spec.name} needs: {hints}")
        base = path.parent if path else None  # where a `type: module:Class` may live
        sources = [_build(d, params, where, "sources", i, step_overrides, base, source=True)
                   for i, d in enumerate(spec.sources)]
        steps = [_build(d, params, where, "steps", i, step_overrides, base)
                 for i, d in enumerate(spec.steps)]
        names = {n.name for n in [*sources, *steps]}
        unknown = set(step_overrides) - names
        if unknown:
            raise RecipeError(f"recipe {where}: --set names unknown step(s): {sorted(unknown)}")
        sinks = [_build_sink(d, params, where, i, base) for i, d in enumerate(spec.sinks)]
        declared = {name: parse_model_spec(substitute(value, params), f"recipe {where}: "
                                           f"models.{name}")
                    for name, value in spec.models.items()}
        called = {n for step in steps for n in step.model_names()}
        for name, value in (models or {}).items():
            _check_override(name, declared, called)
            declared[name] = parse_model_spec(value, f"--model-for {name}")
        return cls(
            name=spec.name, sources=sources, steps=steps, sinks=sinks,
            description=spec.description, seed=spec.seed, path=path, params=params,
            models=declared,
        )


def _check_override(name: str, declared: dict[str, Any], called: set[str]) -> None:
    """``--model-for NAME``: NAME must be a declared model or one a step calls (a typo would
    otherwise run everything on the default model without a word)."""
    if name in declared or name in called:
        return
    known = ", ".join(sorted({*declared, *called})) or "none"
    raise RecipeError(f"--model-for {name}: the recipe declares no model {name!r} and no step "
                      f"calls one (models: {known}; a step calls one with model: NAME, e.g. "
                      f"--set STEP.model={name})")


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err["loc"]) or "(top)"
        if err["type"] == "extra_forbidden":
            parts.append(f"unknown key {loc!r}")
        elif err["type"] == "missing":
            parts.append(f"missing key {loc!r}")
        else:
            parts.append(f"{loc}: {err['msg']} (got {err.get('input')!r})")
    return "; ".join(parts)


def substitute(value: Any, params: dict[str, Any]) -> Any:
    """Replace ``${name}`` in strings (recursively); a whole-string reference keeps its type."""
    if isinstance(value, str):
        whole = PARAM_RE.fullmatch(value)
        if whole:
            return _param(whole.group(1), params)
        return PARAM_RE.sub(lambda m: str(_param(m.group(1), params)), value)
    if isinstance(value, list):
        return [substitute(v, params) for v in value]
    if isinstance(value, dict):
        return {k: substitute(v, params) for k, v in value.items()}
    return value


def _param(name: str, params: dict[str, Any]) -> Any:
    if name not in params:
        raise RecipeError(f"${{{name}}} is used but not declared under params:")
    return params[name]


def _set_dotted(config: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    target = config
    for key in keys[:-1]:
        target = target.setdefault(key, {})
        if not isinstance(target, dict):
            raise RecipeError(f"--set: {dotted!r} goes through a non-mapping value")
    target[keys[-1]] = value


def _build(data: dict[str, Any], params: dict[str, Any], where: str, section: str, index: int,
           step_overrides: dict[str, dict[str, Any]], base: Path | None,
           source: bool = False) -> Any:
    label = f"recipe {where}: {section}[{index}]"
    if not isinstance(data, dict) or "type" not in data or "name" not in data:
        raise RecipeError(f"{label}: each entry needs 'name' and 'type'")
    config = substitute({k: v for k, v in data.items() if k != "type"}, params)
    for dotted, value in step_overrides.get(config["name"], {}).items():
        _set_dotted(config, dotted, value)
    try:
        cls = resolve_step_type(str(data["type"]), base)
    except RecipeError as exc:
        raise RecipeError(f"{label} ({config['name']}): {exc}") from None
    if source != (cls.kind is StepKind.SOURCE):
        wanted = "a source" if source else "a step (not a source)"
        raise RecipeError(
            f"{label} ({config['name']}): type {data['type']!r} is a {cls.kind} step; "
            f"{section} needs {wanted}")
    try:
        return cls(cls.Config.model_validate(config))
    except ValidationError as exc:
        raise RecipeError(f"{label} ({config['name']}): {_describe(exc)}") from None


def _build_sink(data: dict[str, Any], params: dict[str, Any], where: str, index: int,
                base: Path | None) -> Sink:
    label = f"recipe {where}: sinks[{index}]"
    if not isinstance(data, dict) or "type" not in data:
        raise RecipeError(f"{label}: each sink needs 'type'")
    try:
        cls = resolve_sink_type(str(data["type"]), base)
    except RecipeError as exc:
        raise RecipeError(f"{label}: {exc}") from None
    config = substitute({k: v for k, v in data.items() if k != "type"}, params)
    try:
        return cls(cls.Config.model_validate(config))
    except ValidationError as exc:
        raise RecipeError(f"{label}: {_describe(exc)}") from None


# --- finding recipes ------------------------------------------------------------------------------


def packaged_recipes() -> dict[str, Path]:
    folder = resources.files(PACKAGE_RECIPES)
    return {
        Path(str(entry)).stem: Path(str(entry))
        for entry in folder.iterdir()
        if str(entry).endswith((".yaml", ".yml"))
    }


def find_recipe(name_or_path: str | Path) -> Path:
    """A path to a YAML file, or the name of a recipe shipped with the package."""
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml") or candidate.exists():
        if not candidate.is_file():
            raise RecipeError(f"recipe file not found: {candidate}")
        return candidate
    shipped = packaged_recipes()
    if str(name_or_path) in shipped:
        return shipped[str(name_or_path)]
    raise RecipeError(
        f"no recipe named {name_or_path!r} (shipped: {', '.join(sorted(shipped))}); "
        "or give a path to a .yaml file"
    )


def recipe_summary(path: Path) -> tuple[str, str]:
    """(name, description) without building the steps (fast, for `synthloom recipes`)."""
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return str(raw.get("name", path.stem)), str(raw.get("description", "")).strip()


def resolve_data_path(value: str | Path, base: Path | None = None) -> Path:
    """``pkg:rel/path`` → a file shipped in the package; other paths as given (cwd-relative)."""
    text = str(value)
    if text.startswith("pkg:"):
        return Path(str(resources.files("synthloom").joinpath(text[4:])))
    path = Path(text).expanduser()
    if not path.is_absolute() and base is not None and not path.exists():
        alt = base / path
        if alt.exists():
            return alt
    return path
