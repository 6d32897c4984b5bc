"""IN2 training (INformation-INtensive; An et al. 2024, "Make Your LLM Fully Utilize the
Context", arXiv 2404.16811): long-context QA whose answer sits in short segments placed at
random depths, so training sees that any position of a long context can matter.

Three steps, as in the paper's data construction:

* ``in2_qa`` (expand): from one segment (a ~128-token chunk, the *needle*) the model writes a
  question answerable only with that segment (``kind: single``, fine-grained information
  awareness); from the needle plus other segments of the same document it writes a question that
  integrates all of them (``kind: multi``, integration and reasoning of information). Only the
  segments are shown to the model, never the long context.
* ``in2_check`` (map, optional): the model answers the question from the segment(s) alone; the
  pair is dropped when that answer does not contain the generated answer's content words.
* ``in2_context`` (map): the long context: random other segments of the corpus fill it up to
  ``target_tokens`` (the run model's tokenizer, or characters without a model) and the needle(s)
  go in at positions drawn from the item seed. Each needle's character offset, chunk index in
  the context and relative depth (0 = first, 1 = last possible position) are recorded.
"""

from __future__ import annotations

import random
from typing import Any, Literal

from pydantic import Field

from synthloom.core.context import ItemContext, RunContext
from synthloom.core.errors import RecipeError
from synthloom.core.records import ItemResult, Output
from synthloom.core.registry import register_step
from synthloom.core.steps import ExpandStep, MapStep, StepConfig
from synthloom.methods.docqa.pairs import usable_pairs
from synthloom.methods.docqa.text import support
from synthloom.methods.templated import TemplatedStep, parsed_object

Kind = Literal["single", "multi"]


def _segment(record: dict[str, Any], text_column: str) -> dict[str, Any]:
    return {"chunk_id": record.get("chunk_id"), "doc_id": record.get("doc_id"),
            "chunk_index": record.get("chunk_index"), "text": str(record.get(text_column) or "")}


def _pool(step: StepConfig, ctx: RunContext | ItemContext, name: str | None
          ) -> list[dict[str, Any]]:
    names = [name] if name else step.context[:1]
    if not names or names[0] not in ctx.context:
        raise RecipeError(f"step {step.name}: needs the segment pool as a context node "
                          f"(context: [segments]; pool: NAME)")
    return ctx.context[names[0]]


# --- in2_qa ------------------------------------------------------------------------------------


class QAConfig(StepConfig):
    #: Which questions to ask per needle: single-segment and/or multi-segment.
    kinds: list[Kind] = Field(default_factory=lambda: ["single", "multi"])
    #: Segments a multi-segment question integrates (the needle + this many minus one).
    multi_segments: int = Field(default=2, ge=2, le=6)
    #: Partner segments for multi questions come from the needle's own document; when it has
    #: too few and this is true, from other documents of the pool.
    partners_from_other_docs: bool = False
    #: The context node holding every segment (default: the first of ``context``).
    pool: str | None = None
    text_column: str = "text"
    single_template: str = "longcontext/prompts/qa_single.jinja"
    multi_template: str = "longcontext/prompts/qa_multi.jinja"
    temperature: float = 0.7
    question_max_chars: int = Field(default=300, le=900)
    answer_max_chars: int = Field(default=400, le=900)
    max_tokens: int | None = None


def qa_schema(question_max: int, answer_max: int) -> dict[str, Any]:
    return {"type": "object", "properties": {
        "question": {"type": "string", "minLength": 10, "maxLength": question_max},
        "answer": {"type": "string", "minLength": 1, "maxLength": answer_max}},
        "required": ["question", "answer"], "additionalProperties": False}


@register_step
class IN2QuestionAnswer(TemplatedStep, ExpandStep):
    """One needle segment → a single-segment QA pair and/or a multi-segment one."""

    type_name = "in2_qa"
    uses_llm = True
    Config = QAConfig
    config: QAConfig
    template_fields = ("single_template", "multi_template")
    template_keys = {"single_template": "single", "multi_template": "multi"}

    def reads(self) -> list[str]:
        return sorted({self.config.text_column, "chunk_id", "doc_id", "chunk_index", "title"})

    @property
    def schema(self) -> dict[str, Any]:
        return qa_schema(self.config.question_max_chars, self.config.answer_max_chars)

    def partners(self, needle: dict[str, Any], pool: list[dict[str, Any]],
                 seed: int) -> list[dict[str, Any]] | str:
        """Other segments for a multi question (in document order), or why there are none."""
        cfg = self.config
        want = cfg.multi_segments - 1
        others = [r for r in pool if r.get("chunk_id") != needle["chunk_id"]]
        same = [r for r in others if r.get("doc_id") == needle["doc_id"]]
        rng = random.Random(seed)
        chosen = rng.sample(same, min(want, len(same)))
        if len(chosen) < want and cfg.partners_from_other_docs:
            rest = [r for r in others if r.get("doc_id") != needle["doc_id"]]
            chosen += rng.sample(rest, min(want - len(chosen), len(rest)))
        if len(chosen) < want:
            return (f"multi: the document has {len(same)} other segment(s), "
                    f"{cfg.multi_segments} segments needed")
        segments = [needle, *(_segment(r, cfg.text_column) for r in chosen)]
        same_doc = all(s["doc_id"] == needle["doc_id"] for s in segments)
        return sorted(segments, key=lambda s: (s["doc_id"], s["chunk_index"] or 0)) \
            if same_doc else segments

    def _max_tokens(self) -> int:
        cfg = self.config
        if cfg.max_tokens is not None:
            return cfg.max_tokens
        # A token is at least one character: the schema's caps end the JSON before this cap.
        return cfg.question_max_chars + cfg.answer_max_chars + 32

    async def process(self, record: dict[str, Any], ctx: ItemContext) -> ItemResult | list:
        cfg = self.config
        needle = _segment(record, cfg.text_column)
        if not needle["text"].strip() or not needle["chunk_id"]:
            raise KeyError("the needle record needs chunk_id and text (run a chunk step first)")
        outputs: list[Output] = []
        skipped: list[str] = []
        for offset, kind in enumerate(cfg.kinds):
            if kind == "single":
                segments: list[dict[str, Any]] | str = [needle]
            else:
                segments = self.partners(needle, _pool(cfg, ctx, cfg.pool), ctx.seed + offset)
            if isinstance(segments, str):
                skipped.append(segments)
                continue
            template = f"{kind}_template"
            response = await self.ask(ctx, {"segments": segments}, template=template,
                                      schema=self.schema, max_tokens=self._max_tokens(),
                                      seed_offset=offset)
            usable, problems = usable_pairs([parsed_object(response)])
            if not usable:
                skipped.append(f"{kind}: {'; '.join(problems) or 'no question'}")
                continue
            columns = {"question": usable[0]["question"], "answer": usable[0]["answer"],
                       "kind": kind, "segments": segments, "doc_id": needle["doc_id"],
                       "title": record.get("title")}
            outputs.append(self.output(
                response, columns, template=template, replace=True, sample_index=offset,
                meta={"finish_reason": response.finish_reason,
                      **({"skipped": list(skipped)} if skipped else {})}))
        if not outputs:
            return ItemResult.drop("no usable QA pair: " + "; ".join(skipped))
        return outputs


# --- in2_check ---------------------------------------------------------------------------------


class CheckConfig(StepConfig):
    #: Off: every pair passes unchanged, with no model call.
    enabled: bool = True
    template: str = "longcontext/prompts/answer_check.jinja"
    #: Share of the generated answer's content words the segment-only answer must contain.
    threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    max_tokens: int = 128
    temperature: float = 0.0


@register_step
class IN2AnswerCheck(TemplatedStep, MapStep):
    """Re-answer from the segment(s) alone; drop pairs whose answers disagree."""

    type_name = "in2_check"
    uses_llm = True
    Config = CheckConfig
    config: CheckConfig

    def reads(self) -> list[str]:
        return ["question", "answer", "segments"]

    async def process(self, record: dict[str, Any], ctx: ItemContext) -> Output | ItemResult:
        cfg = self.config
        if not cfg.enabled:
            return Output(columns={})  # pass through unchanged
        response = await self.ask(
            ctx, {"segments": record["segments"], "question": record["question"]})
        said = response.text.strip()
        score, missing = support(str(record["answer"]), said)
        if score < cfg.threshold:
            return ItemResult.drop(
                f"segment-only answer does not match: {score:.2f} of the answer's content "
                f"words < {cfg.threshold:g} (missing {', '.join(missing[:5])}; the model "
                f"said {said[:120]!r})")
        return self.output(response, {"check_answer": said, "check_score": round(score, 3)},
                           meta={})


# --- in2_context -------------------------------------------------------------------------------


class ContextConfig(StepConfig):
    #: Length of the assembled context, in the run model's tokens (characters without a model).
    target_tokens: int = Field(default=4096, ge=16)
    #: The context node holding every segment (default: the first of ``context``).
    pool: str | None = None
    text_column: str = "text"
    #: Filler may come from the needle's own document (off: another of its segments might
    #: answer the question too).
    filler_same_doc: bool = False
    separator: str = "\n\n"
    #: Drop contexts shorter than this share of the target (a corpus too small to fill it).
    min_fill: float = Field(default=0.0, ge=0.0, le=1.0)
    #: ``auto``: the run model's tokenizer when there is one; ``chars``: characters.
    unit: Literal["auto", "chars"] = "auto"


@register_step
class IN2Context(MapStep):
    """Fill a long context with random segments and insert the needle(s) at random depths."""

    type_name = "in2_context"
    Config = ContextConfig
    config: ContextConfig

    def setup(self, ctx: RunContext) -> None:
        self._counts: dict[str, int] = {}

    def extra_fingerprint(self, ctx: RunContext) -> Any:
        return {"unit": self._unit(ctx)}

    def _unit(self, ctx: RunContext) -> str:
        if self.config.unit == "auto" and ctx.llm is not None:
            return f"tokens:{ctx.llm.model_id}"
        return "chars"

    def reads(self) -> list[str]:
        return ["question", "answer", "kind", "segments", "doc_id", "title"]

    def _count(self, text: str, ctx: ItemContext) -> int:
        if self.config.unit == "chars" or ctx.run.llm is None:
            return len(text)
        key = text  # segments repeat across items: tokenize each once
        if key not in self._counts:
            self._counts[key] = ctx.run.llm.count_tokens(text)
        return self._counts[key]

    def process(self, record: dict[str, Any], ctx: ItemContext) -> Output | ItemResult:
        cfg = self.config
        rng = random.Random(ctx.seed)
        needles = [dict(s) for s in record["segments"]]
        needle_ids = {s["chunk_id"] for s in needles}
        needle_docs = {s["doc_id"] for s in needles}
        pool = [r for r in _pool(cfg, ctx, cfg.pool) if r.get("chunk_id") not in needle_ids
                and (cfg.filler_same_doc or r.get("doc_id") not in needle_docs)]
        rng.shuffle(pool)
        sep_cost = self._count(cfg.separator, ctx) if cfg.separator else 0
        budget = cfg.target_tokens - sum(self._count(s["text"], ctx) + sep_cost
                                         for s in needles)
        fillers: list[dict[str, Any]] = []
        for candidate in pool:  # greedy: every segment that still fits, in random order
            cost = self._count(str(candidate.get(cfg.text_column) or ""), ctx) + sep_cost
            if cost <= budget:
                fillers.append(_segment(candidate, cfg.text_column))
                budget -= cost
        pieces: list[dict[str, Any]] = [{**f, "needle": False} for f in fillers]
        order = list(range(len(needles)))
        rng.shuffle(order)  # multi: the needles' order in the context is random too
        for i in order:
            pieces.insert(rng.randint(0, len(pieces)), {**needles[i], "needle": True})
        context, placed, offset = [], [], 0
        for index, piece in enumerate(pieces):
            if index:
                context.append(cfg.separator)
                offset += len(cfg.separator)
            if piece["needle"]:
                placed.append({"chunk_id": piece["chunk_id"], "doc_id": piece["doc_id"],
                               "position": offset, "chunk_index": index,
                               "length": len(piece["text"])})
            context.append(piece["text"])
            offset += len(piece["text"])
        text = "".join(context)
        for needle in placed:  # 0: at the very start; 1: at the very end
            room = len(text) - needle["length"]
            needle["depth"] = round(needle["position"] / room, 4) if room > 0 else 0.0
        unit = "chars" if self._unit(ctx.run) == "chars" else "tokens"
        length = len(text) if unit == "chars" else ctx.run.llm.count_tokens(text)  # type: ignore[union-attr]
        if length < cfg.min_fill * cfg.target_tokens:
            return ItemResult.drop(
                f"context reached {length} of target {cfg.target_tokens} {unit} (< min_fill "
                f"{cfg.min_fill:g}): the pool has {len(pool)} usable filler segment(s)")
        columns = {
            "context": text, "question": record["question"], "answer": record["answer"],
            "kind": record["kind"], "needles": placed, "context_tokens": length,
            "length_unit": unit, "target_tokens": cfg.target_tokens,
            "target_reached": length >= 0.9 * cfg.target_tokens,
            "n_segments": len(pieces), "filler_ids": [f["chunk_id"] for f in fillers],
        }
        return Output(columns=columns, replace=True)
