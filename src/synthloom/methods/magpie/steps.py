"""The ``magpie_slots`` source and the ``magpie`` step (Xu et al. 2024, arXiv 2406.08464).

``magpie_slots`` yields ``count`` empty work items (Magpie needs no seed data: the model's
randomness is the only source of diversity; each item's sampling seed differs). ``magpie``
sends the pre-query template (from the model's own chat template, or a preset) as a *raw*
completion prompt, checks the query it gets back (``queries.query_problem``), and answers it
through the chat interface. Defaults follow the paper's code: queries at temperature 1.0 and
top-p 1.0, greedy responses, and for later turns the Magpie-MT system prompt.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pydantic import Field

from synthloom.core.context import ItemContext, RunContext
from synthloom.core.errors import RecipeError
from synthloom.core.records import ItemResult, Output
from synthloom.core.registry import register_step
from synthloom.core.steps import MapStep, SourceStep, StepConfig
from synthloom.llm.types import LLMRequest, LLMResponse, SamplingParams, Usage
from synthloom.methods.magpie.chat_templates import ChatTemplate, load_chat_template
from synthloom.methods.magpie.queries import query_problem

#: The system prompt Magpie-MT uses when it asks for follow-up queries (exp/gen_mt.py).
MT_SYSTEM_PROMPT = (
    "You are a helpful AI assistant. The user will engage in a multi-round conversation with "
    "you, asking initial questions and following up with additional related questions. Your "
    "goal is to provide thorough, relevant and insightful responses to help the user with "
    "their queries."
)


class MagpieSlotsConfig(StepConfig):
    #: Work items made (each becomes one sampled conversation).
    count: int = Field(default=100, ge=0)


@register_step
class MagpieSlots(SourceStep):
    """``count`` work items ``{index}``; ``--limit`` takes the first ones."""

    type_name = "magpie_slots"
    Config = MagpieSlotsConfig
    config: MagpieSlotsConfig

    def read(self, ctx: RunContext) -> Iterator[dict[str, Any]]:
        for index in range(self.config.count):
            yield {"index": index}


class MagpieConfig(StepConfig):
    #: "auto" (the model's own chat template: GGUF tokenizer.chat_template), a preset
    #: (chatml, llama3, gemma, mistral, phi3) or the path of a Jinja chat-template file.
    template: str = "auto"
    #: System prompt rendered before the pre-query prefix (and kept for the responses).
    system_prompt: str | None = None
    #: User turns per conversation (1: instruction/response pairs; >1: Magpie-MT).
    turns: int = Field(default=1, ge=1)
    #: System prompt of the follow-up query prompts (turn 2+); None: ``system_prompt``.
    mt_system_prompt: str | None = MT_SYSTEM_PROMPT
    #: Sampling temperature of the queries (the pre-query completion).
    temperature: float = 1.0
    #: Nucleus sampling (top_p) of the queries.
    top_p: float = 1.0
    #: Most tokens of one query.
    query_max_tokens: int = 256
    #: Sampling temperature of the responses.
    response_temperature: float = 0.0
    #: Nucleus sampling (top_p) of the responses.
    response_top_p: float = 1.0
    #: Most tokens of one response.
    max_tokens: int = 512
    #: Queries with fewer words are dropped.
    min_query_words: int = 3
    #: Drop queries that are neither a question nor an instruction (heuristic).
    require_request: bool = True


@register_step
class Magpie(MapStep):
    """One conversation per input item: query (raw prompt) → response (chat), ``turns`` times.

    Columns: ``instruction``, ``response`` (first turn), ``turns`` ([{role, content}] of the
    whole conversation), ``n_turns``, ``stopped_early`` (why a multi-turn conversation ended
    before ``turns``; None), ``pre_query_template`` (the template's name), ``system_prompt``,
    ``temperature`` (of the queries).
    """

    type_name = "magpie"
    uses_llm = True
    Config = MagpieConfig
    config: MagpieConfig

    def setup(self, ctx: RunContext) -> None:
        backend = getattr(ctx.llm, "backend", None)
        if backend is not None and not getattr(backend, "supports_raw_prompt", False):
            # Fail before the first call: a chat-only backend cannot continue a raw prefix.
            raise RecipeError(
                f"magpie needs a backend that accepts raw prompts (llamacpp, or openai:URL "
                f"with a /completions endpoint); the {backend.kind} backend does not")
        self._chat: ChatTemplate = load_chat_template(self.config.template, backend)
        self._stops = self._chat.stops()
        self._chat.pre_query([])  # a template that cannot render fails here, not per item

    def extra_fingerprint(self, ctx: RunContext) -> Any:
        return {"chat_template": self._chat.hash, "stops": self._stops}

    async def process(self, record: dict[str, Any], ctx: ItemContext) -> Output | ItemResult:
        cfg = self.config
        system = [{"role": "system", "content": cfg.system_prompt}] if cfg.system_prompt else []
        history: list[dict[str, str]] = []
        usage = Usage()
        stopped: str | None = None
        last: LLMResponse | None = None
        for turn in range(cfg.turns):
            query_system = system
            if turn > 0 and cfg.mt_system_prompt:
                query_system = [{"role": "system", "content": cfg.mt_system_prompt}]
            query = await self._query(query_system + history, ctx, seed=ctx.seed + 2 * turn)
            usage = usage + query.usage
            problem = query_problem(query.text, min_words=cfg.min_query_words,
                                    markers=self._stops, finish_reason=query.finish_reason,
                                    require_request=cfg.require_request)
            if problem is not None:
                if turn == 0:
                    return ItemResult.drop(problem)
                stopped = f"turn {turn + 1}: {problem}"
                break
            messages = [*system, *history, {"role": "user", "content": query.text.strip()}]
            params = SamplingParams(temperature=cfg.response_temperature, top_p=cfg.response_top_p,
                                    max_tokens=cfg.max_tokens, seed=ctx.seed + 2 * turn + 1)
            [answer] = await ctx.generate(LLMRequest(messages=messages, params=params,
                                                     tags={"step": self.name}))
            usage = usage + answer.usage
            if not answer.text.strip():
                if turn == 0:
                    return ItemResult.drop(f"empty response (finish_reason={answer.finish_reason})")
                stopped = f"turn {turn + 1}: empty response"
                break
            history += [{"role": "user", "content": query.text.strip()},
                        {"role": "assistant", "content": answer.text.strip()}]
            last = answer
        assert last is not None  # turn 1 either returned a drop or completed
        return Output(
            columns={
                "instruction": history[0]["content"],
                "response": history[1]["content"],
                "turns": history,
                "n_turns": len(history) // 2,
                "stopped_early": stopped,
                "pre_query_template": self._chat.name,
                "system_prompt": cfg.system_prompt,
                "temperature": cfg.temperature,
            },
            model=last.model, template_hash=self._chat.hash, usage=usage.to_json(),
            meta={"finish_reason": last.finish_reason},
        )

    async def _query(self, history: list[dict[str, str]], ctx: ItemContext,
                     seed: int) -> LLMResponse:
        cfg = self.config
        params = SamplingParams(temperature=cfg.temperature, top_p=cfg.top_p,
                                max_tokens=cfg.query_max_tokens, stop=list(self._stops),
                                seed=seed)
        [response] = await ctx.generate(LLMRequest(prompt=self._chat.pre_query(history),
                                                   params=params, tags={"step": self.name}))
        return response
