"""Bottom-up synthesis: a corpus document + attributed demos → a new instruction.

Demos (``<document><scene><query_compositions><query>``, as the paper's repo renders them)
are never from the target document itself (a demo grounded in the same document would leak its
query). The model answers with ``thought`` (how it designs the scenario and the query so that
the seven requirements hold), ``scene``, ``query_compositions`` and ``query``; the query
becomes ``instruction``.

Demo choice (a deviation from the repo's random sample): consistent hashing. Each demo sits on
a ring at the hash of its rendered content; a document walks the ring from the hash of its
text (and the run seed) and takes the demos it meets. The choice looks like a random sample
per document, but it depends only on the document and the demos near its anchor, so a grown
pool (one more seed, a retried attribution) re-synthesizes about ``window / pool`` of the
documents instead of all of them, and packing looks at O(max_demos) demos, not the pool. The
item's cache key covers the demos chosen (``context_dependence``), not the whole pool.

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

from dataclasses import dataclass
from typing import Any, Literal

from synthloom.core.context import ItemContext, RunContext
from synthloom.core.fingerprint import stable_hash
from synthloom.core.records import META, ItemResult, Output
from synthloom.core.registry import register_step
from synthloom.core.steps import MapStep, StepConfig
from synthloom.llm.kinds import grammar_limited
from synthloom.methods.hashring import HashRing, RingCache
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


#: Demo columns the repo's demo template renders (a demo's content key hashes these; a custom
#: demo template's own variables are used instead).
DEMO_COLUMNS = ("document", "instruction", "query_compositions", "scene")

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
    # demos excluded, backend-aware limits; 5: demos by consistent hashing, keyed on the demos
    # chosen (not the pool)
    version = "5"
    uses_llm = True
    Config = SynthesizeConfig
    config: SynthesizeConfig
    template_fields = ("template", "demo_template")
    template_keys = {"demo_template": "demo"}

    def setup(self, ctx: RunContext) -> None:
        super().setup(ctx)
        # Shared by the step's concurrent items; all three only grow with deterministic facts.
        self._demo_columns: list[str] = []
        self._rings = RingCache(self._demo_key)
        self._memos: dict[tuple[int, int | None, int | None], tuple[Any, dict[str, int]]] = {}

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

    # --- demo choice: consistent hashing (methods/hashring.py) ----------------------------------

    def _demo_key(self, demo: dict[str, Any]) -> str:
        """What the demo template renders of a demo (content, not the record id)."""
        return stable_hash("sq-demo", {c: demo.get(c) for c in self._demo_columns})

    def ring(self, demos: list[dict[str, Any]]) -> HashRing:
        """The ring of this demo pool (built once per pool list)."""
        if not self._demo_columns:
            self._demo_columns = sorted(self.template("demo_template").variables
                                        or DEMO_COLUMNS)
        return self._rings.get(demos)

    def _render_demo(self, demo: dict[str, Any], limits: Limits, count: Any) -> str:
        return self.template("demo_template").render_text({
            **demo,
            "query_compositions": demo.get("query_compositions") or {},
            "document": self.cut(str(demo.get("document") or ""), limits.demo_doc_tokens,
                                 limits.doc_chars, count),
        }).strip()

    def choose_demos(self, demos: list[dict[str, Any]], anchor: str, count: Any,
                     limits: Limits | None = None, base_tokens: int = 0,
                     exclude_document: str | None = None,
                     memo: dict[str, int] | None = None) -> tuple[list[int], int]:
        """Indices (into ``demos``) of the demos for one document, and their token total.

        The walk starts at ``anchor``'s point on the ring of demo contents and takes demos in
        ring order, skipping those attributed to ``exclude_document``, until ``max_demos`` are
        taken or ``4 * max_demos + 8`` usable candidates were looked at. ``paper`` stops at the
        first demo that does not fit; ``grammar`` skips it for a shorter one. When none fits,
        the shortest candidate looked at is used alone. ``memo`` (demo content key -> tokens)
        makes each demo's rendering and counting happen once per run, not once per document.
        """
        limits = limits or self.limits(None)
        ring = self.ring(demos)
        column = self.config.demo_document_column
        cfg = self.config
        bound = 4 * cfg.max_demos + 8
        budget = limits.demo_token_budget
        used = base_tokens if limits.budget_scope == "prompt" else 0
        chosen: list[int] = []
        total = looked = 0
        shortest: tuple[int, int] | None = None
        for index in ring.walk(anchor):
            if len(chosen) >= cfg.max_demos or looked >= bound:
                break
            demo = demos[index]
            if exclude_document is not None and demo.get(column) == exclude_document:
                continue  # a demo grounded in the target document would leak its query
            looked += 1
            key = ring.keys[index]
            tokens = memo.get(key) if memo is not None else None
            if tokens is None:
                tokens = count(self._render_demo(demo, limits, count))
                if memo is not None:
                    memo[key] = tokens
            if shortest is None or tokens < shortest[0]:
                shortest = (tokens, index)
            if used + total + tokens > budget:
                if limits.stop_at_first_misfit and chosen:
                    break  # the paper's rule: stop at the first demo that does not fit
                continue  # a shorter demo may still fit
            chosen.append(index)
            total += tokens
        if not chosen and shortest is not None:
            return [shortest[1]], shortest[0]
        return chosen, total

    def pack_demos(self, demos: list[dict[str, Any]], anchor: str, count: Any,
                   limits: Limits | None = None, base_tokens: int = 0,
                   exclude_document: str | None = None,
                   memo: dict[str, int] | None = None) -> tuple[list[str], list[str], int]:
        """Rendered demos, their record ids and their token total, within the budget
        (``choose_demos`` picks them).

        Demos attributed to ``exclude_document`` are never used. ``base_tokens`` is the
        prompt without demos, counted against the budget when it covers the whole prompt.
        When no demo fits the budget at all, the shortest one looked at is used alone (the
        caller records that the budget was exceeded): one demo beats a zero-shot prompt.
        """
        limits = limits or self.limits(None)
        chosen, total = self.choose_demos(demos, anchor, count, limits, base_tokens,
                                          exclude_document, memo)
        rendered = [self._render_demo(demos[i], limits, count) for i in chosen]
        return rendered, [demos[i][META]["id"] for i in chosen], total

    def _target(self, record: dict[str, Any], ctx: RunContext, count: Any, limits: Limits
                ) -> tuple[str, str, str, int]:
        """The document's id, ring anchor, cut text and the prompt's tokens without demos."""
        text = str(record.get(self.config.text_column) or "")
        # The run seed moves every anchor: another seed, another sample of demos.
        anchor = stable_hash("sq-anchor", ctx.seed, text)
        document = self.cut(text, limits.doc_tokens, limits.doc_chars, count)
        base_tokens = 0
        if limits.budget_scope == "prompt":
            base_tokens = sum(count(m["content"]) for m in self.template().render_messages(
                {"demos": [], "document": document}))
        return record[META]["id"], anchor, document, base_tokens

    def _counting(self, ctx: RunContext) -> tuple[Any, dict[str, int]]:
        """The token counter of the step's client and its per-demo memo (one per client and
        cut, since both change the count)."""
        llm = ctx.llm
        count = llm.count_tokens if llm is not None else estimate_tokens
        limits = self.limits(ctx)
        memos = self._memos
        slot = (id(llm), limits.demo_doc_tokens, limits.doc_chars)
        if slot not in memos:
            memos[slot] = (llm, {})  # holds the client: its id stays unique while memoised
        return count, memos[slot][1]

    def context_dependence(self, records: list[dict[str, Any]], ctx: RunContext
                           ) -> list[Any] | None:
        """Per document, the content keys of the demos it will show: a grown demo pool reruns
        only the documents whose ring window changed (``process`` picks the same demos)."""
        demos = ctx.context.get(self.config.demos) or []
        count, memo = self._counting(ctx)
        limits = self.limits(ctx)
        ring = self.ring(demos)
        parts: list[Any] = []
        for record in records:
            document_id, anchor, _, base_tokens = self._target(record, ctx, count, limits)
            chosen, _ = self.choose_demos(demos, anchor, count, limits, base_tokens,
                                          document_id, memo)
            # No demo: the drop reason still tells an empty pool from one of own demos only.
            parts.append([ring.keys[i] for i in chosen] if chosen else
                         ("only this document's demos" if demos else "no demos"))
        return parts

    async def process(self, record: dict[str, Any], ctx: ItemContext) -> Output | ItemResult:
        demos = ctx.context.get(self.config.demos) or []
        count, memo = self._counting(ctx.run)
        limits = self.limits(ctx)
        document_id, anchor, document, base_tokens = self._target(record, ctx.run, count,
                                                                  limits)
        # The same walk as context_dependence: the demos this item's key covers.
        rendered, demo_ids, demo_tokens = self.pack_demos(
            demos, anchor, count, limits, base_tokens, document_id, memo)
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
