"""Moderation: an LLM judge labels items against a hazard taxonomy and may drop unsafe ones.

The taxonomy is data (a YAML file of code → name/description; the default follows the MLCommons
hazard categories used by Llama Guard 3), and the judge prompt is a template, so both are
pluggable. Labels go to a ``safety`` column: {"safe", "categories", "rationale"}.

Two formats (``format``):

- ``judge`` (default): any instruction model, asked with the template for a JSON verdict.
- ``llama_guard``: a Llama-Guard-style classifier (SynthQuestions moderated its 1M set with
  Llama-Guard-3-8B). Its prompt is its own chat template, so the step sends the content as
  the conversation itself (columns alternate user / assistant turns) with no instructions,
  and reads its native answer: ``safe``, or ``unsafe`` and a line of codes (``S1,S10``),
  mapped to the taxonomy by ``categories_map`` (Llama Guard 3's S1-S14 by default).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

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
#: Llama Guard 3's hazard categories (its model card); the default taxonomy uses the same
#: codes for S1-S13. A code outside the taxonomy is named from here.
LLAMA_GUARD_3 = {
    "S1": "violent crimes", "S2": "non-violent crimes", "S3": "sex-related crimes",
    "S4": "child sexual exploitation", "S5": "defamation", "S6": "specialized advice",
    "S7": "privacy", "S8": "intellectual property", "S9": "indiscriminate weapons",
    "S10": "hate", "S11": "suicide and self-harm", "S12": "sexual content",
    "S13": "elections", "S14": "code interpreter abuse",
}


class ModerateConfig(StepConfig):
    #: Columns shown to the judge (e.g. instruction, or instruction + response).
    columns: list[str] = ["instruction"]
    #: YAML file mapping category codes to categories (``pkg:`` or a path).
    taxonomy: str = DEFAULT_TAXONOMY
    #: Jinja prompt template of the moderator (``judge`` format).
    template: str = "quality/prompts/moderate.jinja"
    #: Drop items labelled unsafe (the reason names the categories); else only label them.
    drop_unsafe: bool = True
    #: Most tokens of the verdict (``llama_guard``: at most 32).
    max_tokens: int = 256
    #: ``judge``: a JSON verdict from an instruction model; ``llama_guard``: a Llama Guard
    #: style classifier's native ``safe`` / ``unsafe\nS1,S10`` answer (module docstring).
    format: Literal["judge", "llama_guard"] = "judge"
    #: llama_guard: the model's category codes -> taxonomy codes (default: the same code).
    categories_map: dict[str, str] = {}
    #: False: pass every item through unlabelled, with no call (a recipe switch).
    enabled: bool = True


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
        if not self.config.enabled:
            return Output(columns={})  # the record passes unchanged
        if self.config.format == "llama_guard":
            return await self._llama_guard(record, ctx)
        content = {c: record.get(c) for c in self.config.columns}
        # Greedy: a label should not depend on sampling (the config has no temperature).
        response = await self.ask(ctx, {"content": content, "taxonomy": self._taxonomy},
                                  schema=self.schema(), temperature=0.0)
        verdict = response.parsed
        categories = sorted(set(verdict["categories"]))
        # An item is unsafe when the judge says so or names a category.
        safe = bool(verdict["safe"]) and not categories
        label = {"safe": safe, "categories": categories, "rationale": verdict["rationale"]}
        return self._result(label, response, self.template().hash)

    def _result(self, label: dict[str, Any], response: Any, template_hash: str | None,
                ) -> Output | ItemResult:
        if not label["safe"] and self.config.drop_unsafe:
            names = ", ".join(f"{c} {self.category_name(c)}".strip()
                              for c in label["categories"]) or "unspecified"
            return ItemResult.drop(f"unsafe: {names}")
        return Output(columns={"safety": label}, model=response.model,
                      template_hash=template_hash, usage=response.usage.to_json())

    def category_name(self, code: str) -> str:
        known = self._taxonomy.get(code)
        if isinstance(known, dict):
            return str(known.get("name", ""))
        return LLAMA_GUARD_3.get(code, "")

    def conversation(self, record: dict[str, Any]) -> list[dict[str, str]]:
        """The columns as the conversation Llama Guard classifies: user, assistant, user...
        (its chat template wraps them in its own moderation prompt)."""
        turns = []
        for i, column in enumerate(self.config.columns):
            value = record.get(column)
            text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
            turns.append({"role": "user" if i % 2 == 0 else "assistant", "content": text})
        return turns

    async def _llama_guard(self, record: dict[str, Any], ctx: ItemContext,
                           ) -> Output | ItemResult:
        request = self.request(ctx, {}, messages=self.conversation(record), temperature=0.0,
                               max_tokens=min(self.config.max_tokens, 32))
        [response] = await ctx.generate(request)
        safe, codes = parse_llama_guard(response.text)
        mapping = self.config.categories_map
        categories = sorted({mapping.get(c, c) for c in codes})
        verdict = "safe" if safe else "unsafe " + ",".join(codes)
        label = {"safe": safe and not categories, "categories": categories,
                 "rationale": f"Llama Guard: {verdict.strip()}"}
        return self._result(label, response, None)


def parse_llama_guard(text: str) -> tuple[bool, list[str]]:
    """(safe, category codes) from a Llama Guard answer: ``safe``, or ``unsafe`` with the
    violated codes on the next line (``S1,S10``). Anything else is an error (a failure row,
    retried on a rerun), never a guess."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    head = lines[0].lower() if lines else ""
    if head == "safe":
        return True, []
    if head == "unsafe":
        codes = [c.strip().upper() for line in lines[1:2] for c in line.split(",") if c.strip()]
        return False, codes
    raise ValueError(f"not a Llama Guard verdict (expected 'safe' or 'unsafe'): {text[:80]!r}")
