"""Source2Synth's dataset curation (arXiv 2409.08239 §3.2) as synthloom steps.

* ``s2s_slice``: the dataset is split in two slices, by a stable hash of the entry (slice 0 is
  what the paper fine-tunes LLMSynth on; slice 1 is curated by it).
* ``s2s_filter``: the curator model answers each slice-1 entry k times (the paper's k = 3); the
  entry is kept when at least one answer is right (soft exact match with the gold answer, or -
  tabular - an SQL query whose executed result equals the entry's), else dropped.
* ``s2s_impute``: the entry's question is blanked and the curator writes it back from the rest
  (context + answer); the regenerated question replaces it (the original is kept).

No model is fine-tuned here: the curator is whichever model the step names (recipe ``models:``,
``--set filter.model=NAME``), by default the run's model; slice 0 passes unchanged and is
marked ``curated: false``, so it can train a curator elsewhere.
"""

from __future__ import annotations

import re
import string
from typing import Any, Literal

from pydantic import Field

from synthloom.core.context import ItemContext
from synthloom.core.fingerprint import stable_hash
from synthloom.core.records import ItemResult, Output
from synthloom.core.registry import register_step
from synthloom.core.steps import MapStep, StepConfig
from synthloom.methods.source2synth.tables import execute_many, table_text
from synthloom.prompting.templated import TemplatedStep, parsed_object
from synthloom.verify.answers import code_block
from synthloom.verify.sql import normalize_rows

#: The paper's filter: "if the answer is not correct in any of k = 3 tries".
PAPER_K = 3


def normalize(text: str) -> str:
    """SQuAD-style: lower case, no punctuation, no articles, single spaces."""
    text = "".join(c for c in str(text).lower() if c not in string.punctuation)
    return " ".join(w for w in text.split() if w not in ("a", "an", "the"))


def soft_match(prediction: str, gold: str) -> bool:
    """Soft exact match (the paper's soft-EM): the normalised gold occurs in the prediction."""
    gold_n, pred_n = normalize(gold), normalize(prediction)
    return bool(gold_n) and f" {gold_n} " in f" {pred_n} "


def render_context(record: dict[str, Any], column: str) -> str:
    """What the curator reads: the table (``table``), clue lists (``evidence``), or text."""
    if column == "table":
        return f"Table {record['table_name']}:\n" + table_text(list(record["columns"]),
                                                                record["rows"])
    value = record.get(column)
    if isinstance(value, list):
        return "\n".join(f"- {v.get('clue') or v.get('text') or v}" if isinstance(v, dict)
                         else f"- {v}" for v in value)
    return str(value or "")


class SliceConfig(StepConfig):
    #: Share of entries in slice 0 (the paper splits the generated data in two).
    slice0_share: float = Field(default=0.5, ge=0.0, le=1.0)
    #: Column whose value places an entry (stable across runs and executors).
    key: str = "question"


@register_step
class S2SSlice(MapStep):
    """``slice``: 0 or 1, from a stable hash of the entry's ``key`` column."""

    type_name = "s2s_slice"
    Config = SliceConfig
    config: SliceConfig

    def reads(self) -> list[str]:
        return [self.config.key]

    def process(self, record: dict[str, Any], ctx: ItemContext) -> dict[str, Any]:
        point = int(stable_hash("s2s-slice", str(record.get(self.config.key)))[:8], 16) / 16**8
        return {"slice": 0 if point < self.config.slice0_share else 1}


class _CurateConfig(StepConfig):
    template: str
    #: The column the curator reads (``table``: the table itself; a clue list; text).
    context_column: str = "evidence"
    #: Column with the entry's question.
    question: str = "question"
    #: Column with the entry's gold answer.
    answer: str = "answer"
    #: Sampling temperature of the curator.
    temperature: float = 0.7
    #: Most tokens of one curator reply.
    max_tokens: int = 256
    #: Curate slice-1 entries only (the paper); false curates every entry.
    slice_only: bool = True


def _passes(record: dict[str, Any], cfg: _CurateConfig) -> bool:
    return cfg.slice_only and record.get("slice") == 0


class FilterConfig(_CurateConfig):
    #: Default: curate_answer.jinja (mode answer) or curate_sql.jinja (mode sql).
    template: str | None = None  # type: ignore[assignment]
    #: Tries per entry; kept when any is right (the paper's k = 3).
    k: int = Field(default=PAPER_K, ge=1, le=32)
    #: answer: the curator's answer vs the gold (soft EM); sql: the curator's SQL, executed,
    #: vs the entry's result (the tabular variant answers through the SQL tool).
    mode: Literal["answer", "sql"] = "answer"
    #: Time limit of one curator query's execution (mode sql), in seconds.
    sql_timeout_s: float = 2.0


@register_step
class S2SFilter(TemplatedStep, MapStep):
    """Kept when one of k curator answers is right; ``filter_correct`` counts them."""

    type_name = "s2s_filter"
    Config = FilterConfig
    config: FilterConfig
    uses_llm = True
    cut_off_is_data = True  # a cut-off answer is a wrong one

    def template_name(self, field: str) -> str:
        return self.config.template or f"source2synth/prompts/curate_{self.config.mode}.jinja"

    def reads(self) -> list[str]:
        cfg = self.config
        extra = ["columns", "rows", "table_name"] if cfg.context_column == "table" or cfg.mode == "sql" \
            else []
        extra += ["result"] if cfg.mode == "sql" else []
        return sorted({cfg.context_column, cfg.question, cfg.answer, "slice", *extra} - {"table"})

    async def process(self, record: dict[str, Any], ctx: ItemContext) -> Output | ItemResult:
        cfg = self.config
        if _passes(record, cfg):
            return Output(columns={"curated": False})
        variables = {"context": render_context(record, cfg.context_column),
                     "question": record[cfg.question]}
        responses = await self.ask_n(ctx, variables, cfg.k)
        correct = await self._count_right([r.text for r in responses], record)
        if not correct:
            return ItemResult.drop(f"filter: not answered correctly in any of k={cfg.k} tries "
                                   f"(gold {str(record[cfg.answer])[:120]!r})")
        return self.output(responses[0], {"curated": True, "filter_correct": correct,
                                          "filter_k": cfg.k})

    async def _count_right(self, texts: list[str], record: dict[str, Any]) -> int:
        cfg = self.config
        if cfg.mode == "answer":
            return sum(soft_match(t, str(record[cfg.answer])) for t in texts)
        queries = [q for q in ((code_block(t, ("sql",)) or "").strip().rstrip(";")
                               for t in texts) if q]
        gold = [tuple(r) for r in record["result"]["rows"]]
        right = 0
        for result in await execute_many(record, queries, cfg.sql_timeout_s, 1000):
            if isinstance(result, str) or result.truncated:
                continue
            rows = [tuple(r) for r in result.rows]
            right += normalize_rows(rows, result.ordered) == normalize_rows(gold, result.ordered)
        return right


class ImputeConfig(_CurateConfig):
    #: Jinja prompt template that writes the blanked question back from context and answer.
    template: str = "source2synth/prompts/impute.jinja"
    #: Longest regenerated question, in characters (schema maxLength).
    question_max_chars: int = Field(default=400, ge=20, le=2000)


@register_step
class S2SImpute(TemplatedStep, MapStep):
    """The question blanked and regenerated from context + answer: ``question`` is the new
    one, ``question_original`` the old; dropped when the new one is empty or gives the answer
    away."""

    type_name = "s2s_impute"
    Config = ImputeConfig
    config: ImputeConfig
    uses_llm = True

    def reads(self) -> list[str]:
        cfg = self.config
        extra = ["columns", "rows", "table_name"] if cfg.context_column == "table" else []
        return sorted({cfg.context_column, cfg.question, cfg.answer, "slice", *extra} - {"table"})

    async def process(self, record: dict[str, Any], ctx: ItemContext) -> Output | ItemResult:
        cfg = self.config
        if _passes(record, cfg):
            return Output(columns={"imputed": False})
        schema = {"type": "object", "additionalProperties": False, "required": ["question"],
                  "properties": {"question": {"type": "string", "minLength": 5,
                                              "maxLength": cfg.question_max_chars}}}
        response = await self.ask(ctx, {"context": render_context(record, cfg.context_column),
                                        "answer": record[cfg.answer]}, schema=schema)
        question = " ".join(str(parsed_object(response).get("question", "")).split())
        if len(question.split()) < 3:
            return ItemResult.drop(f"impute: the regenerated question is too short ({question!r})")
        answer = str(record[cfg.answer])
        if len(normalize(answer)) > 2 and soft_match(question, answer):
            return ItemResult.drop(f"impute: the regenerated question gives its answer away "
                                   f"({question[:160]!r})")
        if not re.search(r"\w", question):
            return ItemResult.drop("impute: no words in the regenerated question")
        return self.output(response, {cfg.question: question,
                                      f"{cfg.question}_original": record[cfg.question],
                                      "imputed": True})
