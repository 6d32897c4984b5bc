"""``docqa_pairs``: one LLM call per chunk asks for exactly ``pairs`` QA pairs (a JSON schema with
``minItems = maxItems = pairs``), optionally with reasoning and a chunk summary; each pair becomes
one record. How many pairs came back usable versus asked is kept in ``_meta`` (``pairs_asked``,
``pairs_got``); a chunk with none usable is a drop that says so.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from synthloom.core.context import ItemContext
from synthloom.core.records import ItemResult, Output
from synthloom.core.registry import register_step
from synthloom.core.steps import ExpandStep, StepConfig
from synthloom.prompting.templated import TemplatedStep, parsed_object
from synthloom.quality.text import plain_text, plain_words

DEFAULT_CAPS = {"question": 200, "answer": 400, "reasoning": 600, "summary": 600}
#: Characters per token assumed when sizing max_tokens from the schema's caps (low: safe).
CHARS_PER_TOKEN = 3
#: Template variables that come from the config, not from the record.
CONFIG_VARIABLES = frozenset({"n", "cot", "summary", "context"})


class PairsConfig(StepConfig):
    #: Jinja prompt template of the pairs (gets the chunk as ``text`` and ``n``).
    template: str = "docqa/prompts/qa_pairs.jinja"
    #: Exactly this many pairs are requested per chunk.
    pairs: int = Field(default=3, ge=1, le=20)
    #: Ask for reasoning before each answer (kept in column ``reasoning``).
    cot: bool = False
    #: Ask for a summary of the chunk too (column ``summary`` on each pair).
    summary: bool = False
    #: Column with the chunk text.
    text_column: str = "text"
    #: Sampling temperature.
    temperature: float = 0.7
    #: Nucleus sampling (top_p).
    top_p: float = 1.0
    #: Completion cap; default: enough for the longest output the schema allows, so a
    #: grammar-constrained reply is never cut off mid-JSON.
    max_tokens: int | None = None
    #: Length caps in the schema: a small model's runaway repetition ends at the cap.
    question_max_chars: int = 200
    #: Longest answer, in characters (schema maxLength).
    answer_max_chars: int = 400
    #: Longest reasoning, in characters (schema maxLength; with ``cot``).
    reasoning_max_chars: int = 600
    #: Longest summary, in characters (schema maxLength; with ``summary``).
    summary_max_chars: int = 600


def pairs_schema(n: int, cot: bool, summary: bool, caps: dict[str, int] | None = None
                 ) -> dict[str, Any]:
    caps = {**DEFAULT_CAPS, **(caps or {})}
    pair: dict[str, Any] = {"question": _string(5, caps["question"])}
    if cot:
        pair["reasoning"] = _string(1, caps["reasoning"])
    pair["answer"] = _string(1, caps["answer"])
    props: dict[str, Any] = {}
    if summary:
        props["summary"] = _string(1, caps["summary"])
    props["pairs"] = {
        "type": "array", "minItems": n, "maxItems": n,
        "items": {"type": "object", "properties": pair, "required": list(pair),
                  "additionalProperties": False},
    }
    return {"type": "object", "properties": props, "required": list(props),
            "additionalProperties": False}


def _string(min_length: int, max_length: int) -> dict[str, Any]:
    return {"type": "string", "minLength": min_length, "maxLength": max_length}


@register_step
class DocQAPairs(TemplatedStep, ExpandStep):
    type_name = "docqa_pairs"
    uses_llm = True
    Config = PairsConfig
    config: PairsConfig

    def reads(self) -> list[str]:
        names = (self.template().variables - CONFIG_VARIABLES) - {"text"}
        return sorted({*names, self.config.text_column})

    @property
    def schema(self) -> dict[str, Any]:
        cfg = self.config
        return pairs_schema(cfg.pairs, cfg.cot, cfg.summary, self._caps())

    def _caps(self) -> dict[str, int]:
        cfg = self.config
        return {"question": cfg.question_max_chars, "answer": cfg.answer_max_chars,
                "reasoning": cfg.reasoning_max_chars, "summary": cfg.summary_max_chars}

    def _max_tokens(self) -> int:
        cfg = self.config
        if cfg.max_tokens is not None:
            return cfg.max_tokens
        caps = self._caps()
        per_pair = caps["question"] + caps["answer"] + (caps["reasoning"] if cfg.cot else 0)
        chars = cfg.pairs * per_pair + (caps["summary"] if cfg.summary else 0)
        return chars // CHARS_PER_TOKEN + 16 * cfg.pairs + 32

    async def process(self, record: dict[str, Any], ctx: ItemContext) -> ItemResult | list[Output]:
        cfg = self.config
        variables = {**record, "text": record.get(cfg.text_column), "n": cfg.pairs,
                     "cot": cfg.cot, "summary": cfg.summary, "context": ctx.context}
        response = await self.ask(ctx, variables, schema=self.schema, top_p=cfg.top_p,
                                  max_tokens=self._max_tokens())
        parsed = parsed_object(response)
        raw_pairs = parsed.get("pairs") if isinstance(parsed.get("pairs"), list) else []
        usable, problems = usable_pairs(raw_pairs[: cfg.pairs])
        if not usable:
            detail = f" ({'; '.join(problems)})" if problems else ""
            return ItemResult.drop(f"model returned 0 usable of {cfg.pairs} requested QA "
                                   f"pairs{detail}")
        shares = _split_usage(response.usage.to_json(), len(usable))
        outputs = []
        for i, pair in enumerate(usable):
            columns = {"question": pair["question"], "answer": pair["answer"], "pair_index": i}
            if cfg.cot:
                columns["reasoning"] = pair.get("reasoning", "")
            if cfg.summary:
                columns["summary"] = str(parsed.get("summary", "")).strip()
            if response.reasoning:
                columns["answer_reasoning"] = response.reasoning
            meta = {"pairs_asked": cfg.pairs, "pairs_got": len(usable),
                    "finish_reason": response.finish_reason}
            if problems:
                meta["pairs_rejected"] = problems
            outputs.append(self.output(response, columns, usage=shares[i], meta=meta))
        return outputs


def usable_pairs(raw: list[Any]) -> tuple[list[dict[str, str]], list[str]]:
    """Pairs with a question and a different answer, the first of each repeated question; and
    why the others were not usable."""
    usable: list[dict[str, str]] = []
    problems: list[str] = []
    seen: set[str] = set()
    for i, pair in enumerate(raw):
        if not isinstance(pair, dict):
            problems.append(f"pair {i}: not an object")
            continue
        question = str(pair.get("question") or "").strip()
        answer = str(pair.get("answer") or "").strip()
        if not plain_words(question) or not plain_words(answer):
            problems.append(f"pair {i}: {'question' if not plain_words(question) else 'answer'} "
                            "has no words")
            continue
        key = plain_text(question)
        if plain_text(answer) == key:
            problems.append(f"pair {i}: the answer repeats the question")
            continue
        if key in seen:
            problems.append(f"pair {i}: repeats an earlier question of this chunk")
            continue
        seen.add(key)
        usable.append({**{k: str(v).strip() for k, v in pair.items()},
                       "question": question, "answer": answer})
    return usable, problems


def _split_usage(usage: dict[str, int], n: int) -> list[dict[str, int]]:
    """One call's tokens spread over its n records, so summing records gives the call's cost."""
    shares = []
    for i in range(n):
        shares.append({k: v // n + (1 if i < v % n else 0) for k, v in usage.items()})
    return shares
