"""``webmining_extract`` and ``webmining_in_text``: MAmmoTH2's extraction step (WebInstruct,
arXiv 2405.03548) -- the LLM lists the question-answer pairs that already occur in a recalled
document (structured output: ``{"pairs": [{question, answer}]}``), and each pair must really be
in the text: a pair the model invented or rewrote beyond recognition is dropped with a reason
(its share of content words found in the text, and which are missing), and so is a "question"
that is really a title or heading (no '?', no question or task word first).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from synthloom.core.context import ItemContext
from synthloom.core.records import ItemResult, Output
from synthloom.core.registry import register_step
from synthloom.core.steps import ExpandStep, FilterStep, StepConfig
from synthloom.methods.common.corpus import split_usage, string_schema
from synthloom.methods.common.overlap import support
from synthloom.methods.docqa.pairs import usable_pairs
from synthloom.prompting.templated import TemplatedStep, parsed_object
from synthloom.quality.text import plain_text, plain_words


class ExtractConfig(StepConfig):
    #: Jinja prompt template of the extraction.
    template: str = "webmining/prompts/extract.jinja"
    #: Column with the document/chunk text.
    text_column: str = "text"
    #: At most this many pairs per document/chunk (the schema's maxItems).
    max_pairs: int = Field(default=3, ge=1, le=20)
    #: At least this many (recall already said there is Q-A content; 0 lets the model say none).
    min_pairs: int = Field(default=1, ge=0)
    #: Longest question, in characters (schema maxLength).
    question_max_chars: int = 300
    #: Longest answer, in characters (schema maxLength).
    answer_max_chars: int = 600
    #: Sampling temperature.
    temperature: float = 0.2
    #: Most tokens per call (None: sized from max_pairs and the two *_max_chars).
    max_tokens: int | None = None


@register_step
class WebminingExtract(TemplatedStep, ExpandStep):
    """One record per extracted pair: ``question``, ``answer``, ``pair_index``."""

    type_name = "webmining_extract"
    uses_llm = True
    Config = ExtractConfig
    config: ExtractConfig

    def reads(self) -> list[str]:
        return sorted({*(self.template().variables - {"text", "n"}), self.config.text_column})

    @property
    def schema(self) -> dict[str, Any]:
        cfg = self.config
        pair = {"question": string_schema(5, cfg.question_max_chars),
                "answer": string_schema(1, cfg.answer_max_chars)}
        return {"type": "object",
                "properties": {"pairs": {
                    "type": "array", "minItems": min(cfg.min_pairs, cfg.max_pairs),
                    "maxItems": cfg.max_pairs,
                    "items": {"type": "object", "properties": pair, "required": list(pair),
                              "additionalProperties": False}}},
                "required": ["pairs"], "additionalProperties": False}

    async def process(self, record: dict[str, Any], ctx: ItemContext) -> ItemResult | list[Output]:
        cfg = self.config
        text = record.get(cfg.text_column)
        if not isinstance(text, str) or not text.strip():
            return ItemResult.drop(f"no text in column {cfg.text_column!r}")
        max_tokens = cfg.max_tokens or \
            cfg.max_pairs * ((cfg.question_max_chars + cfg.answer_max_chars) // 3 + 16) + 16
        response = await self.ask(ctx, {**record, "text": text, "n": cfg.max_pairs},
                                  schema=self.schema, max_tokens=max_tokens)
        parsed = parsed_object(response)
        raw = parsed.get("pairs") if isinstance(parsed.get("pairs"), list) else []
        pairs, problems = usable_pairs(raw[: cfg.max_pairs])
        if not pairs:
            detail = f" ({'; '.join(problems)})" if problems else ""
            return ItemResult.drop(f"model extracted no usable Q-A pair{detail}")
        shares = split_usage(response.usage.to_json(), len(pairs))
        meta: dict[str, Any] = {"pairs_got": len(pairs), "finish_reason": response.finish_reason}
        if problems:
            meta["pairs_rejected"] = problems
        # Whitespace collapsed: a pair copied across the page's line breaks reads as one line.
        return [self.output(response, {"question": " ".join(p["question"].split()),
                                       "answer": " ".join(p["answer"].split()), "pair_index": i},
                            usage=shares[i], meta=meta)
                for i, p in enumerate(pairs)]


#: First words of questions and of exercise-style tasks ("Find ...", "Solve ...").
QUESTION_STARTS = frozenset([
    "what", "why", "how", "when", "where", "which", "who", "whom", "whose", "is", "are", "was",
    "were", "can", "could", "do", "does", "did", "should", "would", "will", "may", "must", "has",
    "have", "find", "solve", "calculate", "compute", "explain", "describe", "show", "prove",
    "determine", "write", "give", "list", "name", "evaluate", "simplify", "convert"])


def looks_like_question(text: str) -> bool:
    """Ends with '?' or starts with a question or task word -- not a page title or heading."""
    first = plain_words(text)[:1]
    return text.rstrip().endswith("?") or bool(first and first[0] in QUESTION_STARTS)


class InTextConfig(StepConfig):
    #: ``substring``: the normalised question/answer occurs verbatim in the normalised text;
    #: ``overlap``: or at least the threshold share of its content words occurs in it.
    match: Literal["overlap", "substring"] = "overlap"
    #: ``overlap``: share of the question's content words that must occur in the text.
    question_threshold: float = Field(default=0.8, ge=0.0, le=1.0)
    #: ``overlap``: share of the answer's content words that must occur in the text.
    answer_threshold: float = Field(default=0.8, ge=0.0, le=1.0)
    #: Column with the source text the pair is looked up in.
    text_column: str = "text"
    #: The question must read as one (a '?' or a question/task word first): headings and
    #: titles the model passes off as questions are dropped.
    require_question_form: bool = True


@register_step
class WebminingInText(FilterStep):
    """Drops extracted pairs that are not present in the document they were extracted from."""

    type_name = "webmining_in_text"
    Config = InTextConfig
    config: InTextConfig

    def reads(self) -> list[str]:
        return ["question", "answer", self.config.text_column]

    def process(self, record: dict[str, Any], ctx: ItemContext) -> str | None:
        cfg = self.config
        text = str(record.get(cfg.text_column) or "")
        if not text.strip():
            return f"no text in column {cfg.text_column!r} to look the pair up in"
        question = str(record.get("question") or "")
        if cfg.require_question_form and not looks_like_question(question):
            return (f"not a question: {question[:80]!r} has no '?' and does not start with a "
                    "question or task word")
        for part, threshold in (("question", cfg.question_threshold),
                                ("answer", cfg.answer_threshold)):
            reason = self.absent(part, str(record.get(part) or ""), text, threshold)
            if reason:
                return reason
        return None

    def absent(self, part: str, value: str, text: str, threshold: float) -> str | None:
        if f" {plain_text(value)} " in f" {plain_text(text)} ":
            return None
        if self.config.match == "substring":
            return f"invented {part}: {value[:80]!r} does not occur verbatim in the text"
        share, missing = support(value, text)
        if share >= threshold:
            return None
        return (f"invented {part}: only {share:.2f} of its content words occur in the text "
                f"(< {threshold:.2f}); missing: {', '.join(missing[:8])}")
