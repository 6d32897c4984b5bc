"""OmniSQL's question and CoT synthesis (``question_synthesis/``, ``cot_synthesis/``).

* ``text2sql_question``: ``candidates`` questions per query in the task's style (one of nine),
  each with an explanation of the query, and external knowledge for the vague and
  metaphorical styles; with three or more usable candidates the most central one by embedding
  of "external knowledge + question" is kept (the authors' ``post_process_questions.py``), with
  two one is drawn, with one it is kept. Unusable candidates keep their reason in
  ``question_candidates``. Without the embeddings extra ``embedder: auto`` falls back to
  lexical hashing vectors, and ``question_selection`` says so.
* ``text2sql_cot``: ``samples`` step-by-step solutions, each given the question (external
  knowledge first) and the query as a reference it must not mention; each solution's last
  ```sql block is executed (``verify/sql.py``), the results vote, and an item needs at least
  ``min_valid`` (3) executable solutions; a solution of the majority result is kept, so the
  record's ``sql`` and ``result`` are that solution's, checked by execution.
"""

from __future__ import annotations

import asyncio
import random
import re
from typing import Any

from pydantic import Field

from synthloom.core.context import ItemContext, RunContext
from synthloom.core.records import ItemResult, Output
from synthloom.core.registry import register_step
from synthloom.core.steps import MapStep, StepConfig
from synthloom.llm.embeddings import EmbedderConfig, resolve_embedder
from synthloom.methods.text2sql.omnisql import last_sql_block, majority, most_central
from synthloom.methods.text2sql.sqlexec import DatabasePool, query_tables
from synthloom.methods.text2sql.sqlgen import _sum_usage, clip
from synthloom.methods.text2sql.steps import EK_STYLES, STYLE_DESCRIPTIONS, _pool_of
from synthloom.prompting.templated import TemplatedStep
from synthloom.verify.sql import SQLExecutionError, SQLRejected, SQLTimeout, normalize_rows

# --- question ------------------------------------------------------------------------------


class QuestionConfig(StepConfig):
    #: Jinja prompt template of the question (OmniSQL's question synthesis, in the task's style).
    template: str = "text2sql/prompts/question.jinja"
    #: The authors' README: several questions per query at temperature 0.8.
    temperature: float = 0.8
    #: Most tokens of one candidate.
    max_tokens: int = 700
    #: Questions sampled per query; with 3+ usable ones the most central by embedding is kept, with
    #: 2 one is drawn.
    candidates: int = Field(default=4, ge=1, le=16)
    #: Longest question, in characters (schema maxLength; single-turn styles).
    question_max_chars: int = Field(default=500, ge=20, le=2000)
    #: Multi-turn dialogues are longer.
    dialogue_max_chars: int = Field(default=1200, ge=20, le=2000)
    #: ``auto``: the local model when the embeddings extra is installed, else hashing.
    embedder: EmbedderConfig = EmbedderConfig(spec="auto")


_QUOTES_SQL = re.compile(r"\bselect\b.+\bfrom\b", re.I | re.S)


def candidate_problem(question: str, explanation: str) -> str | None:
    """Why a question candidate is unusable (the authors drop empty parses), else None."""
    if not explanation.strip():
        return "no explanation"
    if len(question.split()) < 3:
        return f"question too short: {question!r}"
    if _QUOTES_SQL.search(question):
        return "question quotes SQL instead of asking in words"
    return None


@register_step
class Text2SQLQuestion(TemplatedStep, MapStep):
    """Several stylised questions per query; the most central usable one is kept."""

    type_name = "text2sql_question"
    uses_llm = True
    Config = QuestionConfig
    config: QuestionConfig

    def reads(self) -> list[str]:
        return ["schema", "sql", "result", "style"]

    async def process(self, record: dict[str, Any], ctx: ItemContext) -> Output | ItemResult:
        cfg = self.config
        style = str(record["style"])
        ek = style in EK_STYLES
        cap = cfg.dialogue_max_chars if style == "multi-turn" else cfg.question_max_chars
        props: dict[str, Any] = {
            "explanation": {"type": "string", "minLength": 1, "maxLength": 1200},
            "question": {"type": "string", "minLength": 8, "maxLength": cap}}
        if ek:
            props["external_knowledge"] = {"type": "string", "maxLength": 400}
        schema = {"type": "object", "properties": props, "required": list(props),
                  "additionalProperties": False}
        variables = {**record, "style_description": STYLE_DESCRIPTIONS[style], "ek": ek,
                     "dialogue": style == "multi-turn"}
        responses = await self.ask_n(ctx, variables, cfg.candidates, schema=schema)
        candidates, usable = [], []
        for i, response in enumerate(responses):
            parsed = response.parsed if isinstance(response.parsed, dict) else {}
            question = str(parsed.get("question", "")).strip()
            knowledge = str(parsed.get("external_knowledge", "")).strip() if ek else ""
            problem = candidate_problem(question, str(parsed.get("explanation", "")))
            candidates.append({"question": question, "external_knowledge": knowledge,
                               "explanation": str(parsed.get("explanation", "")).strip(),
                               "reject_reason": problem})
            if problem is None:
                usable.append(i)
        if not usable:
            reasons = "; ".join(f"#{i}: {c['reject_reason']}" for i, c in enumerate(candidates))
            return ItemResult.drop(f"no usable question among {len(candidates)} "
                                   f"candidates ({reasons})")
        chosen, selection = await self._select(candidates, usable, ctx)
        for i in usable:
            if i != chosen:
                candidates[i]["reject_reason"] = f"not selected ({selection})"
        pick = candidates[chosen]
        output = self.output(responses[chosen], {
            "question": pick["question"], "external_knowledge": pick["external_knowledge"],
            "sql_explanation": pick["explanation"], "question_candidates": candidates,
            "question_selection": selection})
        output.usage = _sum_usage(r.usage.to_json() for r in responses)
        return output

    async def _select(self, candidates: list[dict[str, Any]], usable: list[int],
                      ctx: ItemContext) -> tuple[int, str]:
        if len(usable) == 1:
            return usable[0], "the only usable candidate"
        if len(usable) == 2:  # the authors draw one of two
            return random.Random(f"text2sql-q:{ctx.seed}").choice(usable), \
                "drawn from two usable candidates"
        texts = [f"{candidates[i]['external_knowledge']} {candidates[i]['question']}".strip()
                 for i in usable]
        embedder = resolve_embedder(self.config.embedder.model_copy(update={"cache": False}),
                                    ctx.run.run_dir)
        try:
            vectors = await embedder.embed(texts)
        finally:
            await embedder.aclose()
        how = ("lexical hashing vectors (embeddings extra absent: shared words, not meaning)"
               if embedder.model_id.startswith("hashing") else embedder.model_id)
        return usable[most_central(vectors)], f"most central of {len(usable)} by {how}"


# --- chain of thought ----------------------------------------------------------------------


class CotConfig(StepConfig):
    #: Jinja prompt template of one step-by-step solution.
    template: str = "text2sql/prompts/cot.jinja"
    #: The authors' README: several CoT solutions per item at temperature 0.8.
    temperature: float = 0.8
    #: Most tokens of one solution.
    max_tokens: int = 1200
    #: CoT solutions sampled per item; their executed results vote.
    samples: int = Field(default=5, ge=1, le=32)
    #: The authors drop items with fewer than three executable solutions.
    min_valid: int = Field(default=3, ge=1)
    #: Time limit of one solution's query, in seconds.
    timeout_s: float = 2.0
    #: A solution returning more rows than this is invalid (out of the vote).
    max_rows: int = Field(default=1000, ge=1)
    #: Rows kept in the record's ``result`` (the first ones).
    result_rows: int = Field(default=10, ge=1)
    #: Drop items whose voted result differs from the reference query's (the authors keep
    #: them: the vote, not the reference, decides).
    require_reference_agreement: bool = False


@register_step
class Text2SQLCot(TemplatedStep, MapStep):
    """Sampled CoT solutions, executed; majority vote on results; a majority one is kept."""

    type_name = "text2sql_cot"
    uses_llm = True
    Config = CotConfig
    config: CotConfig

    def setup(self, ctx: RunContext) -> None:
        super().setup(ctx)
        self._pool: DatabasePool | None = None

    def reads(self) -> list[str]:
        return ["database", "schema", "question", "external_knowledge", "sql", "result"]

    async def process(self, record: dict[str, Any], ctx: ItemContext) -> Output | ItemResult:
        cfg = self.config
        knowledge = str(record.get("external_knowledge") or "").strip()
        question = f"{knowledge}\n{record['question']}" if knowledge else str(record["question"])
        responses = await self.ask_n(ctx, {"schema": record["schema"], "question": question,
                                           "sql": record["sql"]}, cfg.samples)
        database = str(record["database"])
        votes: list[dict[str, Any]] = []
        keys: list[Any] = []
        results: list[dict[str, Any] | None] = []
        for response in responses:
            key, status, sql, result = await self._run(response.text, database)
            votes.append({"sql": sql, "status": status})
            keys.append(key)
            results.append(result)
        valid = sum(k is not None for k in keys)
        if valid < cfg.min_valid:
            why = "; ".join(f"#{i}: {v['status']}" for i, v in enumerate(votes))
            return ItemResult.drop(f"only {valid} of {len(votes)} CoT solutions executed "
                                   f"(need {cfg.min_valid}): {why}")
        best, winners = majority(keys)  # type: ignore[misc]
        # The reference runs again here: its stored result holds only the first rows.
        reference_key, *_ = await self._run(f"```sql\n{record['sql']}\n```", database)
        agrees = reference_key == best
        if cfg.require_reference_agreement and not agrees:
            return ItemResult.drop(f"voted result ({len(winners)} of {valid} solutions) "
                                   "differs from the reference query's result")
        chosen = random.Random(f"text2sql-cot:{ctx.seed}").choice(winners)
        for i, v in enumerate(votes):
            v["votes"] = len(winners) if i in winners else sum(k == keys[i] for k in keys)
            if keys[i] is not None and i not in winners:
                v["status"] = "outvoted: a minority result"
            elif i in winners and i != chosen:
                v["status"] = "majority, not chosen"
        votes[chosen]["status"] = "kept"
        output = self.output(responses[chosen], {
            "cot": responses[chosen].text.strip(), "sql": votes[chosen]["sql"],
            "result": results[chosen], "reference_sql": record["sql"],
            "cot_votes": votes, "cot_valid": valid, "cot_majority": len(winners),
            "agrees_with_reference": agrees})
        output.usage = _sum_usage(r.usage.to_json() for r in responses)
        return output

    async def _run(self, text: str, database: str
                   ) -> tuple[Any, str, str | None, dict[str, Any] | None]:
        """(vote key, status, sql, result json) of one solution; key None when invalid."""
        cfg = self.config
        sql = last_sql_block(text)
        if sql is None:
            return None, "no ```sql block", None, None
        try:
            raw, result = await asyncio.to_thread(
                _pool_of(self).query_result, database, sql, timeout_s=cfg.timeout_s,
                max_rows=cfg.max_rows, result_rows=cfg.result_rows)
        except SQLRejected as exc:
            return None, f"SQL rejected: {exc} [{clip(sql)}]", sql, None
        except SQLTimeout as exc:
            return None, f"SQL timed out: {exc} [{clip(sql)}]", sql, None
        except SQLExecutionError as exc:
            return None, f"SQL failed: {exc} [{clip(sql)}]", sql, None
        if raw.truncated:
            return None, f"more than {cfg.max_rows} rows [{clip(sql)}]", sql, None
        # The authors vote on frozenset(rows): a set of rows, order and repeats ignored;
        # floats are rounded here so 0.1 + 0.2 and 0.3 vote together.
        key = frozenset(normalize_rows(list(raw.rows), ordered=False))
        return key, "valid", sql, result


__all__ = ["Text2SQLCot", "Text2SQLQuestion", "query_tables"]
