"""``sq_generate``: the ``generate`` step with a schema per backend and recipe-set template
variables, for SynthQuestions' intent and attribution steps.

The authors' prompts put no length limit on the extracted keywords (their own example keyword,
"Kinetics of neurotensin gene expression in the developing gut", has 61 characters, and rule 3
of the prompt keeps such a title whole), the intent or the scene. llama.cpp turns a JSON schema
into a grammar and refuses long string repetitions, so caps exist only there: ``schema`` is the
paper's (uncapped) schema, ``schema_llamacpp`` the capped one used when the step's client is
llama.cpp (``grammar_limited``).

``variables`` are extra template variables set by the recipe (e.g. ``with_intent`` for the
attribution prompt), so a switch in the recipe reaches the template without a record column.
"""

from __future__ import annotations

from typing import Any

from synthloom.core.context import ItemContext
from synthloom.core.registry import register_step
from synthloom.llm.kinds import grammar_limited
from synthloom.llm.types import LLMResponse
from synthloom.methods.generate import Generate, GenerateConfig


class SqGenerateConfig(GenerateConfig):
    #: The schema used when the step's client is llama.cpp (short string caps its grammar
    #: accepts); default: ``schema``.
    schema_llamacpp: dict[str, Any] | None = None
    #: Template variables fixed by the recipe (they override record columns of that name).
    variables: dict[str, Any] = {}


@register_step
class SqGenerate(Generate):
    type_name = "sq_generate"
    Config = SqGenerateConfig
    config: SqGenerateConfig

    def reads(self) -> list[str]:
        # Recipe-set variables are in the fingerprint (config), not in the per-item key.
        return sorted(set(super().reads()) - set(self.config.variables))

    def schema_for(self, ctx: ItemContext) -> dict[str, Any] | None:
        cfg = self.config
        if cfg.schema_llamacpp is not None and grammar_limited(ctx):
            return cfg.schema_llamacpp
        return cfg.json_schema

    async def _sample(self, record: dict[str, Any], ctx: ItemContext, n: int
                      ) -> list[LLMResponse]:
        cfg = self.config
        variables = {**record, **cfg.variables, "context": ctx.context}
        return await self.ask_n(ctx, variables, n, raw_prompt=cfg.raw_prompt,
                                schema=self.schema_for(ctx), top_p=cfg.top_p, stop=cfg.stop)
