"""Bottom-up synthesis: a corpus document + random attributed demos → a new instruction.

Demos (``<document><scene><query_compositions><query>``, as the paper's repo renders them)
are drawn in a seeded random order, never from the target document itself (a demo grounded in
the same document would leak its query). The model answers with ``thought`` (how it designs
the scenario and the query so that the seven requirements hold), ``scene``,
``query_compositions`` and ``query``; the query becomes ``instruction``.

Limits depend on the backend (``limits: auto``):

- ``paper`` (every backend but llama.cpp): the paper's repo -- documents cut to 4,096
  characters, demos added while the whole prompt (system + demos + user) stays under 7,500
  tokens, stopping at the first demo that does not fit; no string caps in the schema.
- ``grammar`` (llamacpp, the embedded model): llama.cpp refuses JSON grammars with a string
  repetition much above 900 and then decodes unconstrained, and a 135M model rambles. So:
  capped strings (query 900 chars, scene 600), 250-token demo documents, a 1,500-token budget
  for the demos alone (a too-long demo is skipped for a shorter one) and ``max_tokens`` 1,200.

Any limit set explicitly in the config wins over the profile's value.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Literal

from synthloom.core.context import ItemContext, RunContext
from synthloom.core.records import META, ItemResult, Output
from synthloom.core.registry import register_step
from synthloom.core.steps import MapStep, StepConfig
from synthloom.llm.kinds import grammar_limited
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
#: The paper's shape without the grammar caps (real backends).
TEXT = {"type": "string"}
SYNTHESIS_SCHEMA_UNCAPPED = {
    "type": "object",
    "properties": {
        "thought": TEXT,
        "scene": TEXT,
        "query_compositions": {
            "type": "object",
            "properties": {k: TEXT for k in COMPOSITIONS_SCHEMA["properties"]},
            "required": COMPOSITIONS_SCHEMA["required"],
        },
        "query": TEXT,
    },
    "required": SYNTHESIS_SCHEMA["required"],
}


@dataclass(frozen=True)
class Limits:
    demo_token_budget: int
    #: ``prompt``: the budget covers the whole prompt (paper); ``demos``: the demos alone.
    budget_scope: Literal["prompt", "demos"]
    #: Skip a demo that does not fit and try shorter ones (grammar) or stop there (paper).
    stop_at_first_misfit: bool
    demo_doc_tokens: int | None
    doc_tokens: int | None
    doc_chars: int | None
    max_tokens: int
    schema: dict[str, Any]


PROFILES = {
    "paper": Limits(7500, "prompt", True, None, None, 4096, 2048, SYNTHESIS_SCHEMA_UNCAPPED),
    "grammar": Limits(1500, "demos", False, 250, 1000, None, 1200, SYNTHESIS_SCHEMA),
}


class SynthesizeConfig(StepConfig):
    #: Node (in ``context:``) holding attributed demos (instruction, document, scene,
    #: query_compositions).
    demos: str
    template: str = "synthquestions/prompts/synthesize.jinja"
    demo_template: str = "synthquestions/prompts/demo.jinja"
    #: ``auto``: ``grammar`` on llamacpp, ``paper`` elsewhere (see the module docstring).
    limits: Literal["auto", "paper", "grammar"] = "auto"
    #: Token budget (backend tokenizer): of the whole prompt (paper) or of the demos (grammar).
    demo_token_budget: int | None = None
    max_demos: int = 10
    #: Each demo's document is cut to this many tokens inside the prompt (grammar: 250).
    demo_doc_tokens: int | None = None
    #: The target document is cut to this many tokens (grammar: 1000).
    doc_tokens: int | None = None
    #: Documents (target and demos) are cut to this many characters (paper: 4096).
    doc_chars: int | None = None
    text_column: str = "text"
    temperature: float = 0.8
    max_tokens: int | None = None
    #: Column of a demo naming the document it was attributed to (excluded for that target).
    demo_document_column: str = "document_id"


@register_step
class SynthesizeInstruction(TemplatedStep, MapStep):
    type_name = "sq_synthesize"
    # 2: shortest demo when none fits; 3: capped string lengths; 4: repo prompt, target's own
    # demos excluded, backend-aware limits
    version = "4"
    uses_llm = True
    Config = SynthesizeConfig
    config: SynthesizeConfig
    template_fields = ("template", "demo_template")
    template_keys = {"demo_template": "demo"}

    def reads(self) -> list[str]:
        return [self.config.text_column]

    def limits(self, ctx: ItemContext | RunContext | None) -> Limits:
        """The profile for this backend, with the config's explicit values over it."""
        cfg = self.config
        name = cfg.limits
        if name == "auto":
            name = "grammar" if grammar_limited(ctx) else "paper"
        base = PROFILES[name]
        return Limits(
            demo_token_budget=cfg.demo_token_budget or base.demo_token_budget,
            budget_scope=base.budget_scope,
            stop_at_first_misfit=base.stop_at_first_misfit,
            demo_doc_tokens=cfg.demo_doc_tokens or base.demo_doc_tokens,
            doc_tokens=cfg.doc_tokens or base.doc_tokens,
            doc_chars=cfg.doc_chars or base.doc_chars,
            max_tokens=cfg.max_tokens or base.max_tokens,
            schema=base.schema,
        )

    @staticmethod
    def cut(text: str, tokens: int | None, chars: int | None, count: Any) -> str:
        if chars is not None:
            text = text[:chars]
        if tokens is not None:
            text = truncate_to_tokens(text, tokens, count)
        return text

    def pack_demos(self, demos: list[dict[str, Any]], seed: int, count: Any,
                   limits: Limits | None = None, base_tokens: int = 0,
                   exclude_document: str | None = None) -> tuple[list[str], list[str], int]:
        """Rendered demos, their record ids and their token total, within the budget.

        Demos attributed to ``exclude_document`` are never used. ``base_tokens`` is the
        prompt without demos, counted against the budget when it covers the whole prompt.
        When no demo fits the budget at all, the shortest one is used alone (the caller
        records that the budget was exceeded): one demo beats a zero-shot prompt.
        """
        limits = limits or self.limits(None)
        column = self.config.demo_document_column
        usable = [d for d in demos
                  if exclude_document is None or d.get(column) != exclude_document]
        order = list(range(len(usable)))
        random.Random(seed).shuffle(order)
        budget = limits.demo_token_budget
        used = base_tokens if limits.budget_scope == "prompt" else 0
        rendered, ids, total = [], [], 0
        shortest: tuple[int, str, str] | None = None
        for index in order:
            if len(rendered) >= self.config.max_demos:
                break
            demo = usable[index]
            text = self.template("demo_template").render_text({
                **demo,
                "query_compositions": demo.get("query_compositions") or {},
                "document": self.cut(str(demo.get("document") or ""), limits.demo_doc_tokens,
                                     limits.doc_chars, count),
            }).strip()
            tokens = count(text)
            if shortest is None or tokens < shortest[0]:
                shortest = (tokens, text, demo[META]["id"])
            if used + total + tokens > budget:
                if limits.stop_at_first_misfit and rendered:
                    break  # the paper's rule: stop at the first demo that does not fit
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
        limits = self.limits(ctx)
        document_id = record[META]["id"]
        document = self.cut(str(record.get(self.config.text_column) or ""), limits.doc_tokens,
                            limits.doc_chars, count)
        base_tokens = 0
        if limits.budget_scope == "prompt":
            base_tokens = sum(count(m["content"]) for m in self.template().render_messages(
                {"demos": [], "document": document}))
        rendered, demo_ids, demo_tokens = self.pack_demos(
            demos, ctx.seed, count, limits, base_tokens, exclude_document=document_id)
        if not rendered:
            if demos:
                return ItemResult.drop("no attributed demos from other documents: every demo "
                                       "was attributed to this document")
            return ItemResult.drop("no attributed demos: every seed was dropped or failed "
                                   "before attribution (see dropped.jsonl / failed.jsonl)")
        response = await self.ask(ctx, {"demos": rendered, "document": document},
                                  schema=limits.schema, max_tokens=limits.max_tokens)
        parsed = response.parsed
        query = str(parsed.get("query") or "").strip()
        if not query:
            raise ValueError("the model returned an empty query")
        over = base_tokens + demo_tokens > limits.demo_token_budget
        return self.output(
            response, {
                "instruction": query,
                "scene": parsed.get("scene"),
                "query_compositions": parsed.get("query_compositions"),
                "synthesis_thought": parsed.get("thought"),
                "document_id": document_id,
            },
            meta={"demo_ids": demo_ids, "demo_tokens": demo_tokens,
                  "prompt_tokens_estimate": base_tokens + demo_tokens if base_tokens else None,
                  "demo_over_budget": over, "document_id": document_id,
                  "finish_reason": response.finish_reason},
        )
