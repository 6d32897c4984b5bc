"""The generic LLM steps: render a prompt template with the record, call the model, keep columns.

``generate`` is a map step (one completion per record); ``generate_n`` is an expand step
(``n`` samples per record, one record each, ``sample_index`` in provenance). With ``schema`` the
output is structured: the parsed object's keys become columns. An answer cut off at
``max_tokens`` is a drop unless ``keep_truncated: true`` (``TemplatedStep.to_result``).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from synthloom.core.context import ItemContext
from synthloom.core.records import Output
from synthloom.core.registry import register_step
from synthloom.core.steps import ExpandStep, MapStep, StepConfig
from synthloom.llm.types import LLMResponse
from synthloom.prompting.templated import TemplatedStep


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
    #: Sampling temperature.
    temperature: float = 0.7
    #: Nucleus sampling (top_p).
    top_p: float = 1.0
    #: Most tokens per answer.
    max_tokens: int = 512
    #: Stop sequences (None: none).
    stop: list[str] | None = None
    #: Samples per record (generate_n only; empty samples are skipped, none left: a drop).
    n: int = 1
    #: Keep answers cut off at ``max_tokens`` (finish_reason ``length``) as records; by
    #: default they are drops that name the cap.
    keep_truncated: bool = False

    model_config = {**StepConfig.model_config, "populate_by_name": True}


class _GenerateMixin(TemplatedStep):
    config: GenerateConfig

    def reads(self) -> list[str]:
        # Only the columns the template names enter the per-item cache key.
        return sorted(self.template().variables - {"context"})

    async def _sample(self, record: dict[str, Any], ctx: ItemContext, n: int
                      ) -> list[LLMResponse]:
        cfg = self.config
        return await self.ask_n(ctx, {**record, "context": ctx.context}, n,
                                raw_prompt=cfg.raw_prompt, schema=cfg.json_schema,
                                top_p=cfg.top_p, stop=cfg.stop)

    def _output(self, response: LLMResponse) -> Output:
        cfg = self.config
        if cfg.json_schema is not None and isinstance(response.parsed, dict):
            parsed = response.parsed
            keys = cfg.columns if cfg.columns is not None else list(parsed)
            columns = {k: parsed.get(k) for k in keys}
        else:
            text = response.text.strip()
            cut = response.finish_reason == "length" and not self.keeps_truncated()
            if not text and not cut:  # an empty cut-off answer is a truncation drop (to_result)
                raise ValueError(f"empty completion after {response.calls} call(s) "
                                 f"(finish_reason={response.finish_reason})")
            columns = {cfg.output: text}
        if response.reasoning:
            columns[f"{cfg.output}_reasoning"] = response.reasoning
        return self.output(response, columns)


@register_step
class Generate(_GenerateMixin, MapStep):
    type_name = "generate"
    uses_llm = True
    Config = GenerateConfig

    async def process(self, record: dict[str, Any], ctx: ItemContext) -> Output:
        [response] = await self._sample(record, ctx, 1)
        return self._output(response)


@register_step
class GenerateN(_GenerateMixin, ExpandStep):
    type_name = "generate_n"
    uses_llm = True
    Config = GenerateConfig

    async def process(self, record: dict[str, Any], ctx: ItemContext) -> list[Output]:
        responses = await self._sample(record, ctx, self.config.n)
        outputs = []
        for response in responses:
            try:
                outputs.append(self._output(response))
            except ValueError:
                continue  # an empty sample is not a record; zero samples becomes a drop
        return outputs
