"""TarGEN steps: task descriptions in, labelled and self-checked instances out.

* ``targen_task`` (source): task description files (YAML/JSON: name, description, fields,
  labels), one record per task; a malformed file is a failure naming it.
* ``targen_list`` (expand): the model lists ``count`` items for a record - step 1 contexts
  (settings where the task occurs) and step 2 instance seeds (subjects within a context) are the
  same step with different templates; a repeated item is marked rejected.
* ``targen_generate`` (expand): step 3, label-conditioned generation - for every label of the
  task, one instance that should carry it (JSON schema over the task's fields).
* ``targen_self_correct`` (map): step 4, self-correction - the model re-reads each instance
  against the task description and names the correct label; a disagreement relabels the
  instance (``corrected: true``, ``original_label`` kept) or, with ``on_mismatch: drop``, drops
  it with both labels in the reason.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field

from synthloom.core.context import ItemContext, RunContext
from synthloom.core.errors import RecipeError
from synthloom.core.records import ItemResult, Output
from synthloom.core.registry import register_step
from synthloom.core.steps import ExpandStep, MapStep, SourceFailure, SourceStep, StepConfig
from synthloom.prompting.templated import TemplatedStep, parsed_object

TASK_COLUMNS = ["task", "description", "fields", "labels"]


def parse_task(raw: Any, where: str) -> dict[str, Any]:
    """A task description as a record: ``task, description, fields [{name, description}],
    labels [{name, description}]``. Raises ValueError naming what is wrong."""
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: expected a mapping, got {type(raw).__name__}")
    description = str(raw.get("description") or "").strip()
    if not description:
        raise ValueError(f"{where}: 'description' is missing")

    def named(value: Any, key: str) -> list[dict[str, str]]:
        if isinstance(value, dict):
            items = [{"name": str(k), "description": str(v or "").strip()}
                     for k, v in value.items()]
        elif isinstance(value, list):
            items = [{"name": str(v), "description": ""} for v in value]
        else:
            raise ValueError(f"{where}: {key!r} must be a mapping or a list")
        if any(not re.fullmatch(r"[A-Za-z0-9_ \-]+", i["name"]) for i in items):
            raise ValueError(f"{where}: {key!r} names must be plain words")
        return items

    labels = named(raw.get("labels"), "labels")
    if len(labels) < 2:
        raise ValueError(f"{where}: a task needs at least two labels")
    fields = named(raw.get("fields") or {"text": ""}, "fields")
    reserved = {"task", "description", "fields", "labels", "label", "context", "seed"}
    clash = sorted({f["name"] for f in fields} & reserved)
    if clash:
        raise ValueError(f"{where}: field names {clash} are reserved")
    return {"task": str(raw.get("name") or Path(where).stem), "description": description,
            "fields": fields, "labels": labels}


class TaskSourceConfig(StepConfig):
    #: A task file (YAML/JSON; one task, or a list of tasks) or a folder of them.
    path: str


@register_step
class TargenTask(SourceStep):
    type_name = "targen_task"
    Config = TaskSourceConfig
    config: TaskSourceConfig

    def read(self, ctx: RunContext) -> Iterator[Output | SourceFailure]:
        from synthloom.sources.files import resolve_data_path

        root = resolve_data_path(self.config.path, ctx.recipe_dir)
        if not root.exists():
            raise RecipeError(f"source {self.name}: path not found: {root}")
        files = (sorted(p for p in root.rglob("*") if p.suffix.lower() in (".yaml", ".yml", ".json"))
                 if root.is_dir() else [root])
        for path in files:
            try:
                text = path.read_text(encoding="utf-8")
                raw = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
                tasks = raw if isinstance(raw, list) else [raw]
                for i, task in enumerate(tasks):
                    where = f"{path}#{i}" if len(tasks) > 1 else str(path)
                    yield Output(columns=parse_task(task, where),
                                 meta={"path": str(path), "where": where})
            except (OSError, ValueError, yaml.YAMLError) as exc:
                yield SourceFailure(str(path), type(exc).__name__, str(exc).splitlines()[0][:300])


def _normalise(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


class ListConfig(StepConfig):
    #: Jinja prompt template that asks for the list (gets ``n`` and the record's columns).
    template: str
    #: Column for each listed item ("context", "seed").
    column: str
    #: Most items listed per call (schema maxItems).
    count: int = Field(default=3, ge=1, le=50)
    #: Longest item, in characters (schema maxLength).
    item_max_chars: int = 120
    #: Sampling temperature.
    temperature: float = 0.8
    #: Most tokens of the list.
    max_tokens: int = 256


@register_step
class TargenList(TemplatedStep, ExpandStep):
    type_name = "targen_list"
    uses_llm = True
    Config = ListConfig
    config: ListConfig

    def reads(self) -> list[str]:
        return sorted(self.template().variables - {"n"})

    async def process(self, record: dict[str, Any], ctx: ItemContext) -> ItemResult | list:
        cfg = self.config
        schema = {"type": "object", "properties": {"items": {
            "type": "array", "minItems": 1, "maxItems": cfg.count,
            "items": {"type": "string", "minLength": 2, "maxLength": cfg.item_max_chars}}},
            "required": ["items"], "additionalProperties": False}
        response = await self.ask(ctx, {**record, "n": cfg.count}, schema=schema)
        items = [str(i).strip() for i in parsed_object(response).get("items") or []][: cfg.count]
        if not items:
            return ItemResult.drop(f"the model listed no {cfg.column}")
        outputs, seen = [], set()
        for k, item in enumerate(items):
            key = _normalise(item)
            reason = None
            if not key:
                reason = f"{cfg.column} {k}: no words"
            elif key in seen:
                reason = f"{cfg.column} {k}: repeats an earlier item of the list ({item[:60]!r})"
            seen.add(key)
            outputs.append(self.output(
                response, {cfg.column: item, f"{cfg.column}_index": k, "reject_reason": reason},
                sample_index=k,
                # The call's tokens on the first item: summing records gives the call's cost.
                usage=response.usage.to_json() if k == 0 else
                {"prompt_tokens": 0, "completion_tokens": 0}))
        return outputs


class GenerateConfig(StepConfig):
    #: Jinja prompt template of one label-conditioned instance.
    template: str = "targen/prompts/generate.jinja"
    #: Longest value of each task field, in characters (schema maxLength).
    field_max_chars: int = 600
    #: Sampling temperature.
    temperature: float = 0.8
    #: Most tokens of one instance.
    max_tokens: int = 384


def fields_schema(fields: list[dict[str, str]], max_chars: int) -> dict[str, Any]:
    props = {f["name"]: {"type": "string", "minLength": 1, "maxLength": max_chars}
             for f in fields}
    return {"type": "object", "properties": props, "required": list(props),
            "additionalProperties": False}


@register_step
class TargenGenerate(TemplatedStep, ExpandStep):
    """One instance per label of the task (label-conditioned generation)."""

    type_name = "targen_generate"
    uses_llm = True
    Config = GenerateConfig
    config: GenerateConfig

    def reads(self) -> list[str]:
        return sorted((self.template().variables | {"fields", "labels"})
                      - {"label", "label_description"})

    async def process(self, record: dict[str, Any], ctx: ItemContext) -> ItemResult | list:
        cfg = self.config
        fields, labels = record.get("fields") or [], record.get("labels") or []
        if not fields or not labels:
            return ItemResult.drop("the record has no task fields/labels")
        schema = fields_schema(fields, cfg.field_max_chars)
        outputs = []
        for k, label in enumerate(labels):
            variables = {**record, "label": label["name"],
                         "label_description": label.get("description") or label["name"]}
            response = await self.ask(ctx, variables, schema=schema, seed_offset=k)
            parsed = parsed_object(response)
            values = {f["name"]: str(parsed.get(f["name"]) or "").strip() for f in fields}
            empty = [name for name, value in values.items() if not value]
            reason = f"label {label['name']!r}: empty field(s) {empty}" if empty else None
            outputs.append(self.output(
                response, {**values, "label": label["name"], "reject_reason": reason},
                sample_index=k))
        return outputs


class CorrectConfig(StepConfig):
    #: Jinja prompt template of the self-correction (the model labels the instance).
    template: str = "targen/prompts/correct.jinja"
    #: relabel: take the model's label (corrected: true); drop: drop the instance with a reason.
    on_mismatch: Literal["relabel", "drop"] = "relabel"
    #: Sampling temperature of the check.
    temperature: float = 0.0
    #: Most tokens of the check's label.
    max_tokens: int = 32


@register_step
class TargenSelfCorrect(TemplatedStep, MapStep):
    type_name = "targen_self_correct"
    uses_llm = True
    Config = CorrectConfig
    config: CorrectConfig

    def reads(self) -> None:
        return None  # the instance's fields are named by the task: read all columns

    async def process(self, record: dict[str, Any], ctx: ItemContext) -> ItemResult | Output:
        cfg = self.config
        fields, labels = record.get("fields") or [], record.get("labels") or []
        names = [label["name"] for label in labels]
        label = record.get("label")
        if label not in names:
            return ItemResult.drop(f"label {label!r} is not one of the task's labels {names}")
        values = {f["name"]: record.get(f["name"], "") for f in fields}
        schema = {"type": "object", "properties": {"label": {"type": "string", "enum": names}},
                  "required": ["label"], "additionalProperties": False}
        response = await self.ask(ctx, {**record, "values": values}, schema=schema)
        verdict = parsed_object(response).get("label")
        if verdict not in names:
            raise ValueError(f"self-correction answered {verdict!r}, not one of {names}")
        columns: dict[str, Any] = {"original_label": label, "self_check_label": verdict,
                                   "corrected": verdict != label}
        if verdict != label:
            if cfg.on_mismatch == "drop":
                return ItemResult.drop(f"self-correction: generated as {label!r} but the check "
                                       f"says {verdict!r}")
            columns["label"] = verdict
        return self.output(response, columns)
