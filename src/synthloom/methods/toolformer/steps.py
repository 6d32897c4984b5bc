"""Toolformer's data pipeline (Schick et al. 2023, arXiv 2302.04761) as synthloom steps.

* ``toolformer_sample``: per tool, the paper's annotation prompt P(x) followed by the text x
  is scored once with echoed logprobs; a position i is a candidate when the model's
  probability of opening a call there ("[" among the token's top alternatives) is at least
  τ_s; the best ``positions`` (k) are kept and ``calls_per_position`` (m) calls are sampled
  from ``P(x) x_1..x_(i-1) [Tool(``. Calendar calls have no input: one per position.
* ``toolformer_execute``: runs each call (calculator, calendar of the text's date, BM25
  search over the user's corpus, the text's own document left out); a call that cannot run
  is rejected at the ``execution`` stage.
* ``toolformer_filter``: the loss of the following tokens from the step's model's prompt
  logprobs with the call and its result inserted (L+), with the call alone and with no call
  (L- = the smaller); kept when L- - L+ >= τ_f (``losses.py``). The text with the kept calls
  inserted is ``text_with_calls``; every loss and τ are in the record.

Every candidate call stays visible: ``rejected_calls`` lists the ones a stage turned down,
with the stage; a text left with no kept call is marked ``reject_reason`` (stage and why)
and the recipe's final ``drop_rejected`` counts the drop (``dropped.jsonl``).
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from synthloom.core.context import ItemContext
from synthloom.core.fingerprint import stable_hash
from synthloom.core.records import META, ItemResult, Output
from synthloom.core.registry import register_step
from synthloom.core.steps import MapStep, StepConfig, non_empty_subset
from synthloom.llm.types import LLMRequest, LLMResponse, SamplingParams
from synthloom.methods.toolformer.apis import (
    TOOL_NAMES,
    TOOLS,
    ApiError,
    calculator,
    calendar,
    call_text,
    parse_argument,
)
from synthloom.methods.toolformer.losses import (
    api_probability,
    continuation_logprobs,
    decide,
    weighted_loss,
    weights,
    window,
)
from synthloom.prompting.templated import TemplatedStep
from synthloom.sources.retrieval import Bm25Index, load_or_build_index


def rejected(record: dict[str, Any]) -> bool:
    return bool(record.get("reject_reason"))


def reject_columns(stage: str, why: str) -> dict[str, Any]:
    return {"reject_reason": f"{stage}: {why}", "reject_stage": stage}


def echo_request(prompt: str, ctx: ItemContext, step: str, top: int = 0) -> LLMRequest:
    """Logprobs of ``prompt``'s own tokens (one token generated, greedy: the answer is not
    used, and a fixed request is cached once)."""
    return LLMRequest(prompt=prompt, params=SamplingParams(temperature=0.0, max_tokens=1,
                                                           seed=ctx.seed),
                      logprobs=top, echo=True, tags={"step": step})


def token_spans(tokens: list[dict[str, Any]], prompt: str) -> list[tuple[int, int, dict[str, Any]]]:
    """(start, end, token) of the echoed tokens in ``prompt``'s characters (tokens after the
    prompt, the generated one, left out); aligned like ``continuation_logprobs``."""
    joined = "".join(str(t.get("token") or "") for t in tokens)
    shift = 0 if joined.startswith(prompt) else max(0, joined.find(prompt[:32]))
    out, end = [], -shift
    for token in tokens:
        begin = end
        end += len(str(token.get("token") or ""))
        if begin >= len(prompt):
            break
        out.append((begin, end, token))
    return out


def usage_of(responses: list[LLMResponse]) -> dict[str, int]:
    return {"prompt_tokens": sum(r.usage.prompt_tokens for r in responses),
            "completion_tokens": sum(r.usage.completion_tokens for r in responses)}


# --- sampling positions and calls ------------------------------------------------------------


class SampleConfig(StepConfig):
    #: The text column (each record is one text x).
    column: str = "text"
    #: Tools whose calls are sampled (calculator, calendar, search).
    tools: list[str] = Field(default_factory=lambda: list(TOOLS))
    #: The calculator's few-shot prompt P(x) (a Jinja template).
    calculator_template: str = "toolformer/prompts/calculator.jinja"
    #: The calendar's few-shot prompt P(x) (a Jinja template).
    calendar_template: str = "toolformer/prompts/calendar.jinja"
    #: The search API's few-shot prompt P(x) (a Jinja template).
    search_template: str = "toolformer/prompts/search.jinja"
    #: Alternatives per token read for p("[") (a call-opening token outside them counts 0).
    top_logprobs: int = Field(default=10, ge=1, le=20)
    #: τ_s: least p(<API>) at a position (paper: 0.05).
    tau_s: float = Field(default=0.05, ge=0.0, le=1.0)
    #: k: positions kept per text and tool, most probable first (paper: 5).
    positions: int = Field(default=5, ge=1)
    #: m: calls sampled per position (paper: 5); calendar calls take no input: one.
    calls_per_position: int = Field(default=5, ge=1)
    #: Sampling temperature of the call arguments.
    temperature: float = 0.7
    #: Most tokens of one sampled argument (it stops at ')', ']' or a newline).
    max_tokens: int = Field(default=24, ge=1)

    @field_validator("tools")
    @classmethod
    def _tools(cls, value: list[str]) -> list[str]:
        return non_empty_subset("tools", value, list(TOOLS))


@register_step
class ToolformerSample(TemplatedStep, MapStep):
    """Candidate positions (p(<API>) >= τ_s, best k) and m sampled calls at each:
    ``api_candidates`` ({tool, position, p_api, argument}), ``rejected_calls`` (empty
    samples, stage ``sample``)."""

    type_name = "toolformer_sample"
    uses_llm = True
    template_fields = ("calculator_template", "calendar_template", "search_template")
    Config = SampleConfig
    config: SampleConfig

    def active_template_fields(self) -> tuple[str, ...]:
        return tuple(f"{tool}_template" for tool in self.config.tools)

    def reads(self) -> list[str]:
        return [self.config.column]

    def positions(self, tool: str, text: str, response: LLMResponse, prefix: str
                  ) -> list[tuple[int, float]]:
        """(character position in ``text``, p(<API>)) of the best k positions >= τ_s."""
        cfg = self.config
        found = []
        for begin, _, token in token_spans(response.logprobs or [], prefix + text):
            position = begin - len(prefix)
            if position <= 0:  # the call needs some text before it
                continue
            p = api_probability(token.get("top"))
            if p >= cfg.tau_s and p > 0:
                found.append((position, round(p, 4)))
        found.sort(key=lambda pair: (-pair[1], pair[0]))
        return found[: cfg.positions]

    async def process(self, record: dict[str, Any], ctx: ItemContext) -> Output | ItemResult:
        cfg = self.config
        text = record.get(cfg.column)
        if not isinstance(text, str) or not text.strip():
            return ItemResult.drop(f"column {cfg.column!r} has no text")
        prefixes = {tool: self.template(f"{tool}_template").render_text({"text": text}) + " "
                    for tool in cfg.tools}
        scored = await asyncio.gather(*(
            ctx.generate(echo_request(prefixes[t] + text, ctx, self.name, cfg.top_logprobs))
            for t in cfg.tools))
        responses = [r for group in scored for r in group]
        candidates: list[dict[str, Any]] = []
        rejects: list[dict[str, Any]] = []
        best: dict[str, float] = {}
        jobs = []
        for tool, [response] in zip(cfg.tools, scored, strict=True):
            found = self.positions(tool, text, response, prefixes[tool])
            best[tool] = found[0][1] if found else 0.0
            for position, p in found:
                if tool == "calendar":  # no input to sample
                    candidates.append({"tool": tool, "position": position, "p_api": p,
                                       "argument": ""})
                    continue
                prompt = f"{prefixes[tool]}{text[:position]} [{TOOL_NAMES[tool]}("
                request = LLMRequest(prompt=prompt, n=cfg.calls_per_position, params=SamplingParams(
                    temperature=cfg.temperature, max_tokens=cfg.max_tokens,
                    stop=[")", "]", "\n"], seed=ctx.seed), tags={"step": self.name})
                jobs.append((tool, position, p, request))
        sampled = await asyncio.gather(*(ctx.generate(j[3]) for j in jobs))
        for (tool, position, p, _), samples in zip(jobs, sampled, strict=True):
            responses.extend(samples)
            seen = set()
            for sample in samples:
                argument = parse_argument(tool, sample.text)
                entry = {"tool": tool, "position": position, "p_api": p, "argument": argument}
                if not argument:
                    rejects.append({**entry, "stage": "sample", "reason": "empty call"})
                elif argument not in seen:
                    seen.add(argument)
                    candidates.append(entry)
        columns: dict[str, Any] = {"api_candidates": candidates, "rejected_calls": rejects,
                                   "api_best_p": best, "reject_reason": None,
                                   "reject_stage": None}
        if not candidates:
            columns.update(reject_columns(
                "sample", f"no position with p(<API>) >= tau_s={cfg.tau_s} and a call "
                          f"(best p per tool: {best})"))
        return Output(columns=columns, model=responses[0].model if responses else None,
                      usage=usage_of(responses), meta={"tau_s": cfg.tau_s})


# --- executing the calls ---------------------------------------------------------------------


class ExecuteConfig(StepConfig):
    #: Node (in ``context:``) whose records the search API searches (BM25).
    corpus: str | None = None
    #: Corpus column holding the passage text.
    text_column: str = "text"
    #: The record column with the text's date (ISO) for the calendar ...
    date_column: str = "date"
    #: ... or this date for every text without one (None: calendar calls fail without a date).
    today: str | None = None
    #: A search result is the best passage cut to this many characters.
    result_chars: int = Field(default=200, ge=20)
    #: BM25 stopword list of the search API (bm25s's: a language code such as ``en``).
    stopwords: str = "en"

    @field_validator("today", mode="before")
    @classmethod
    def _today(cls, value: Any) -> Any:
        # YAML reads 2023-01-30 as a date: kept as its ISO text.
        return value.isoformat() if hasattr(value, "isoformat") else value


@register_step
class ToolformerExecute(MapStep):
    """Runs every candidate call: ``api_candidates`` get their ``result``; calls that cannot
    run move to ``rejected_calls`` with stage ``execution``."""

    type_name = "toolformer_execute"
    Config = ExecuteConfig
    config: ExecuteConfig

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lock = threading.Lock()
        self._index: tuple[Any, Bm25Index] | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()  # locks and the index do not pickle: rebuilt per process
        state.pop("_lock", None)
        state["_index"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def reads(self) -> list[str]:
        return ["api_candidates", "rejected_calls", "doc_id", self.config.date_column,
                "reject_reason"]

    def _bm25(self, documents: list[dict[str, Any]], run_dir: Path | None) -> Bm25Index:
        with self._lock:
            seen = (id(documents), len(documents))
            if self._index is None or self._index[0] != seen:
                cfg = self.config
                key = stable_hash("toolformer-bm25", cfg.text_column, cfg.stopwords,
                                  [d.get(META, {}).get("id") for d in documents], length=24)
                texts = [str(d.get(cfg.text_column) or "") for d in documents]
                folder = None if run_dir is None else Path(run_dir) / "index"
                self._index = (seen, load_or_build_index(texts, key, cfg.stopwords, folder))
            return self._index[1]

    def _search(self, queries: list[str], record: dict[str, Any], ctx: ItemContext
                ) -> list[str | None]:
        """The best passage per query that is not from the text's own document."""
        cfg = self.config
        documents = ctx.context.get(cfg.corpus or "") or []
        if not documents or not queries:
            return [None] * len(queries)
        found = self._bm25(documents, ctx.run.run_dir).top_many(queries, k=3)
        own = record.get("doc_id")
        out: list[str | None] = []
        for hits in found:
            best = next((documents[i] for i, score in hits if score > 0
                         and (own is None or documents[i].get("doc_id") != own)), None)
            out.append(None if best is None else
                       " ".join(str(best.get(cfg.text_column) or "").split())[: cfg.result_chars])
        return out

    async def process(self, record: dict[str, Any], ctx: ItemContext) -> Output | ItemResult:
        if rejected(record):
            return Output(columns={})
        cfg = self.config
        candidates = list(record.get("api_candidates") or [])
        rejects = list(record.get("rejected_calls") or [])
        searches = [c["argument"] for c in candidates if c["tool"] == "search"]
        passages = iter(await asyncio.to_thread(self._search, searches, record, ctx)
                        if searches else [])
        today = record.get(cfg.date_column) or cfg.today
        executed = []
        for call in candidates:
            try:
                if call["tool"] == "calculator":
                    result = calculator(call["argument"])
                elif call["tool"] == "calendar":
                    result = calendar(today)
                else:
                    passage = next(passages)
                    if passage is None:
                        raise ApiError("no passage matches (own document left out)")
                    result = passage
            except ApiError as exc:
                rejects.append({**call, "stage": "execution", "reason": str(exc)})
                continue
            executed.append({**call, "result": result})
        columns: dict[str, Any] = {"api_candidates": executed, "rejected_calls": rejects}
        if not executed:
            columns.update(reject_columns("execution", f"none of {len(candidates)} calls ran"))
        return Output(columns=columns)


# --- the loss filter -------------------------------------------------------------------------


class FilterConfig(StepConfig):
    #: The text column (the same as the sampling step's).
    column: str = "text"
    #: τ_f: least loss reduction L- - L+ (paper: 1.0 for most tools; 0.5 also reported).
    tau_f: float = 1.0
    #: Weight decay per token: w_t = max(0, 1 - decay * t), normalized (paper: 0.2).
    decay: float = Field(default=0.2, gt=0.0, le=1.0)
    #: " → " between the call and its result (the paper writes →).
    arrow: str = " → "
    #: Keep a text with no call that passed (the paper's C* keeps every text of C); false:
    #: such a text is marked rejected at stage ``filter``.
    keep_without_calls: bool = False


def insert(text: str, position: int, call: str) -> tuple[str, int]:
    """``text`` with ``call`` inserted before character ``position`` (a space before it, and
    after it unless the text goes on with one), and where the rest of the text starts."""
    head = f"{text[:position]} {call}"
    if not text[position:].startswith((" ", "\n")):
        head += " "
    return head + text[position:], len(head)


@register_step
class ToolformerFilter(MapStep):
    """The paper's filter: ``api_calls`` (kept, best per position, each with L_empty,
    L_call_no_result, L_plus, L_minus, gain and tau_f), ``text_with_calls``; the others join
    ``rejected_calls`` with stage ``filter`` and their losses."""

    type_name = "toolformer_filter"
    uses_llm = True
    Config = FilterConfig
    config: FilterConfig

    def reads(self) -> list[str]:
        return [self.config.column, "api_candidates", "rejected_calls", "reject_reason"]

    async def process(self, record: dict[str, Any], ctx: ItemContext) -> Output | ItemResult:
        if rejected(record):
            return Output(columns={})
        cfg = self.config
        text = str(record[cfg.column])
        limit = window(cfg.decay)
        calls = list(record.get("api_candidates") or [])
        # One request per distinct prompt: L(ε) of every position reads the text's own.
        wanted: dict[str, None] = {text: None}
        plan = []
        for call in calls:
            i = call["position"]
            bare, bare_start = insert(text, i, call_text(call["tool"], call["argument"]))
            full, full_start = insert(text, i, call_text(call["tool"], call["argument"],
                                                         call["result"], cfg.arrow))
            wanted.setdefault(bare)
            wanted.setdefault(full)
            plan.append((call, (text, i), (bare, bare_start), (full, full_start)))
        prompts = list(wanted)
        answers = await asyncio.gather(*(ctx.generate(echo_request(p, ctx, self.name))
                                         for p in prompts))
        logprobs = {p: a[0].logprobs or [] for p, a in zip(prompts, answers, strict=True)}
        responses = [a[0] for a in answers]

        def loss(prompt: str, start: int) -> float:
            return weighted_loss(continuation_logprobs(logprobs[prompt], prompt, start, limit),
                                 cfg.decay)

        rejects = list(record.get("rejected_calls") or [])
        passed: dict[int, dict[str, Any]] = {}
        for call, empty, bare, full in plan:
            try:
                verdict = decide(loss(*empty), loss(*bare), loss(*full), cfg.tau_f)
            except ValueError as exc:  # no continuation token (a position at the very end)
                rejects.append({**call, "stage": "filter", "reason": str(exc)})
                continue
            scored = {**call, **{k: v for k, v in verdict.items() if k != "kept"}}
            if not verdict["kept"]:
                rejects.append({**scored, "stage": "filter",
                                "reason": f"L- - L+ = {verdict['gain']} < tau_f={cfg.tau_f}"})
                continue
            other = passed.get(call["position"])
            if other is None or scored["gain"] > other["gain"]:
                if other is not None:
                    rejects.append({**other, "stage": "filter",
                                    "reason": "a call with a larger gain at this position"})
                passed[call["position"]] = scored
            else:
                rejects.append({**scored, "stage": "filter",
                                "reason": "a call with a larger gain at this position"})
        kept = [passed[p] for p in sorted(passed)]
        annotated = text
        for call in reversed(kept):  # right to left: earlier positions stay valid
            annotated, _ = insert(annotated, call["position"], call_text(
                call["tool"], call["argument"], call["result"], cfg.arrow))
        columns: dict[str, Any] = {"text_with_calls": annotated, "api_calls": kept,
                                   "rejected_calls": rejects, "api_candidates": None}
        if not kept and not cfg.keep_without_calls:
            gains = [r["gain"] for r in rejects if "gain" in r]
            columns.update(reject_columns(
                "filter", f"no call lowered the loss by tau_f={cfg.tau_f} "
                          f"(best gain {max(gains) if gains else None} of {len(calls)} calls)"))
        meta = {"toolformer": {"tau_f": cfg.tau_f, "decay": cfg.decay,
                               "weights": [round(w, 4) for w in weights(limit, cfg.decay)]}}
        return Output(columns=columns, model=responses[0].model if responses else None,
                      usage=usage_of(responses), meta=meta)
