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

- ``paper`` (every backend but llama.cpp): the paper's repo -- documents (target and demos)
  kept whole up to 4,096 tokens (the backend's tokenizer, ``ctx.llm.count_tokens``) and cut
  only when longer, demos added while the whole prompt (system + demos + user) stays under
  7,500 tokens, stopping at the first demo that does not fit -- when the first one does not,
  the prompt goes without demos, as the repo's does (``_meta.demos`` 0); no string caps in the
  schema.
- ``grammar`` (llamacpp, the embedded model): llama.cpp refuses JSON grammars with a string
  repetition much above 900 and then decodes unconstrained, and a 135M model rambles. So:
  capped strings (query 900 chars, scene 600), 250-token demo documents, a 1,500-token budget
  for the demos alone (a too-long demo is skipped for a shorter one; when none fits, the
  shortest is used alone) and ``max_tokens`` 1,200.

Any limit set explicitly in the config wins over the profile's value.

Both profiles then fit the model's context window (``LLMClient.context_length``; see
docs/backends.md): ``max_tokens`` at most half the window; the prompt budget
``min(profile budget, window - max_tokens - template overhead)``; the target document at most
half of what the template leaves, and each demo's document at most a quarter of it. A window
that cannot hold even the template and a minimal document is one ``ContextWindowExceeded``
failure per item, with the numbers; so is a first demo that would fit the profile's budget but
not the window (the paper profile's zero-demo rule is for its own budget, not a small window).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

from synthloom.core.context import ItemContext, RunContext
from synthloom.core.fingerprint import stable_hash
from synthloom.core.records import META, ItemResult, Output
from synthloom.core.registry import register_step
from synthloom.core.steps import MapStep, StepConfig
from synthloom.llm.kinds import grammar_limited
from synthloom.llm.structured import schema_instructions
from synthloom.llm.tokens import prompt_overhead
from synthloom.llm.types import ContextWindowExceeded
from synthloom.methods.hashring import HashRing, RingCache
from synthloom.prompting.templated import TemplatedStep
from synthloom.prompting.textutil import estimate_tokens, truncate_to_tokens

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
    #: The model's context window these limits were fitted to (None: not fitted).
    context_length: int | None = None
    #: Tokens the window leaves for the document and demos after the template and answer;
    #: below ``MIN_FREE_TOKENS`` nothing useful fits.
    free_tokens: int | None = None
    #: The most counted tokens the demos may add to ``base_tokens`` (prompt scope) or take
    #: alone (demos scope) inside the window: the one-demo fallback must respect it too.
    window_budget: int | None = None
    #: ``demo_token_budget`` before the window shrank it (None: not fitted).
    profile_budget: int | None = None


#: The fewest tokens for document + demos worth a request.
MIN_FREE_TOKENS = 64

#: Demo columns the repo's demo template renders (a demo's content key hashes these; a custom
#: demo template's own variables are used instead).
DEMO_COLUMNS = ("document", "instruction", "query_compositions", "scene")

PROFILES = {
    "paper": Limits(7500, "prompt", True, 4096, 4096, None, 2048, SYNTHESIS_SCHEMA_UNCAPPED),
    "grammar": Limits(1500, "demos", False, 250, 1000, None, 1200, SYNTHESIS_SCHEMA),
}


class SynthesizeConfig(StepConfig):
    #: Node (in ``context:``) holding attributed demos (instruction, document, scene,
    #: query_compositions).
    demos: str
    #: Jinja prompt template of the synthesis (the demos, then the target document).
    template: str = "synthquestions/prompts/synthesize.jinja"
    #: Jinja template that renders one demo inside the prompt.
    demo_template: str = "synthquestions/prompts/demo.jinja"
    #: ``auto``: ``grammar`` on llamacpp, ``paper`` elsewhere (see the module docstring).
    limits: Literal["auto", "paper", "grammar"] = "auto"
    #: Token budget (backend tokenizer): of the whole prompt (paper) or of the demos (grammar).
    demo_token_budget: int | None = None
    #: Most demos shown per prompt (fewer when the token budget runs out).
    max_demos: int = 10
    #: Each demo's document is cut to this many tokens inside the prompt (paper: 4096,
    #: grammar: 250).
    demo_doc_tokens: int | None = None
    #: The target document is cut to this many tokens (paper: 4096, grammar: 1000).
    doc_tokens: int | None = None
    #: Documents (target and demos) are also cut to this many characters (default: none).
    doc_chars: int | None = None
    #: Column with the target document's text.
    text_column: str = "text"
    #: Sampling temperature.
    temperature: float = 0.8
    #: Most tokens of the answer (None: the ``limits`` profile's; at most half the context window).
    max_tokens: int | None = None
    #: Column of a demo naming the document it was attributed to (excluded for that target).
    demo_document_column: str = "document_id"


@register_step
class SynthesizeInstruction(TemplatedStep, MapStep):
    type_name = "sq_synthesize"
    # 2: shortest demo when none fits; 3: capped string lengths; 4: repo prompt, target's own
    # demos excluded, backend-aware limits; 5: demos by consistent hashing, keyed on the demos
    # chosen (not the pool); 6: paper profile cuts documents at 4,096 tokens (not characters)
    # and sends zero demos when the first does not fit
    version = "6"
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
        #: Per client: (client, tokens of the prompt with no document and no demos).
        self._heads: dict[int, tuple[Any, int]] = {}

    def reads(self) -> list[str]:
        return [self.config.text_column]

    def limits(self, ctx: ItemContext | RunContext | None) -> Limits:
        """The profile for this backend, with the config's explicit values over it."""
        cfg = self.config
        name = cfg.limits
        if name == "auto":
            name = "grammar" if grammar_limited(ctx) else "paper"
        base = PROFILES[name]
        limits = Limits(
            demo_token_budget=cfg.demo_token_budget or base.demo_token_budget,
            budget_scope=base.budget_scope,
            stop_at_first_misfit=base.stop_at_first_misfit,
            demo_doc_tokens=cfg.demo_doc_tokens or base.demo_doc_tokens,
            doc_tokens=cfg.doc_tokens or base.doc_tokens,
            doc_chars=cfg.doc_chars or base.doc_chars,
            max_tokens=cfg.max_tokens or base.max_tokens,
            schema=base.schema,
        )
        return self._fit_window(limits, ctx)

    def _fit_window(self, limits: Limits, ctx: ItemContext | RunContext | None) -> Limits:
        """``limits`` shrunk to the client's context window (module docstring)."""
        llm = _client(ctx)
        window = getattr(llm, "context_length", None)
        if not isinstance(window, int) or not hasattr(llm, "token_counter"):
            return limits  # no model, or an LLM-like without a window: the profile as it is
        max_tokens = min(limits.max_tokens, window // 2)
        # Packing sums counts of the client's counter; true tokens <= counted * margin, plus
        # the chat template's overhead: the room in counted tokens is what fits.
        messages = self._head_messages()
        margin = llm.token_counter.margin
        room = int((window - max_tokens - prompt_overhead(len(messages))) / margin)
        head = self._head_contents(llm)
        if getattr(getattr(llm, "backend", None), "supports_json_schema", True) is False:
            # The client appends the schema as instructions: part of the prompt too.
            head += llm.count_tokens(schema_instructions(limits.schema))
        free = room - head
        doc_tokens = max(1, free // 2)
        if limits.doc_tokens is not None:
            doc_tokens = min(doc_tokens, limits.doc_tokens)
        demo_doc_tokens = max(1, free // 4)
        if limits.demo_doc_tokens is not None:
            demo_doc_tokens = min(demo_doc_tokens, limits.demo_doc_tokens)
        # Demos are counted one by one; their separators are not: 4 tokens each.
        slack = 4 * self.config.max_demos
        # prompt scope: base + demos within the room; demos scope: what template and document
        # leave.
        cap = (room - (head - self._head_contents(llm)) - slack
               if limits.budget_scope == "prompt" else free - doc_tokens - slack)
        return replace(limits, max_tokens=max_tokens, doc_tokens=doc_tokens,
                       demo_doc_tokens=demo_doc_tokens,
                       demo_token_budget=max(0, min(limits.demo_token_budget, cap)),
                       context_length=window, free_tokens=free, window_budget=cap,
                       profile_budget=limits.demo_token_budget)

    def _head_messages(self) -> list[dict[str, str]]:
        # One empty demo: the template's text around its demos is part of the head.
        return self.template().render_messages({"demos": [""], "document": ""})

    def _head_contents(self, llm: Any) -> int:
        """Counted tokens of the prompt without document and demos (one count per client)."""
        held = self._heads.get(id(llm))
        if held is None:
            tokens = sum(llm.count_tokens(m["content"]) for m in self._head_messages())
            held = self._heads[id(llm)] = (llm, tokens)
        return held[1]

    @staticmethod
    def cut(text: str, tokens: int | None, chars: int | None, count: Any) -> str:
        if chars is not None:
            text = text[:chars]
        if tokens is not None:
            # No token spans 32 characters: a cheap bound before the tokenizer sees a huge text.
            text = truncate_to_tokens(text[: tokens * 32], tokens, count)
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
        first demo that does not fit (the first one too: no demos, as the repo); ``grammar``
        skips it for a shorter one and, when none fits, uses the shortest looked at alone. ``memo`` (demo content key -> tokens)
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
                if limits.stop_at_first_misfit:
                    break  # the paper's rule: stop at the first demo that does not fit
                continue  # a shorter demo may still fit
            chosen.append(index)
            total += tokens
        if not chosen and shortest is not None and not limits.stop_at_first_misfit and (
                limits.window_budget is None or used + shortest[0] <= limits.window_budget):
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
        When no demo fits the budget at all, the grammar profile uses the shortest one looked
        at alone (the caller records that the budget was exceeded); the paper profile none.
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
            if chosen:
                parts.append([ring.keys[i] for i in chosen])
                continue
            # No demo: the first demo that did not fit decides (zero demos or a window error);
            # the drop reason still tells an empty pool from one of own demos only.
            first = self._first_other(demos, anchor, document_id)
            parts.append(["no demo fits", ring.keys[first]] if first is not None else
                         ("only this document's demos" if demos else "no demos"))
        return parts

    def _first_other(self, demos: list[dict[str, Any]], anchor: str,
                     document_id: str) -> int | None:
        """The first demo of the walk not attributed to ``document_id`` (None: there is none)."""
        column = self.config.demo_document_column
        return next((i for i in self.ring(demos).walk(anchor)
                     if demos[i].get(column) != document_id), None)

    def _fits_profile(self, demo: dict[str, Any], limits: Limits, base_tokens: int, count: Any,
                      memo: dict[str, int] | None) -> bool:
        """Whether ``demo`` alone fits the profile's budget (before the window shrank it):
        then only the window keeps it out."""
        budget = limits.profile_budget
        if budget is None:
            return False
        key = self._demo_key(demo)
        tokens = memo.get(key) if memo is not None else None
        if tokens is None:
            tokens = count(self._render_demo(demo, limits, count))
        used = base_tokens if limits.budget_scope == "prompt" else 0
        return used + tokens <= budget

    async def process(self, record: dict[str, Any], ctx: ItemContext) -> Output | ItemResult:
        demos = ctx.context.get(self.config.demos) or []
        count, memo = self._counting(ctx.run)
        limits = self.limits(ctx)
        if limits.free_tokens is not None and limits.free_tokens < MIN_FREE_TOKENS:
            raise ContextWindowExceeded(
                f"the synthesis prompt cannot fit the context window of {limits.context_length:,}"
                f" tokens: its template takes {self._head_contents(ctx.llm):,} and the answer "
                f"{limits.max_tokens:,}, leaving {limits.free_tokens:,} for the document and "
                f"demos (at least {MIN_FREE_TOKENS} needed); raise context_length or use a "
                "shorter template")
        document_id, anchor, document, base_tokens = self._target(record, ctx.run, count,
                                                                  limits)
        # The same walk as context_dependence: the demos this item's key covers.
        rendered, demo_ids, demo_tokens = self.pack_demos(
            demos, anchor, count, limits, base_tokens, document_id, memo)
        first = self._first_other(demos, anchor, document_id) if not rendered else None
        if first is not None and limits.window_budget is not None and (
                not limits.stop_at_first_misfit or self._fits_profile(
                    demos[first], limits, base_tokens, count, memo)):
            raise ContextWindowExceeded(
                f"no demo fits the context window of {limits.context_length:,} tokens: the "
                f"prompt without demos takes {base_tokens:,} (counted) of the "
                f"{limits.window_budget:,} left beside max_tokens {limits.max_tokens:,}; "
                "raise context_length or use shorter demos")
        if not rendered and first is None:
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
                  "demos": len(demo_ids), "demo_over_budget": over,
                  "document_id": document_id,
                  "finish_reason": response.finish_reason},
        )


def _client(ctx: ItemContext | RunContext | None) -> Any:
    """The step's client, or None (no context, or a run without a model)."""
    if ctx is None:
        return None
    try:
        return ctx.llm
    except RuntimeError:  # ItemContext.llm raises when the run has no model
        return None
