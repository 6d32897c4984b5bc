"""Moderation: an LLM judge labels items against a hazard taxonomy and may drop unsafe ones.

The taxonomy is data (a YAML file of code → name/description; the default follows the MLCommons
hazard categories used by Llama Guard 3), and the judge prompt is a template, so both are
pluggable. Labels go to a ``safety`` column: {"safe", "categories", "rationale"}.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from synthloom.core.context import ItemContext, RunContext
from synthloom.core.errors import RecipeError
from synthloom.core.fingerprint import stable_hash
from synthloom.core.recipe import resolve_data_path
from synthloom.core.records import ItemResult, Output
from synthloom.core.registry import register_step
from synthloom.core.steps import MapStep, StepConfig
from synthloom.prompting.templated import TemplatedStep

DEFAULT_TAXONOMY = "pkg:quality/prompts/hazards.yaml"


class ModerateConfig(StepConfig):
    #: Columns shown to the judge (e.g. instruction, or instruction + response).
    columns: list[str] = ["instruction"]
    taxonomy: str = DEFAULT_TAXONOMY
    template: str = "quality/prompts/moderate.jinja"
    #: Drop items labelled unsafe (the reason names the categories); else only label them.
    drop_unsafe: bool = True
    max_tokens: int = 256


@register_step
class Moderate(TemplatedStep, MapStep):
    type_name = "moderate"
    uses_llm = True
    Config = ModerateConfig
    config: ModerateConfig
    _taxonomy: dict[str, dict[str, str]]

    def setup(self, ctx: RunContext) -> None:
        super().setup(ctx)
        path = resolve_data_path(self.config.taxonomy, ctx.recipe_dir)
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise RecipeError(f"step {self.name}: cannot read taxonomy {path}: {exc}") from None
        if not isinstance(data, dict) or not data:
            raise RecipeError(f"step {self.name}: taxonomy {path} must map codes to categories")
        self._taxonomy = {str(k): v for k, v in data.items()}

    def extra_fingerprint(self, ctx: RunContext) -> Any:
        return {**super().extra_fingerprint(ctx), "taxonomy": stable_hash(self._taxonomy)}

    def reads(self) -> list[str]:
        return list(self.config.columns)

    def schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {
                "rationale": {"type": "string", "maxLength": 240},
                "safe": {"type": "boolean"},
                # Bounded: a small model otherwise repeats categories until max_tokens cuts
                # the JSON off (seen in the flagship on the embedded model).
                "categories": {"type": "array", "items": {"enum": sorted(self._taxonomy)},
                               "maxItems": len(self._taxonomy)},
            },
            "required": ["rationale", "safe", "categories"],
            "additionalProperties": False,
        }

    async def process(self, record: dict[str, Any], ctx: ItemContext) -> Output | ItemResult:
        content = {c: record.get(c) for c in self.config.columns}
        # Greedy: a label should not depend on sampling (the config has no temperature).
        response = await self.ask(ctx, {"content": content, "taxonomy": self._taxonomy},
                                  schema=self.schema(), temperature=0.0)
        verdict = response.parsed
        categories = sorted(set(verdict["categories"]))
        # An item is unsafe when the judge says so or names a category.
        safe = bool(verdict["safe"]) and not categories
        label = {"safe": safe, "categories": categories, "rationale": verdict["rationale"]}
        if not safe and self.config.drop_unsafe:
            names = ", ".join(f"{c} {self._taxonomy[c].get('name', '')}".strip()
                              for c in categories) or "unspecified"
            return ItemResult.drop(f"unsafe: {names}")
        return Output(columns={"safety": label}, model=response.model,
                      template_hash=self.template().hash, usage=response.usage.to_json())
