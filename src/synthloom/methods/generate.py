"""The generic LLM steps: render a prompt template with the record, call the model, keep columns.

``generate`` is a map step (one completion per record); ``generate_n`` is an expand step
(``n`` samples per record, one record each, ``sample_index`` in provenance). With ``schema`` the
output is structured: the parsed object's keys become columns.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from synthloom.core.context import ItemContext, RunContext
from synthloom.core.records import Output
from synthloom.core.registry import register_step
from synthloom.core.steps import ExpandStep, MapStep, StepConfig
from synthloom.llm.types import LLMRequest, LLMResponse, SamplingParams
from synthloom.methods.templates import PromptTemplate, load_template


class GenerateConfig(StepConfig):
    #: Jinja template file (recipe folder first, then synthloom/methods/).
    template: str
    #: JSON schema: structured output; the parsed object's keys become columns.
    json_schema: dict[str, Any] | None = Field(default=None, alias="schema")
    #: Keep only these keys of the parsed object (default: all).
    columns: list[str] | None = None
    #: Column for the text answer (unstructured output).
    output: str = "text"
    #: Send the rendered template as a raw prompt (no chat template): backends that allow it.
    raw_prompt: bool = False
    temperature: float = 0.7
    top_p: float = 1.0
    max_tokens: int = 512
    stop: list[str] | None = None
    n: int = 1

    model_config = {**StepConfig.model_config, "populate_by_name": True}


class _GenerateMixin:
    config: GenerateConfig
    name: str
    _template: PromptTemplate

    def setup(self, ctx: RunContext) -> None:
        self._template = load_template(self.config.template, ctx.recipe_dir)

    def extra_fingerprint(self, ctx: RunContext) -> Any:
        return {"template": self._template.hash}

    def reads(self) -> list[str]:
        # Only the columns the template names enter the per-item cache key.
        return sorted(self._template.variables - {"context"})

    def _request(self, record: dict[str, Any], ctx: ItemContext, n: int) -> LLMRequest:
        variables = {**record, "context": ctx.context}
        cfg = self.config
        params = SamplingParams(temperature=cfg.temperature, top_p=cfg.top_p,
                                max_tokens=cfg.max_tokens, stop=cfg.stop, seed=ctx.seed)
        if cfg.raw_prompt:
            return LLMRequest(prompt=self._template.render_text(variables), params=params,
                              json_schema=cfg.json_schema, n=n, tags={"step": self.name})
        return LLMRequest(messages=self._template.render_messages(variables), params=params,
                          json_schema=cfg.json_schema, n=n, tags={"step": self.name})

    def _output(self, response: LLMResponse) -> Output:
        cfg = self.config
        if cfg.json_schema is not None and isinstance(response.parsed, dict):
            parsed = response.parsed
            keys = cfg.columns if cfg.columns is not None else list(parsed)
            columns = {k: parsed.get(k) for k in keys}
        else:
            text = response.text.strip()
            if not text:
                raise ValueError(f"empty completion (finish_reason={response.finish_reason})")
            columns = {cfg.output: text}
        if response.reasoning:
            columns[f"{cfg.output}_reasoning"] = response.reasoning
        return Output(
            columns=columns,
            sample_index=response.sample_index,
            model=response.model,
            template_hash=self._template.hash,
            usage=response.usage.to_json(),
            meta={"finish_reason": response.finish_reason},
        )


@register_step
class Generate(_GenerateMixin, MapStep):
    type_name = "generate"
    uses_llm = True
    Config = GenerateConfig

    async def process(self, record: dict[str, Any], ctx: ItemContext) -> Output:
        [response] = await ctx.generate(self._request(record, ctx, n=1))
        return self._output(response)


@register_step
class GenerateN(_GenerateMixin, ExpandStep):
    type_name = "generate_n"
    uses_llm = True
    Config = GenerateConfig

    async def process(self, record: dict[str, Any], ctx: ItemContext) -> list[Output]:
        responses = await ctx.generate(self._request(record, ctx, n=self.config.n))
        outputs = []
        for response in responses:
            try:
                outputs.append(self._output(response))
            except ValueError:
                continue  # an empty sample is not a record; zero samples becomes a drop
        return outputs
