"""``self_instruct_instances``: input/output instances for a generated instruction.

Self-Instruct writes instances two ways (section 2.3): input-first for most tasks (an input,
then its output), output-first for classification tasks (a class label first, then an input
with that label - input-first makes a model write inputs biased to one label). The task's
``is_classification`` (from the few-shot classification prompt) picks the template; the JSON
schema keeps the generation order (``input`` before ``output``, ``class_label`` before
``input``). Each instance becomes a record; the paper's instance filters mark unusable ones in
``reject_reason`` (``drop_rejected`` drops them with that reason).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from synthloom.core.context import ItemContext
from synthloom.core.records import ItemResult
from synthloom.core.registry import register_step
from synthloom.core.steps import ExpandStep, StepConfig
from synthloom.methods.selfinstruct.filters import instance_problems
from synthloom.prompting.templated import TemplatedStep, parsed_object


class InstancesConfig(StepConfig):
    #: Jinja prompt template of non-classification tasks (input, then output).
    input_first_template: str = "selfinstruct/prompts/instances_input_first.jinja"
    #: Jinja prompt template of classification tasks (class label first, then an input).
    output_first_template: str = "selfinstruct/prompts/instances_output_first.jinja"
    #: Column with the task's instruction.
    column: str = "instruction"
    #: Column saying whether the task is a classification (yes/true: output-first).
    classification_column: str = "is_classification"
    #: Instances asked for per task (the schema allows 1..instances).
    instances: int = Field(default=2, ge=1, le=10)
    #: Sampling temperature.
    temperature: float = 0.0
    #: Nucleus sampling (top_p).
    top_p: float = 1.0
    #: Most tokens of the instances' answer.
    max_tokens: int = 512
    #: Longest instance input, in characters (schema maxLength).
    input_max_chars: int = 600
    #: Longest instance output, in characters (schema maxLength).
    output_max_chars: int = 900


def is_yes(value: Any) -> bool:
    """The classification verdict as a bool: True, "Yes", "yes." ..."""
    if isinstance(value, bool):
        return value
    return str(value or "").strip().lower().startswith("yes")


def instances_schema(classification: bool, n: int, input_chars: int,
                     output_chars: int) -> dict[str, Any]:
    if classification:
        item = {"class_label": {"type": "string", "minLength": 1, "maxLength": 100},
                "input": {"type": "string", "maxLength": input_chars}}
    else:
        item = {"input": {"type": "string", "maxLength": input_chars},
                "output": {"type": "string", "minLength": 1, "maxLength": output_chars}}
    return {"type": "object", "properties": {"instances": {
        "type": "array", "minItems": 1, "maxItems": n,
        "items": {"type": "object", "properties": item, "required": list(item),
                  "additionalProperties": False}}},
            "required": ["instances"], "additionalProperties": False}


@register_step
class SelfInstructInstances(TemplatedStep, ExpandStep):
    type_name = "self_instruct_instances"
    uses_llm = True
    Config = InstancesConfig
    config: InstancesConfig
    template_fields = ("input_first_template", "output_first_template")
    template_keys = {"input_first_template": "input_first",
                     "output_first_template": "output_first"}

    def reads(self) -> list[str]:
        return [self.config.column, self.config.classification_column]

    async def process(self, record: dict[str, Any], ctx: ItemContext) -> ItemResult | list:
        cfg = self.config
        instruction = str(record.get(cfg.column) or "").strip()
        if not instruction:
            return ItemResult.drop(f"no {cfg.column!r} text")
        classification = is_yes(record.get(cfg.classification_column))
        template = "output_first_template" if classification else "input_first_template"
        schema = instances_schema(classification, cfg.instances, cfg.input_max_chars,
                                  cfg.output_max_chars)
        response = await self.ask(ctx, {"instruction": instruction, "n": cfg.instances},
                                  template=template, schema=schema, top_p=cfg.top_p)
        parsed = parsed_object(response)
        raw = [i for i in (parsed.get("instances") or []) if isinstance(i, dict)][: cfg.instances]
        if not raw:
            return ItemResult.drop("instances: the model returned none")
        instances = [
            {"input": str(i.get("input") or "").strip(),
             "output": str(i.get("class_label" if classification else "output") or "").strip()}
            for i in raw]
        problems, task_problem = instance_problems(instances)
        outputs = []
        for k, (instance, problem) in enumerate(zip(instances, problems, strict=True)):
            outputs.append(self.output(
                response, {"input": instance["input"], "output": instance["output"],
                           "is_classification": classification, "instance_index": k,
                           "reject_reason": task_problem or problem},
                template=template, sample_index=k,
                usage=response.usage.to_json() if k == 0 else
                {"prompt_tokens": 0, "completion_tokens": 0},
                meta={"finish_reason": response.finish_reason,
                      "generation": "output-first" if classification else "input-first"}))
        return outputs
