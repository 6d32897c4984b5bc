"""Bottom-up synthesis: a corpus document + random attributed demos → a new instruction.

Demos (``<document><scene><query_compositions><query>``) are added in a seeded random order
until the next one would exceed ``demo_token_budget`` (counted with the backend's tokenizer) or
``max_demos`` is reached. The model answers with ``thought``, ``scene``,
``query_compositions`` and ``query``; the query becomes ``instruction``.
"""

from __future__ import annotations

import random
from typing import Any

from synthloom.core.context import ItemContext
from synthloom.core.records import META, ItemResult, Output
from synthloom.core.registry import register_step
from synthloom.core.steps import MapStep, StepConfig
from synthloom.methods.templated import TemplatedStep
from synthloom.methods.textutil import estimate_tokens, truncate_to_tokens

# String caps bound the grammar, so a rambling model cannot be cut off mid-JSON by max_tokens
# (about 3 characters a token: max_tokens below covers the caps). llama.cpp refuses grammars
# with a string repetition much above 900 and then decodes unconstrained: keep caps <= 900.
SHORT = {"type": "string", "maxLength": 200}
COMPOSITIONS_SCHEMA = {
    "type": "object",
    "properties": {
        "ability": SHORT,
        "knowledge": SHORT,
        "extra_information": SHORT,
        "output": SHORT,
    },
    "required": ["ability", "knowledge", "extra_information", "output"],
}
SYNTHESIS_SCHEMA = {
    "type": "object",
    "properties": {
        "thought": {"type": "string", "maxLength": 400},
        "scene": {"type": "string", "maxLength": 600},
        "query_compositions": COMPOSITIONS_SCHEMA,
        "query": {"type": "string", "maxLength": 900},
    },
    "required": ["thought", "scene", "query_compositions", "query"],
}


class SynthesizeConfig(StepConfig):
    #: Node (in ``context:``) holding attributed demos (instruction, document, scene,
    #: query_compositions).
    demos: str
    template: str = "synthquestions/prompts/synthesize.jinja"
    demo_template: str = "synthquestions/prompts/demo.jinja"
    demo_token_budget: int = 1500
    max_demos: int = 10
    #: Each demo's document is cut to this many tokens inside the prompt.
    demo_doc_tokens: int = 250
    #: The target document is cut to this many tokens.
    doc_tokens: int = 1000
    text_column: str = "text"
    temperature: float = 0.8
    max_tokens: int = 1200


@register_step
class SynthesizeInstruction(TemplatedStep, MapStep):
    type_name = "sq_synthesize"
    version = "3"  # 2: shortest demo when none fits; 3: capped string lengths
    uses_llm = True
    Config = SynthesizeConfig
    config: SynthesizeConfig
    template_fields = ("template", "demo_template")
    template_keys = {"demo_template": "demo"}

    def reads(self) -> list[str]:
        return [self.config.text_column]

    def pack_demos(self, demos: list[dict[str, Any]], seed: int,
                   count: Any) -> tuple[list[str], list[str], int]:
        """Rendered demos, their record ids and their token total, within the budget.

        When no demo fits the budget at all, the shortest one is used alone (the caller
        records that the budget was exceeded): one demo beats a zero-shot prompt.
        """
        order = list(range(len(demos)))
        random.Random(seed).shuffle(order)
        rendered, ids, total = [], [], 0
        shortest: tuple[int, str, str] | None = None
        for index in order:
            if len(rendered) >= self.config.max_demos:
                break
            demo = demos[index]
            text = self.template("demo_template").render_text({
                **demo,
                "document": truncate_to_tokens(str(demo.get("document") or ""),
                                               self.config.demo_doc_tokens, count),
            }).strip()
            tokens = count(text)
            if shortest is None or tokens < shortest[0]:
                shortest = (tokens, text, demo[META]["id"])
            if total + tokens > self.config.demo_token_budget:
                continue  # a shorter demo may still fit
            rendered.append(text)
            ids.append(demo[META]["id"])
            total += tokens
        if not rendered and shortest is not None:
            return [shortest[1]], [shortest[2]], shortest[0]
        return rendered, ids, total

    async def process(self, record: dict[str, Any], ctx: ItemContext) -> Output | ItemResult:
        demos = ctx.context.get(self.config.demos) or []
        count = ctx.llm.count_tokens if ctx.run.llm is not None else estimate_tokens
        rendered, demo_ids, demo_tokens = self.pack_demos(demos, ctx.seed, count)
        if not rendered:
            return ItemResult.drop("no attributed demos: every seed was dropped or failed "
                                   "before attribution (see dropped.jsonl / failed.jsonl)")
        document = truncate_to_tokens(str(record.get(self.config.text_column) or ""),
                                      self.config.doc_tokens, count)
        response = await self.ask(ctx, {"demos": rendered, "document": document},
                                  schema=SYNTHESIS_SCHEMA)
        parsed = response.parsed
        query = str(parsed.get("query") or "").strip()
        if not query:
            raise ValueError("the model returned an empty query")
        return self.output(
            response, {
                "instruction": query,
                "scene": parsed.get("scene"),
                "query_compositions": parsed.get("query_compositions"),
                "synthesis_thought": parsed.get("thought"),
                "document_id": record[META]["id"],
            },
            meta={"demo_ids": demo_ids, "demo_tokens": demo_tokens,
                  "demo_over_budget": demo_tokens > self.config.demo_token_budget,
                  "document_id": record[META]["id"], "finish_reason": response.finish_reason},
        )
