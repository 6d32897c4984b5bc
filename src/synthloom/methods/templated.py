"""``TemplatedStep``: the prompt-template plumbing that LLM method steps share.

Almost every LLM step names one or more Jinja templates in its config (``template:``,
``judge_template:`` ...), loads them once in ``setup``, puts their hashes in its fingerprint
(a new prompt means new results), renders one into chat messages per record and sends a single
request. This mixin does that once:

- ``template_fields`` lists the config fields that name templates; ``setup`` loads each
  (recipe folder first, see :func:`~synthloom.methods.templates.load_template`).
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

Mix it in before the step kind: ``class MyStep(TemplatedStep, MapStep)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar

from synthloom.core.context import ItemContext, RunContext
from synthloom.core.records import Output
from synthloom.core.steps import Step
from synthloom.llm.types import LLMRequest, LLMResponse, SamplingParams
from synthloom.methods.templates import PromptTemplate, load_template


async def _generate(ctx: ItemContext, request: LLMRequest, model: str | None) -> list[Any]:
    # ``model`` only when named: an item context of the one-model shape keeps working.
    if model is None:
        return await ctx.generate(request)
    return await ctx.generate(request, model=model)


def parsed_object(response: LLMResponse) -> dict[str, Any]:
    """The structured reply as a dict; ``{}`` when the model returned something else."""
    return response.parsed if isinstance(response.parsed, dict) else {}


class TemplatedStep(Step):
    """Loads the config's templates, fingerprints them, and asks the model with them."""

    #: Config fields that name a template file, loaded in ``setup``.
    template_fields: ClassVar[tuple[str, ...]] = ("template",)
    #: Fingerprint key of a field where it is not the field's name (kept for cache validity).
    template_keys: ClassVar[Mapping[str, str]] = MappingProxyType({})
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
                seed: int | None = None, n: int = 1,
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
            seed=ctx.seed + seed_offset if seed is None else seed)
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
        the response's ``finish_reason``."""
        if meta is None:
            meta = {"finish_reason": response.finish_reason}
        provenance = {"sample_index": response.sample_index, "model": response.model,
                      "template_hash": self.template(template).hash,
                      "usage": response.usage.to_json()}
        return Output(columns=columns, meta=meta, **{**provenance, **fields})

    def _setting(self, name: str, given: Any) -> Any:
        value = getattr(self.config, name, None) if given is None else given
        if value is None:
            raise TypeError(f"{self}: no {name} given and the config has none")
        return value
