"""``TemplatedStep``: the prompt-template plumbing that LLM method steps share.

Almost every LLM step names one or more Jinja templates in its config (``template:``,
``judge_template:`` ...), loads them once in ``setup``, puts their hashes in its fingerprint
(a new prompt means new results), renders one into chat messages per record and sends a single
request. This mixin does that once:

- ``template_fields`` lists the config fields that name templates; ``setup`` loads each
  (recipe folder first, see :func:`~synthloom.prompting.templates.load_template`).
- ``extra_fingerprint`` returns ``{field: hash}`` -- the shape the steps used before the mixin,
  so run caches stay valid; ``template_keys`` renames a field's key where a step used another.
- ``active_template_fields`` narrows what is loaded (a step whose judge template is only used
  in one mode); with none loaded the fingerprint contribution is ``None``. ``template_name``
  maps a field to its file (a step whose default depends on another setting).
- ``request`` builds the :class:`LLMRequest` (template rendered with the variables, the
  config's ``temperature``/``max_tokens`` unless given, seed ``ctx.seed + seed_offset``
  unless ``seed`` is given, tag ``step``); ``ask`` sends it and returns the one response,
  ``ask_n`` returns ``n`` samples.
- ``output`` wraps a response into an :class:`Output` with the usual provenance.
- :func:`parsed_object` is the structured reply as a dict (``{}`` when it is not one).
- Truncation is a drop: an output whose ``_meta.finish_reason`` is ``length`` (the answer was
  cut off at ``max_tokens``) is not a record unless the config says ``keep_truncated: true``
  (see :meth:`TemplatedStep.to_result`). Structured replies never arrive cut off: the client
  repairs or fails them.

Mix it in before the step kind: ``class MyStep(TemplatedStep, MapStep)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar

from synthloom.core.context import ItemContext, RunContext
from synthloom.core.fingerprint import stable_hash
from synthloom.core.records import ItemResult, Output
from synthloom.core.steps import Step
from synthloom.llm.types import LLMRequest, LLMResponse, SamplingParams
from synthloom.prompting.templates import PromptTemplate, load_template


async def _generate(ctx: ItemContext, request: LLMRequest, model: str | None) -> list[Any]:
    # ``model`` only when named: an item context of the one-model shape keeps working.
    if model is None:
        return await ctx.generate(request)
    return await ctx.generate(request, model=model)


def parsed_object(response: LLMResponse) -> dict[str, Any]:
    """The structured reply as a dict; ``{}`` when the model returned something else."""
    return response.parsed if isinstance(response.parsed, dict) else {}


#: Step types whose cut-off outputs are data, named here until their modules set
#: ``cut_off_is_data`` (``logic_solve`` grades a cut-off reply as unsolved).
CUT_OFF_IS_DATA = frozenset({"logic_solve"})


class TemplatedStep(Step):
    """Loads the config's templates, fingerprints them, and asks the model with them."""

    #: Config fields that name a template file, loaded in ``setup``.
    template_fields: ClassVar[tuple[str, ...]] = ("template",)
    #: Fingerprint key of a field where it is not the field's name (kept for cache validity).
    template_keys: ClassVar[Mapping[str, str]] = MappingProxyType({})
    #: The step grades or marks a cut-off answer itself (a grader: a cut-off reply is an
    #: unsolved one, and dropping it would inflate the solve rate): its outputs stay records.
    cut_off_is_data: ClassVar[bool] = False
    #: Loaded templates by config field (empty until ``setup``).
    _templates: Mapping[str, PromptTemplate] = MappingProxyType({})

    def active_template_fields(self) -> tuple[str, ...]:
        """The template fields this configuration uses (default: all of ``template_fields``)."""
        return self.template_fields

    def template_name(self, field: str) -> str:
        """The file that config field ``field`` names (a step may derive a default here)."""
        return getattr(self.config, field)

    def setup(self, ctx: RunContext) -> None:
        super().setup(ctx)
        self._templates = {f: load_template(self.template_name(f), ctx.recipe_dir)
                           for f in self.active_template_fields()}

    def extra_fingerprint(self, ctx: RunContext) -> Any:
        if not self._templates:
            return None
        return {self.template_keys.get(f, f): t.hash for f, t in self._templates.items()}

    def template(self, field: str = "template") -> PromptTemplate:
        """The template loaded from config field ``field``."""
        try:
            return self._templates[field]
        except KeyError:
            raise RuntimeError(f"{self}: template {field!r} is not loaded (setup not run, or "
                               "not used in this mode)") from None

    def has_template(self, field: str = "template") -> bool:
        return field in self._templates

    # --- requests ------------------------------------------------------------------------------

    def request(self, ctx: ItemContext, variables: dict[str, Any], *,
                template: str | PromptTemplate = "template",
                messages: list[dict[str, str]] | None = None,
                raw_prompt: bool = False, schema: dict[str, Any] | None = None,
                temperature: float | None = None, max_tokens: int | None = None,
                top_p: float = 1.0, stop: list[str] | None = None, seed_offset: int = 0,
                seed: int | None = None, n: int = 1, presence_penalty: float = 0.0,
                tags: dict[str, Any] | None = None) -> LLMRequest:
        """The request for ``variables`` rendered with template field ``template`` (or a
        template loaded elsewhere, e.g. from an operator file).

        ``messages`` replaces the rendering (a step that edits the rendered messages);
        ``raw_prompt`` sends the rendered text as a plain prompt (no chat template).
        ``temperature`` and ``max_tokens`` default to the config's fields of those names.
        The seed is ``ctx.seed + seed_offset`` (one item's several calls differ by offset),
        or ``seed`` itself when given (a seed shared across items). ``tags`` add to the
        ``step`` tag (logs only, not the cache key).
        """
        params = SamplingParams(
            temperature=self._setting("temperature", temperature), top_p=top_p,
            max_tokens=self._setting("max_tokens", max_tokens), stop=stop,
            seed=ctx.seed + seed_offset if seed is None else seed,
            presence_penalty=presence_penalty)
        tags = {"step": self.name, **(tags or {})}
        if messages is None or raw_prompt:
            if isinstance(template, str):
                template = self.template(template)
            if raw_prompt:
                return LLMRequest(prompt=template.render_text(variables), params=params,
                                  json_schema=schema, n=n, tags=tags)
            messages = template.render_messages(variables)
        return LLMRequest(messages=messages, params=params, json_schema=schema, n=n, tags=tags)

    async def ask(self, ctx: ItemContext, variables: dict[str, Any], *,
                  model: str | None = None, **options: Any) -> LLMResponse:
        """One sample for ``variables`` (options as in :meth:`request`) from the step's own
        model, or the named ``model`` (recipe ``models:``)."""
        [response] = await _generate(ctx, self.request(ctx, variables, **options), model)
        return response

    async def ask_n(self, ctx: ItemContext, variables: dict[str, Any], n: int, *,
                    model: str | None = None, **options: Any) -> list[LLMResponse]:
        """``n`` samples (seeds ``seed + i``, each cached on its own)."""
        return await _generate(ctx, self.request(ctx, variables, n=n, **options), model)

    def output(self, response: LLMResponse, columns: dict[str, Any], *,
               template: str = "template", meta: dict[str, Any] | None = None,
               **fields: Any) -> Output:
        """An Output with the response's provenance (sample index, model, template hash,
        usage; ``fields`` override them or add others, e.g. ``replace``); ``meta`` defaults to
        the response's ``finish_reason``. A reasoning model's ``<think>`` text is kept as
        ``<first column>_reasoning`` (see :func:`with_reasoning`)."""
        if meta is None:
            meta = {"finish_reason": response.finish_reason}
        columns = with_reasoning(columns, response)
        provenance = {"sample_index": response.sample_index, "model": response.model,
                      "template_hash": self.template(template).hash,
                      "usage": response.usage.to_json()}
        return Output(columns=columns, meta=meta, **{**provenance, **fields})

    # --- truncation ------------------------------------------------------------------------------

    def keeps_truncated(self) -> bool:
        """Whether outputs cut off at ``max_tokens`` stay records: always for a step whose
        cut-off outputs are data (``cut_off_is_data``); else the config's ``keep_truncated``
        (default False), or ``not drop_truncated`` where a step named the opposite switch
        before this rule existed."""
        if self.cut_off_is_data or self.type_name in CUT_OFF_IS_DATA:
            return True
        keep = getattr(self.config, "keep_truncated", None)
        if keep is None:
            keep = not getattr(self.config, "drop_truncated", True)
        return bool(keep)

    def fingerprint(self, ctx: RunContext) -> str:
        base = super().fingerprint(ctx)
        # Results cached before truncation became a drop kept cut-off outputs: not valid now.
        return base if self.keeps_truncated() else stable_hash(base, "truncated-dropped")

    def to_result(self, value: Any) -> ItemResult:
        """The step's result with outputs cut off at ``max_tokens`` (``_meta.finish_reason``
        ``length``) taken out: a map item becomes a drop naming the cap; an expand item keeps
        its finished outputs (they note ``cut_off_samples``), or drops when none is left."""
        result = super().to_result(value)  # type: ignore[misc]
        if self.keeps_truncated() or not result.outputs:
            return result
        cut = [o for o in result.outputs if o.meta.get("finish_reason") == "length"]
        if not cut:
            return result
        kept = [o for o in result.outputs if o.meta.get("finish_reason") != "length"]
        if not kept:
            return ItemResult.drop(f"answer cut off at max_tokens={self._cap(cut[0])} "
                                   "(finish_reason=length)")
        for o in kept:  # the loss stays visible in provenance (items, not samples, are counted)
            o.meta = {**o.meta, "cut_off_samples": len(cut)}
        result.outputs = kept
        return result

    def _cap(self, output: Output) -> int | str:
        cap = getattr(self.config, "max_tokens", None)
        if isinstance(cap, int):
            return cap
        # A cap computed per call: a cut-off answer is exactly that many tokens long.
        return output.usage.get("completion_tokens") or "?"

    def _setting(self, name: str, given: Any) -> Any:
        value = getattr(self.config, name, None) if given is None else given
        if value is None:
            raise TypeError(f"{self}: no {name} given and the config has none")
        return value


def with_reasoning(columns: dict[str, Any], response: LLMResponse) -> dict[str, Any]:
    """``columns`` plus the response's reasoning (a reasoning model's ``<think>`` text, kept
    apart from the answer by the backend) as ``<first column>_reasoning``, so exports can
    train on it (``--reasoning``). Unchanged when there is none, or when the step already
    keeps it in a ``*_reasoning`` column of its own."""
    if not response.reasoning or not columns:
        return columns
    if any(name.endswith("_reasoning") for name in columns):
        return columns
    first = next(iter(columns))
    return {**columns, f"{first}_reasoning": response.reasoning}
