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
* ``in2_context`` (map): the long context: other segments of the corpus fill it up to
  ``target_tokens`` (the run model's tokenizer, or characters without a model) and the needle(s)
  go in at positions drawn from the item seed. Each needle's character offset, chunk index in
  the context and relative depth (0 = first, 1 = last possible position) are recorded.

Which segments (a deviation from the paper's random sample, same distribution per item):
consistent hashing (``methods/hashring.py``). Filler is the walk of a ring of segment contents
from a hash of the question and needles; multi partners are the needle's same-document
segments ranked by a hash of (run seed, needle, segment). Both depend only on the item and
the segments near it, and each step's cache key covers the segments chosen
(``context_dependence``), not the whole pool: one more document re-asks only its own questions
and rebuilds about ``fill / pool`` of the contexts, where a whole-pool shuffle redid all of
them. A walk looks at O(fill) segments, not the pool.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any, Literal

from pydantic import Field

from synthloom.core.context import ItemContext, RunContext
from synthloom.core.errors import RecipeError
from synthloom.core.fingerprint import stable_hash
from synthloom.core.records import ItemResult, Output
from synthloom.core.registry import register_step
from synthloom.core.steps import ExpandStep, MapStep, StepConfig
from synthloom.methods.common.overlap import support
from synthloom.methods.docqa.pairs import usable_pairs
from synthloom.methods.hashring import HashRing
from synthloom.prompting.templated import TemplatedStep, parsed_object

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


class _PoolIndex:
    """A segment pool's ring (by segment content) and its segments per document, built once per
    pool list (and rebuilt when another list, or another length, comes)."""

    def __init__(self, text_column: str) -> None:
        self.text_column = text_column
        self._pool: list[dict[str, Any]] | None = None
        self._length = -1
        self.ring = HashRing([])
        self.by_doc: dict[Any, list[int]] = {}

    def of(self, pool: list[dict[str, Any]]) -> _PoolIndex:
        if pool is not self._pool or len(pool) != self._length:
            self.ring = HashRing([segment_key(_segment(r, self.text_column)) for r in pool])
            self.by_doc = {}
            for i, r in enumerate(pool):
                self.by_doc.setdefault(r.get("doc_id"), []).append(i)
            self._pool, self._length = pool, len(pool)  # held: its id is not reused meanwhile
        return self


def segment_key(segment: dict[str, Any]) -> str:
    """What a prompt or a context shows of a segment (text and where it comes from)."""
    return stable_hash("in2-segment", segment)


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
    #: Column holding a segment's text.
    text_column: str = "text"
    #: Jinja prompt template of single-segment questions.
    single_template: str = "longcontext/prompts/qa_single.jinja"
    #: Jinja prompt template of multi-segment questions.
    multi_template: str = "longcontext/prompts/qa_multi.jinja"
    #: Sampling temperature.
    temperature: float = 0.7
    #: Longest question, in characters (schema maxLength).
    question_max_chars: int = Field(default=300, le=900)
    #: Longest answer, in characters (schema maxLength).
    answer_max_chars: int = Field(default=400, le=900)
    #: Most tokens per call (None: question_max_chars + answer_max_chars + 32).
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
    # 2: partners by hash rank (not the item seed), keyed on the partners, not the pool
    version = "2"
    uses_llm = True
    Config = QAConfig
    config: QAConfig
    template_fields = ("single_template", "multi_template")
    template_keys = {"single_template": "single", "multi_template": "multi"}

    def setup(self, ctx: RunContext) -> None:
        super().setup(ctx)
        self._index = _PoolIndex(self.config.text_column)

    def reads(self) -> list[str]:
        return sorted({self.config.text_column, "chunk_id", "doc_id", "chunk_index", "title"})

    def context_dependence(self, records: list[dict[str, Any]], ctx: RunContext
                           ) -> list[Any] | None:
        """Per needle, the partner segments its multi question shows (or why there are none);
        nothing for single questions, which see the needle alone."""
        if "multi" not in self.config.kinds:
            return [[] for _ in records]
        pool = _pool(self.config, ctx, self.config.pool)
        parts: list[Any] = []
        for record in records:
            needle = _segment(record, self.config.text_column)
            chosen = self.partners(needle, pool, ctx.seed)
            parts.append(chosen if isinstance(chosen, str) else [segment_key(s) for s in chosen])
        return parts

    @property
    def schema(self) -> dict[str, Any]:
        return qa_schema(self.config.question_max_chars, self.config.answer_max_chars)

    def partners(self, needle: dict[str, Any], pool: list[dict[str, Any]],
                 seed: int) -> list[dict[str, Any]] | str:
        """Other segments for a multi question (in document order), or why there are none.

        Same-document partners are the needle's other segments ranked by a hash of (run
        ``seed``, needle, segment): fixed per needle, and unmoved by other documents. Partners
        from other documents (``partners_from_other_docs``) walk the pool's ring from the
        needle. Both look at the needle's document and a window of the ring, not the pool.
        """
        cfg = self.config
        want = cfg.multi_segments - 1
        index = self._index.of(pool)
        same = [pool[i] for i in index.by_doc.get(needle["doc_id"], [])
                if pool[i].get("chunk_id") != needle["chunk_id"]]
        same.sort(key=lambda r: stable_hash("in2-partner", seed, needle["chunk_id"],
                                            segment_key(_segment(r, cfg.text_column))))
        chosen = same[:want]
        if len(chosen) < want and cfg.partners_from_other_docs:
            anchor = stable_hash("in2-partner-walk", seed, needle["chunk_id"])
            for i in index.ring.walk(anchor):
                if len(chosen) >= want:
                    break
                r = pool[i]
                if r.get("doc_id") != needle["doc_id"] and r.get("chunk_id") != needle["chunk_id"]:
                    chosen.append(r)
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
                # The run seed, not the item's: context_dependence chose these already.
                segments = self.partners(needle, _pool(cfg, ctx, cfg.pool), ctx.run.seed)
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
    #: Jinja prompt template that re-answers the question from the segment(s) alone.
    template: str = "longcontext/prompts/answer_check.jinja"
    #: Share of the generated answer's content words the segment-only answer must contain.
    threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    #: Most tokens of the segment-only answer.
    max_tokens: int = 128
    #: Sampling temperature of the segment-only answer.
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
    #: Column holding a segment's text.
    text_column: str = "text"
    #: Filler may come from the needle's own document (off: another of its segments might
    #: answer the question too).
    filler_same_doc: bool = False
    #: Text put between the segments of the context.
    separator: str = "\n\n"
    #: Drop contexts shorter than this share of the target (a corpus too small to fill it).
    min_fill: float = Field(default=0.0, ge=0.0, le=1.0)
    #: ``auto``: the run model's tokenizer when there is one; ``chars``: characters.
    unit: Literal["auto", "chars"] = "auto"


#: The filler walk ends after this many segments in a row that did not fit (the context is full
#: to within one segment by then; the old greedy scan went on through the whole pool).
MISFITS_IN_A_ROW = 16


@register_step
class IN2Context(MapStep):
    """Fill a long context with segments of the pool and insert the needle(s) at random
    depths."""

    type_name = "in2_context"
    # 2: filler by consistent hashing, keyed on the filler chosen, not the pool
    version = "2"
    Config = ContextConfig
    config: ContextConfig

    def setup(self, ctx: RunContext) -> None:
        self._counts: dict[str, int] = {}
        self._index = _PoolIndex(self.config.text_column)

    def extra_fingerprint(self, ctx: RunContext) -> Any:
        return {"unit": self._unit(ctx)}

    def _unit(self, ctx: RunContext) -> str:
        if self.config.unit == "auto" and ctx.llm is not None:
            return f"tokens:{ctx.llm.model_id}"
        return "chars"

    def reads(self) -> list[str]:
        return ["question", "answer", "kind", "segments", "doc_id", "title"]

    def _counter(self, run: RunContext) -> Callable[[str], int]:
        if self.config.unit == "chars" or run.llm is None:
            return len
        llm = run.llm

        def count(text: str) -> int:
            if text not in self._counts:  # segments repeat across items: tokenize each once
                self._counts[text] = llm.count_tokens(text)
            return self._counts[text]
        return count

    def fillers(self, record: dict[str, Any], pool: list[dict[str, Any]],
                count: Callable[[str], int], seed: int) -> tuple[list[int], int, bool]:
        """Pool indices of the filler, the usable segments looked at, and whether that was the
        whole pool.

        The walk starts at a hash of (run ``seed``, question, needles) on the ring of segment
        contents and takes every usable segment that still fits, until
        ``MISFITS_IN_A_ROW`` in a row do not (or the ring ends): about the fill plus a few
        segments looked at, not the pool.
        """
        cfg = self.config
        needles = record["segments"]
        needle_ids = {s["chunk_id"] for s in needles}
        needle_docs = {s["doc_id"] for s in needles}
        sep_cost = count(cfg.separator) if cfg.separator else 0
        budget = cfg.target_tokens - sum(count(s["text"]) + sep_cost for s in needles)
        anchor = stable_hash("in2-fill", seed, record.get("kind"), record.get("question"),
                             sorted(needle_ids))
        chosen: list[int] = []
        looked = misfits = 0
        for i in self._index.of(pool).ring.walk(anchor):
            candidate = pool[i]
            if candidate.get("chunk_id") in needle_ids or (
                    not cfg.filler_same_doc and candidate.get("doc_id") in needle_docs):
                continue
            looked += 1
            cost = count(str(candidate.get(cfg.text_column) or "")) + sep_cost
            if cost <= budget:
                chosen.append(i)
                budget -= cost
                misfits = 0
            else:
                misfits += 1
                if misfits >= MISFITS_IN_A_ROW:
                    return chosen, looked, False
        return chosen, looked, True

    def context_dependence(self, records: list[dict[str, Any]], ctx: RunContext
                           ) -> list[Any] | None:
        """Per item, the filler segments its context holds (and how many were looked at, which
        a drop reason names)."""
        pool = _pool(self.config, ctx, self.config.pool)
        count = self._counter(ctx)
        keys = self._index.of(pool).ring.keys
        parts: list[Any] = []
        for record in records:
            chosen, looked, whole = self.fillers(record, pool, count, ctx.seed)
            parts.append([[keys[i] for i in chosen], looked, whole])
        return parts

    def process(self, record: dict[str, Any], ctx: ItemContext) -> Output | ItemResult:
        cfg = self.config
        rng = random.Random(ctx.seed)
        pool = _pool(cfg, ctx, cfg.pool)
        needles = [dict(s) for s in record["segments"]]
        # The run seed, not the item's: context_dependence chose these already.
        chosen, looked, whole = self.fillers(record, pool, self._counter(ctx.run), ctx.run.seed)
        fillers = [_segment(pool[i], cfg.text_column) for i in chosen]
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
            seen = (f"the pool has {looked} usable filler segment(s)" if whole else
                    f"{looked} usable filler segment(s) looked at")
            return ItemResult.drop(
                f"context reached {length} of target {cfg.target_tokens} {unit} (< min_fill "
                f"{cfg.min_fill:g}): {seen}")
        columns = {
            "context": text, "question": record["question"], "answer": record["answer"],
            "kind": record["kind"], "needles": placed, "context_tokens": length,
            "length_unit": unit, "target_tokens": cfg.target_tokens,
            "target_reached": length >= 0.9 * cfg.target_tokens,
            "n_segments": len(pieces), "filler_ids": [f["chunk_id"] for f in fillers],
        }
        return Output(columns=columns, replace=True)
