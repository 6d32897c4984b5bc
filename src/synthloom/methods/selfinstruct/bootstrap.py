"""``self_instruct_bootstrap``: the Self-Instruct task pool grows over rounds (a global step).

The pool starts as the seed tasks (this step's whole input). Each round sends
``prompts_per_round`` prompts; each prompt shows ``num_prompt_instructions`` (8) in-context
tasks - ``num_machine_instructions`` (2) generated ones when the pool has them, the rest human
seeds - as a numbered list, and the model continues the list. Every new instruction is checked
in order: the paper's heuristics, then ROUGE-L novelty against every instruction already in the
pool (seeds and kept generations, including earlier ones of the same round); only a novel one
joins the pool, so later prompts sample from it. Rounds stop at ``rounds`` or once ``target``
generated instructions are kept.

Why a global step: the pool is shared state that every prompt reads and grows. Determinism and
replay: the in-context sample of prompt ``p`` of round ``r`` comes from a generator seeded by
(run seed, r, p) and the pool, and the pool depends only on earlier (cached) completions, so a
rerun sends the same requests and the response cache answers them all (zero calls). Raising
``rounds`` reuses the earlier rounds' calls.

Every candidate becomes an output (with ``reject_reason`` None or why it was rejected;
``drop_rejected`` turns the marks into drops). A candidate's record hangs under the first human
seed of its prompt (its "anchor"; the other seeds are extra parents), and that seed's result is
charged the prompt's LLM calls and tokens, so per-step accounting closes. A seed that anchors no
prompt is dropped with a reason saying it served as an example/reference only.
"""

from __future__ import annotations

import asyncio
import random
import re
from dataclasses import dataclass, field
from typing import Any

from pydantic import Field

from synthloom.core.context import ItemContext, RunContext
from synthloom.core.errors import SynthloomError
from synthloom.core.fingerprint import stable_hash
from synthloom.core.records import ItemResult, Output, rid
from synthloom.core.registry import register_step
from synthloom.core.steps import GlobalStep, StepConfig
from synthloom.llm.types import LLMResponse
from synthloom.methods.selfinstruct.filters import (
    MAX_WORDS,
    MIN_WORDS,
    clean_instruction,
    instruction_problem,
)
from synthloom.methods.selfinstruct.rouge import RougePool
from synthloom.prompting.templated import TemplatedStep

_ITEM_RE = re.compile(r"(?:^|\n)\s*\d+\s?[.)](?:\s+|$)")
_LEADING_NUMBER_RE = re.compile(r"^(?:\s*\d+\s?[.)](?:\s+|$))+")


class BootstrapConfig(StepConfig):
    #: Jinja prompt template of the numbered task list.
    template: str = "selfinstruct/prompts/instructions.jinja"
    #: Column with the seed task's instruction, and its id (for ``examples``).
    column: str = "instruction"
    #: Column with the seed task's id (missing: one made from the record).
    id_column: str = "id"
    #: Bootstrap rounds; each round's prompts see the instructions kept so far.
    rounds: int = Field(default=2, ge=1)
    #: Prompts (calls) per round, each with its own sample of in-context tasks.
    prompts_per_round: int = Field(default=4, ge=1)
    #: Stop after the round in which this many generated instructions were kept.
    target: int | None = Field(default=None, ge=1)
    #: In-context tasks per prompt (paper: 8), of which generated ones when available (2).
    num_prompt_instructions: int = Field(default=8, ge=1)
    #: Of the in-context tasks, how many are generated ones when available (paper: 2).
    num_machine_instructions: int = Field(default=2, ge=0)
    #: Drop a candidate whose ROUGE-L F1 with a pool instruction is above this (the authors'
    #: bootstrap_instructions.py: ``max(rouge_scores) > 0.7``; exactly 0.7 is kept).
    rouge_threshold: float = Field(default=0.7, gt=0, le=1)
    #: Candidates with fewer words are dropped (the authors' code: 4).
    min_words: int = MIN_WORDS
    #: Candidates with more words are dropped (the authors' code: 150).
    max_words: int = MAX_WORDS
    #: Paper: temperature 0.7, top_p 0.5, presence_penalty 2 (bootstrap_instructions.py);
    #: the list stops before a 16th item.
    temperature: float = 0.7
    #: Nucleus sampling (paper: 0.5).
    top_p: float = 0.5
    #: Presence penalty (paper: 2).
    presence_penalty: float = 2.0
    #: Most tokens of one list.
    max_tokens: int = 512
    #: Stop sequences (default: before a 16th item; None: none).
    stop: list[str] | None = Field(default_factory=lambda: ["\n16", "16.", "16 ."])
    #: Send the numbered list as a raw completion prompt (base models) instead of chat.
    raw_prompt: bool = False


@dataclass
class _Task:
    task_id: str
    instruction: str
    record_index: int | None  # seed: its input index; generated: None


@dataclass
class _Charge:
    llm_calls: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def add(self, ictx: ItemContext) -> None:
        self.llm_calls += ictx.llm_calls
        self.cache_hits += ictx.cache_hits
        self.prompt_tokens += ictx.prompt_tokens
        self.completion_tokens += ictx.completion_tokens


@dataclass
class _Prompt:
    round: int
    index: int
    seed: int
    examples: list[_Task]
    anchor: int  # input index of the seed whose record carries this prompt's candidates
    response: LLMResponse | None = None
    error: BaseException | None = None
    ictx: ItemContext | None = None
    outputs: list[Output] = field(default_factory=list)


def parse_instructions(text: str, cut_off: bool) -> list[tuple[str, str | None]]:
    """The numbered items of a completion that continues the list; each with None, or why
    it is unusable before any filter (a cut-off last item)."""
    text = text.strip()
    if not text:
        return []
    pieces = [p for p in _ITEM_RE.split("\n" + text) if p.strip()]
    # A chat model may repeat the number it was given ("9. 9. Task"): strip every leading one.
    pieces = [_LEADING_NUMBER_RE.sub("", p) for p in pieces]
    items: list[tuple[str, str | None]] = [(clean_instruction(p), None) for p in pieces
                                           if p.strip()]
    if cut_off and items:
        last, _ = items[-1]
        items[-1] = (last, "cut off at max_tokens (last item of the completion)")
    return items


def _split_usage(usage: dict[str, int], n: int) -> list[dict[str, int]]:
    """One call's tokens over its n candidates, so summing records gives the call's cost."""
    return [{k: v // n + (1 if i < v % n else 0) for k, v in usage.items()} for i in range(n)]


@register_step
class SelfInstructBootstrap(TemplatedStep, GlobalStep):
    type_name = "self_instruct_bootstrap"
    uses_llm = True
    Config = BootstrapConfig
    config: BootstrapConfig

    def reads(self) -> list[str]:
        return [self.config.column, self.config.id_column]

    # --- the loop ------------------------------------------------------------------------------

    async def process_all(self, records: list[dict[str, Any]],
                          ctx: RunContext) -> list[ItemResult]:
        cfg = self.config
        results: list[ItemResult | None] = [None] * len(records)
        charges = [_Charge() for _ in records]
        anchored: dict[int, list[Output]] = {}
        failures: dict[int, str] = {}
        pool = RougePool()
        seeds: list[_Task] = []
        pool_ids: list[str] = []
        for i, record in enumerate(records):
            text = record.get(cfg.column)
            if not isinstance(text, str) or not text.strip():
                results[i] = ItemResult.drop(f"seed has no {cfg.column!r} text")
                continue
            task_id = str(record.get(cfg.id_column) or f"seed-{rid(record)[:12]}")
            # The prompt shows instructions on one line, without a trailing colon (as the code).
            seeds.append(_Task(task_id, re.sub(r"\s+", " ", text).strip().rstrip(":"), i))
            pool.add(text)
            pool_ids.append(task_id)
        machine: list[_Task] = []
        if seeds:
            for round_no in range(1, cfg.rounds + 1):
                if cfg.target is not None and len(machine) >= cfg.target:
                    break
                prompts = [self._sample(ctx, round_no, p, seeds, machine)
                           for p in range(cfg.prompts_per_round)]
                await asyncio.gather(*(self._call(ctx, p) for p in prompts))
                for prompt in prompts:  # in prompt order: the pool grows deterministically
                    charges[prompt.anchor].add(prompt.ictx)  # type: ignore[arg-type]
                    if prompt.error is not None:
                        failures.setdefault(prompt.anchor, (
                            f"round {prompt.round} prompt {prompt.index}: "
                            f"{type(prompt.error).__name__}: {prompt.error}"))
                        continue
                    self._judge(prompt, pool, pool_ids, machine, records)
                    anchored.setdefault(prompt.anchor, []).extend(prompt.outputs)
        for i in range(len(records)):
            if results[i] is not None:
                continue
            c = charges[i]
            counts = {"llm_calls": c.llm_calls, "cache_hits": c.cache_hits,
                      "prompt_tokens": c.prompt_tokens, "completion_tokens": c.completion_tokens}
            if i in failures:
                # Not cached (a failure): the rerun retries; finished calls replay from the cache.
                result = ItemResult(error_class="LLMCallFailed", error_message=(
                    f"{failures[i]}; {len(anchored.get(i, []))} candidate(s) of other prompts "
                    "anchored on this seed are withheld until a rerun"))
            elif anchored.get(i):
                result = ItemResult(outputs=anchored[i])
            else:
                result = ItemResult.drop(
                    "seed task: in the pool as an in-context example and ROUGE-L reference; "
                    "no prompt was anchored on it")
            for key, value in counts.items():
                setattr(result, key, value)
            results[i] = result
        return results  # type: ignore[return-value]

    def _sample(self, ctx: RunContext, round_no: int, index: int, seeds: list[_Task],
                machine: list[_Task]) -> _Prompt:
        cfg = self.config
        # Seeded by (run seed, round, prompt) only: config changes elsewhere keep the samples.
        seed = int(stable_hash("self-instruct", ctx.seed, round_no, index)[:8], 16) & 0x7FFFFFFF
        rng = random.Random(seed)
        picked = rng.sample(machine, min(cfg.num_machine_instructions, len(machine)))
        humans = rng.sample(seeds, min(cfg.num_prompt_instructions - len(picked), len(seeds)))
        examples = picked + humans
        rng.shuffle(examples)
        anchor = humans[0].record_index if humans else seeds[0].record_index
        return _Prompt(round=round_no, index=index, seed=seed, examples=examples,
                       anchor=anchor)  # type: ignore[arg-type]

    async def _call(self, ctx: RunContext, prompt: _Prompt) -> None:
        cfg = self.config
        prompt.ictx = ItemContext(run=ctx, item_key=f"self-instruct:{prompt.round}:{prompt.index}",
                                  seed=prompt.seed)
        # The item context's seed is the prompt's seed.
        request = self.request(prompt.ictx, {"tasks": [t.instruction for t in prompt.examples]},
                               raw_prompt=cfg.raw_prompt, top_p=cfg.top_p, stop=cfg.stop,
                               presence_penalty=cfg.presence_penalty, tags={"round": prompt.round, "prompt": prompt.index})
        try:
            [prompt.response] = await prompt.ictx.generate(request)
        except SynthloomError:
            raise  # budget spent / backend gone: the run stops
        except Exception as exc:  # noqa: BLE001 - one prompt's failure is data
            prompt.error = exc

    def _judge(self, prompt: _Prompt, pool: RougePool, pool_ids: list[str],
               machine: list[_Task], records: list[dict[str, Any]]) -> None:
        """Filter the prompt's candidates in order; novel ones join the pool at once."""
        cfg = self.config
        response = prompt.response
        assert response is not None
        items = parse_instructions(response.text, response.finish_reason == "length")
        examples = [t.task_id for t in prompt.examples]
        anchor_id = rid(records[prompt.anchor])
        extra_parents = sorted({rid(records[t.record_index]) for t in prompt.examples
                                if t.record_index is not None} - {anchor_id})
        if not items:
            items = [("", f"round {prompt.round} prompt {prompt.index}: the completion held no "
                          f"instruction (finish_reason={response.finish_reason})")]
        shares = _split_usage(response.usage.to_json(), len(items))
        for k, (instruction, problem) in enumerate(items):
            task_id = f"si-r{prompt.round}-p{prompt.index}-{k}"
            match = pool.best(instruction) if instruction else None
            reason = problem or instruction_problem(instruction, cfg.min_words, cfg.max_words)
            if reason is None and match is not None and match.score > cfg.rouge_threshold:
                shown = match.text if len(match.text) <= 80 else match.text[:77] + "..."
                reason = f"rouge-l {match.score:.2f} vs {shown!r}"
            if reason is None:
                pool.add(instruction)
                pool_ids.append(task_id)
                machine.append(_Task(task_id, instruction, None))
            rouge_max = None
            if match is not None:  # against None: no pool instruction shares a word with it
                found = match.index >= 0
                rouge_max = {"score": round(match.score, 4),
                             "against": match.text if found else None,
                             "against_id": pool_ids[match.index] if found else None}
            prompt.outputs.append(self.output(
                response, {"task_id": task_id, "instruction": instruction,
                           "round": prompt.round, "prompt_index": prompt.index,
                           "examples": examples, "rouge_max": rouge_max,
                           "reject_reason": reason},
                replace=True, extra_parents=extra_parents, usage=shares[k], sample_index=k))
